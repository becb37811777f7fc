"""Stopping is clean: `offramp migrate` (a subprocess, on the fake provider's slow models) stopped
by SIGTERM during the search or SIGINT during a DSPy compile exits within a hang guard with
143/130 and one line saying the same command resumes; the study and its running trials are
recorded as interrupted; Prefect's flow run is CANCELLED/CRASHED, not RUNNING (read with Prefect's
client against the same PREFECT_HOME); no native library aborts at exit; a rerun resumes and
completes. After a SIGKILL, the next run marks the killed flow run CRASHED.

The signals go to the whole process group, as `timeout` and a terminal's Ctrl-C send them (that
is what stopped the temporary Prefect server first)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import make_feature, make_space
from tests.test_resume import query

OFFRAMP = [sys.executable, "-m", "offramp.flows.cli"]
HANG_GUARD_S = 30  # not a speed target: the old code ran on for minutes
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc")


def _env(home: Path, latency_s: float) -> dict[str, str]:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "OFFRAMP_PLUGINS": "tests.fake_plugin:install_sluggish",
           "PYTHONPATH": str(ROOT), "FAKE_LATENCY_S": str(latency_s), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "OFFRAMP_WAREHOUSE"):
        env.pop(name, None)
    return env


def _args(feature: Path, space: Path) -> list[str]:
    return [*OFFRAMP, "migrate", str(feature), "--space", str(space), "--max-trials", "3", "--concurrency", "2"]


def start(home: Path, feature: Path, space: Path, latency_s: float) -> subprocess.Popen:
    return subprocess.Popen(_args(feature, space), cwd=ROOT, env=_env(home, latency_s), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def rerun(home: Path, feature: Path, space: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_args(feature, space), cwd=ROOT, env=_env(home, 0.01), capture_output=True, text=True, timeout=600)


def wait_until(proc: subprocess.Popen, home: Path, sql: str, timeout_s: float = 300) -> None:
    """Poll the warehouse (read-only, from this process) until `sql` counts at least one row."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the study ended before the moment to stop it: {proc.communicate()}"
        rows = query(home, sql)
        if rows and rows[0][0]:
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {sql}")


def stop(proc: subprocess.Popen, signum: int) -> tuple[float, str, str]:
    """Signal the process group; (seconds until exit, stdout, stderr). Kills the group on a hang."""
    sent = time.monotonic()
    os.killpg(proc.pid, signum)
    try:
        out, err = proc.communicate(timeout=HANG_GUARD_S * 4)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"still running {HANG_GUARD_S * 4} s after {signum}: {err[-3000:]}") from None
    return time.monotonic() - sent, out, err


READ_RUNS = """
import json
from prefect import get_client
with get_client(sync_client=True) as client:
    print(json.dumps([{"id": str(r.id), "state": r.state_type.value, "tags": r.tags} for r in client.read_flow_runs()]))
"""


