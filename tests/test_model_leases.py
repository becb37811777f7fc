"""Issue 13: the local model servers a study started are stopped when it ends, and no other: not a
server the user started (`offramp models up`), not one another running study still uses.

The llama.cpp server processes are stood in for by sleeping processes whose command line names the
server module and the alias (so `local_models` recognises them by pid as it does real servers); the
state files, leases, pids and signals are real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from offramp.tasks.gateway import local_models as lm, model_leases


def stand_in(alias: str, home: Path) -> subprocess.Popen:
    """A process `local_models` takes for `alias`'s server, recorded in its state file."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "offramp.tasks.gateway.local_models", alias])
    lm._children[proc.pid] = proc
    run = home / "models" / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{alias}.json").write_text(json.dumps({"pid": proc.pid, "port": 9, "alias": alias, "model_path": "-", "started_at": "-"}))
    return proc


@pytest.fixture()
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def test_release_stops_only_what_a_study_started_once_no_study_holds_it(tmp_path: Path, procs):
    home = tmp_path / "home"
    users, studys = stand_in("qwen2.5-0.5b", home), stand_in("smollm2-135m", home)
    procs += [users, studys]
    model_leases.mark_started(["smollm2-135m"], home)  # the study started this one; the user the other
    model_leases.hold(["qwen2.5-0.5b", "smollm2-135m"], home, "study-a")
    model_leases.hold(["smollm2-135m"], home, "study-b")
    assert model_leases.holders("smollm2-135m", home) == ["study-a", "study-b"]
    assert model_leases.release(home, "study-a") == []  # study b still uses it
    assert users.poll() is None and studys.poll() is None
    assert model_leases.release(home, "study-b") == ["smollm2-135m"]
    assert studys.poll() is not None and users.poll() is None  # the user's server is never a study's to stop
    assert not (home / "models" / "run" / "smollm2-135m.json").exists()


def test_a_dead_studys_lease_does_not_keep_a_server_up(tmp_path: Path, procs):
    home = tmp_path / "home"
    server = stand_in("smollm2-135m", home)
    procs.append(server)
    model_leases.mark_started(["smollm2-135m"], home)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    lease = home / "models" / "run" / "leases" / "smollm2-135m" / "killed-study"
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text(json.dumps({"pid": dead.pid}))  # a study killed before it could release
    model_leases.hold(["smollm2-135m"], home, "study-a")
    assert model_leases.holders("smollm2-135m", home) == ["study-a"]
    assert model_leases.release(home, "study-a") == ["smollm2-135m"] and server.poll() is not None


def test_the_flow_stops_the_servers_it_started_when_it_fails(tmp_path: Path, home: Path, fake, procs, monkeypatch):
    """A study that needs two local models, one already up (the user's), fails after starting the
    other (its spend cap cannot pay for the incumbent): the one it started is stopped, the user's is not."""
    from prefect.testing.utilities import prefect_test_harness

    from offramp.errors import UserError
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams
    from tests.helpers import make_feature, make_space, oracle

    fake.add("old", answer=oracle)
    users = stand_in("qwen2.5-0.5b", home)
    procs.append(users)

    def start(alias, home_, *args):  # the llama.cpp process, stood in for
        procs.append(stand_in(alias, Path(home_)))

    monkeypatch.setattr(lm, "_start", start)
    monkeypatch.setattr(lm, "_wait_healthy", lambda *args: None)
    monkeypatch.setattr(lm, "_healthy", lambda port: True)
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["local/qwen2.5-0.5b", "local/smollm2-135m"])
    params = MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", max_trials=2, max_spend_usd=1e-9)
    with prefect_test_harness(server_startup_timeout=120), pytest.raises(UserError, match="is too small for this study"):
        migrate_feature(params)
    started = [p for p in procs if p is not users]
    assert len(started) == 1  # smollm2-135m: started by the study
    assert started[0].poll() is not None  # ... and stopped when it failed
    assert users.poll() is None  # the user's server is still up
    assert lm._read_state("qwen2.5-0.5b", home) is not None and lm._read_state("smollm2-135m", home) is None
