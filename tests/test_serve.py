"""End to end on a REAL Prefect server (`prefect server start`, started and stopped here by PID):
`offramp serve` registers the deployments; `offramp notify` + `offramp watch` emit a deprecation
event; the event triggers migrate-feature, which runs to completion in a process `serve`
spawned; the study, its trials and the run's artifacts exist."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.helpers import make_feature, make_space

OFFRAMP = [sys.executable, "-m", "offramp.flows.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the process group (a server's workers, serve's flow runs), then SIGKILL what is left
    (a Prefect worker wants a second signal)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(what: str, check, timeout: float, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in processes:
            if p.poll() is not None:
                raise AssertionError(f"{what}: {p.args} exited with {p.returncode}: {p.stdout.read()[-3000:] if p.stdout else ''}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def healthy():
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("the Prefect server", healthy, 120, [process])
        yield root, api
    finally:
        stop(process)


def setting(root: Path, api: str) -> tuple[dict, Path]:
    """A tiny feature on the fake provider (its own search space), and the environment every
    offramp process of the test shares (state dir, features root, the fake provider plugin)."""
    features = root / "features"
    feature = make_feature(features / "tiny", n=60, extra={
        "search_space": "space.yaml", "splits": {"seed": 3, "train": 20, "dev": 20, "test": 20}})
    make_space(feature / "space.yaml", ["fake/good", "fake/cheap"], output_mode=["text"], max_tokens=[8])
    env = {
        **os.environ, "PREFECT_API_URL": api, "OFFRAMP_HOME": str(root / "home"), "OFFRAMP_FEATURES": str(features),
        "OFFRAMP_RELEASES": str(root / "releases"), "OFFRAMP_PLUGINS": "tests.fake_plugin:install",
        "PYTHONPATH": str(ROOT), "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_HOME": str(root / "client-prefect"), "PWD": str(ROOT),
    }
    return env, features


def runner(env: dict):
    def run(*args: str, command=OFFRAMP) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    return run


def completed_runs(client: httpx.Client, deployment_id: str, log: Path):
    def check():
        runs = client.post("/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}).json()
        if any(run["state_type"] in ("FAILED", "CRASHED", "CANCELLED") for run in runs):
            raise AssertionError(f"a triggered run did not complete: {runs}; log: {log.read_text()[-4000:]}")
        return [run for run in runs if run["state_type"] == "COMPLETED"] or None

    return check


def test_a_deprecation_event_starts_a_migration_on_a_served_deployment(server):
    root, api = server
    env, _ = setting(root / "serve", api)
    offramp = runner(env)
    serve_log = (root / "serve" / "serve.log").open("w+")
    serve = subprocess.Popen([*OFFRAMP, "serve", "--max-trials", "3", "--max-spend", "4.5"], cwd=ROOT, env=env, stdout=serve_log,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        client = httpx.Client(base_url=api, timeout=10)

        def deployment(flow: str, name: str):
            r = client.get(f"/deployments/name/{flow}/{name}")
            return r.json() if r.status_code == 200 else None

        migrate = wait_for("the deployments", lambda: deployment("migrate-feature", "on-deprecation"), 120, [serve])
        watch = wait_for("the watch deployment", lambda: deployment("watch-deprecations", "daily"), 60, [serve])
        assert watch and watch["schedules"] and watch["schedules"][0]["schedule"]["cron"] == "0 6 * * *"
        form = migrate["parameter_openapi_schema"]  # the UI's run form: MigrateParams, feature_dir required
        assert form["required"] == ["params"] and "feature_dir" in form["definitions"]["MigrateParams"]["required"]
        # a run from the form gets serve's limits, as a triggered run does (issue 13): the deployment's
        # default parameters carry them, and so do the form's field defaults
        assert migrate["parameters"] == {"params": {"max_trials": 3, "max_spend_usd": 4.5}}
        fields = form["definitions"]["MigrateParams"]["properties"]
        assert fields["max_trials"]["default"] == 3 and fields["max_spend_usd"]["default"] == 4.5
        automations = client.post("/automations/filter", json={}).json()
        assert any(a["actions"][0].get("deployment_id") == migrate["id"] for a in automations)

        retires = str(dt.date.today() + dt.timedelta(days=45))
        notified = offramp("notify", "fake/old", "--retires", retires, "--source", "https://example.com/retirement")
        assert notified.returncode == 0, notified.stderr
        first = offramp("watch")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "emitted offramp.model.deprecation for tiny-routing / fake/old" in first.stdout
        again = offramp("watch")
        assert again.returncode == 0 and "already emitted" in again.stdout and "emitted offramp" not in again.stdout

        [run] = wait_for("the triggered migrate-feature run", completed_runs(client, migrate["id"], Path(serve_log.name)), 300, [serve])
        assert run["name"] == "migrate tiny-routing off fake/old"
        assert run["parameters"]["params"]["trigger"] == "event"
        assert run["parameters"]["params"]["max_trials"] == 3 and run["parameters"]["params"]["max_spend_usd"] == 4.5
        # the run's final state carries the decision (issue 13): a named COMPLETED state with a message
        assert run["state"]["message"].startswith(("Selected trial", "No config is safe to ship"))
        event_id = run["parameters"]["params"]["event_id"]

        artifacts = client.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).json()
        assert {"migration-report", "migration-front"} <= {a["key"] for a in artifacts}
        # the study in DuckDB, tied to the event the watch recorded
        sql = ("select s.trigger, s.status, count(t.trial_id), any_value(e.feature) from studies s join trials t on t.study_id = s.id "
               "join deprecation_events e on e.event_id = s.params->>'$.event_id' group by all")
        rows = offramp("sql", sql, "--format", "csv")
        assert rows.returncode == 0, rows.stderr
        trigger, status, trials, feature_name = rows.stdout.strip().splitlines()[1].split(",")
        assert (trigger, status, feature_name) == ("event", "completed", "tiny-routing") and int(trials) >= 4
        assert event_id in offramp("sql", "select event_id from deprecation_events").stdout
    finally:
        stop(serve)
        assert serve.poll() is not None


def test_prefect_yaml_deploys_to_a_work_pool_and_a_worker_runs_the_triggered_migration(server):
    """The other way to run offramp: `prefect deploy --all` with prefect.yaml, and a process worker."""
    root, api = server
    env, _ = setting(root / "worker", api)
    offramp, prefect = runner(env), [sys.executable, "-m", "prefect"]
    created = offramp("work-pool", "create", "offramp", "--type", "process", "--overwrite", command=prefect)
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = offramp("--no-prompt", "deploy", "--all", command=prefect)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    client = httpx.Client(base_url=api, timeout=10)
    migrate = client.get("/deployments/name/migrate-feature/on-deprecation").json()
    assert migrate["work_pool_name"] == "offramp" and migrate["entrypoint"] == "offramp.flows.migrate_feature.migrate_feature"
    automations = [a for a in client.post("/automations/filter", json={}).json()
                   if a["actions"][0].get("deployment_id") == migrate["id"]]
    assert len(automations) == 1  # serve's trigger for the same deployment was replaced, not doubled
    assert migrate["parameters"] == {"params": {"max_trials": 16, "max_spend_usd": 5.0}}  # prefect.yaml's limits, for the form
    assert automations[0]["actions"][0]["parameters"]["params"]["max_spend_usd"] == 5.0  # and for triggered runs
    before = {run["id"] for run in client.post("/flow_runs/filter", json={}).json()}

    worker_log = (root / "worker" / "worker.log").open("w+")
    worker = subprocess.Popen([*prefect, "worker", "start", "--pool", "offramp"], cwd=ROOT, env=env, stdout=worker_log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert offramp("notify", "fake/old", "--retires", str(dt.date.today() + dt.timedelta(days=10))).returncode == 0
        emitted = offramp("watch")
        assert "emitted offramp.model.deprecation for tiny-routing / fake/old" in emitted.stdout, emitted.stdout + emitted.stderr

        def new_completed():
            runs = completed_runs(client, migrate["id"], Path(worker_log.name))()
            return [r for r in runs or [] if r["id"] not in before] or None

        [run] = wait_for("the worker's migrate-feature run", new_completed, 300, [worker])
        assert run["name"] == "migrate tiny-routing off fake/old" and run["parameters"]["params"]["trigger"] == "event"
        rows = offramp("sql", "select trigger, status from studies", "--format", "csv")
        assert rows.stdout.strip().splitlines()[1:] == ["event,completed"], rows.stdout + rows.stderr
    finally:
        stop(worker, grace_s=3)


def test_a_prefect_server_that_is_down_is_a_clear_error(tmp_path: Path):
    env = {**os.environ, "OFFRAMP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT),
           "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    for command in (["watch", "--features", str(ROOT / "features")], ["serve"]):
        done = subprocess.run([*OFFRAMP, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "does not answer" in done.stderr and "prefect server start" in done.stderr
    env.pop("PREFECT_API_URL")
    done = subprocess.run([*OFFRAMP, "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs a Prefect server" in done.stderr