def flow_runs(home: Path) -> list[dict]:
    """The flow runs in the study's Prefect database, read with Prefect's client (its own temporary server)."""
    env = {**_env(home, 0), "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90", "PREFECT_LOGGING_LEVEL": "ERROR"}
    done = subprocess.run([sys.executable, "-c", READ_RUNS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_stopped(home: Path, elapsed: float, code: int, expected: int, err: str) -> str:
    """What every clean stop shows; returns the study id."""
    assert code == expected, (code, err[-3000:])
    assert elapsed < HANG_GUARD_S, f"took {elapsed:.1f} s to stop"
    assert "terminate called" not in err
    assert "run the same command again to resume it" in err
    [(study_id, status, error)] = query(home, "select id, status, error from studies")
    assert status == "interrupted" and "stopped by SIG" in error
    assert query(home, "select count(*) from trials where status = 'running'") == [(0,)]
    assert query(home, "select count(*) from trials where status = 'interrupted'")[0][0] >= 1
    runs = flow_runs(home)
    assert [r["state"] for r in runs] in (["CANCELLED"], ["CRASHED"]), runs
    return study_id


def check_resumes(home: Path, feature: Path, space: Path, study_id: str) -> None:
    again = rerun(home, feature, space)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed an interrupted study: {study_id}" in again.stdout
    assert query(home, "select id, status from studies") == [(study_id, "completed")]


@pytest.fixture()
def files(tmp_path: Path):
    feature = make_feature(tmp_path / "feature", n=60)
    return tmp_path / "home", feature


def test_sigterm_during_the_search_stops_records_and_resumes(files, tmp_path):
    home, feature = files
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/cheap"], output_mode=["text"], max_tokens=[8])
    proc = start(home, feature, space, latency_s=0.5)
    wait_until(proc, home, "select count(*) from trials where optuna_number is not null and status = 'running'")
    elapsed, _, err = stop(proc, signal.SIGTERM)
    study_id = check_stopped(home, elapsed, proc.returncode, 143, err)
    check_resumes(home, feature, space, study_id)


def test_sigint_during_a_dspy_compile_stops_records_and_resumes(files, tmp_path):
    home, feature = files
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/cheap"], strategies={"few_shot": {"k": [3]}},
                       output_mode=["text"], max_tokens=[8])
    proc = start(home, feature, space, latency_s=1.0)
    wait_until(proc, home, "select count(*) from trials where compile_key is not null and status = 'running'")
    elapsed, _, err = stop(proc, signal.SIGINT)
    study_id = check_stopped(home, elapsed, proc.returncode, 130, err)
    assert query(home, "select count(*) from programs") == [(0,)], "the stop came after the compile, not during it"
    check_resumes(home, feature, space, study_id)


def test_a_killed_flow_run_is_marked_crashed_by_the_next_run(files, tmp_path):
    home, feature = files
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/cheap"], output_mode=["text"], max_tokens=[8])
    proc = start(home, feature, space, latency_s=0.5)
    wait_until(proc, home, "select count(*) from trials where optuna_number is not null and status = 'running'")
    os.kill(proc.pid, signal.SIGKILL)  # the process only (an OOM kill): its children must not linger either
    proc.communicate(timeout=60)
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the old code left in the group
    [killed] = flow_runs(home)
    assert killed["state"] == "RUNNING"  # what the kill left: nobody could say otherwise
    [(study_id,)] = query(home, "select id from studies")
    again = rerun(home, feature, space)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "marked CRASHED" in again.stderr
    states = {r["id"]: r["state"] for r in flow_runs(home)}
    assert states.pop(killed["id"]) == "CRASHED"
    assert list(states.values()) == ["COMPLETED"]
    assert query(home, "select id, status from studies") == [(study_id, "completed")]


# ------------------------------------------------------------------- the gateway, in this process
@pytest.fixture()
def stop_request():
    from offramp import stopping

    stopping.reset()
    yield stopping
    stopping.reset()


def test_the_gateway_makes_no_call_once_a_stop_is_requested(home, fake, stop_request):
    from tests.test_gateway import gateway, req

    fake.add("x", answer=lambda m: "ok")
    stop_request.request(signal.SIGTERM)
    results = gateway(home).complete_many([req("a"), req("b"), req("a")])
    assert fake.models["x"].calls == 0
    assert all(r.error and r.error.startswith("Interrupted") and r.cost_usd == 0 for r in results)


def test_the_gateway_abandons_calls_in_flight_on_a_stop_request(home, fake, stop_request):
    """A compile or an evaluation waiting on slow answers returns within a poll, not a timeout."""
    from tests.test_gateway import gateway, req

    slow = fake.add("slow", answer=lambda m: "ok", latency_s=8)
    stopped_at = []

    def stop_when_in_flight() -> None:
        while slow.calls < 2:
            time.sleep(0.05)
        stopped_at.append(time.monotonic())
        stop_request.request(signal.SIGINT)

    threading.Thread(target=stop_when_in_flight, daemon=True).start()
    results = gateway(home, concurrency=2).complete_many([req(t, "fake/slow") for t in "abcd"])
    assert time.monotonic() - stopped_at[0] < 3  # the calls in flight would take 8 s
    assert [r.error.split(":")[0] for r in results] == ["Interrupted"] * 4
    assert slow.calls == 2  # two in flight, abandoned; two never started
