"""Optuna storage on a real PostgreSQL server (`--storage postgresql://...`, extra `offramp[postgres]`).

The test starts its own server from the Debian binaries (`apt-get install postgresql`; `.ci/run`
installs it): a cluster in a temporary directory, on a free port of 127.0.0.1, its socket in that
directory, stopped by its PID at the end. As root, initdb and postgres run as the `postgres` user
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from offramp.errors import UserError
from offramp.tasks.study.prepare import open_storage
from tests.conftest import ROOT
from tests.helpers import make_feature, make_space
from tests.test_resume import query

MAX_TRIALS = 8


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL server for this test only: yields (its base URL without a database, its bin dir)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    as_user: dict = {}
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
    # not under pytest's tmp_path: its parent (/tmp/pytest-of-root) is 0700, closed to the postgres user
    root = Path(tempfile.mkdtemp(prefix="offramp-pg-"))
    server = None
    try:
        if as_user:
            shutil.chown(root, "postgres", "postgres")
        data = root / "data"
        run = {"cwd": root, "capture_output": True, "text": True, "timeout": 120, **as_user}
        init = subprocess.run([bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], **run)
        assert init.returncode == 0, init.stdout + init.stderr
        port = _free_port()
        log = (root / "server.log").open("w")
        server = subprocess.Popen(
            [bin_dir / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", root, "-c", "fsync=off"],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, **as_user,
        )
        deadline = time.monotonic() + 60
        while subprocess.run([bin_dir / "pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode != 0:
            assert server.poll() is None, (root / "server.log").read_text()
            assert time.monotonic() < deadline, "PostgreSQL did not accept connections within 60 s"
            time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}", bin_dir
    finally:
        if server is not None and server.poll() is None:
            os.kill(server.pid, signal.SIGINT)  # the server's "fast" shutdown
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


def create_database(pg, name: str) -> str:
    base, bin_dir = pg
    port = base.rsplit(":", 1)[1]
    made = subprocess.run([bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", name],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return f"{base}/{name}"


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pg")
    feature = make_feature(root / "feature", n=90, extra={"splits": {"seed": 5, "train": 30, "dev": 30, "test": 30}})
    space = make_space(root / "space.yaml", ["fake/good", "fake/cheap"], strategies={"incumbent": {}, "zero_shot": {}, "few_shot": {"k": [2]}},
                       output_mode=["text"], max_tokens=[8])
    return root, feature, space


def start(home, feature, space, storage) -> subprocess.Popen:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.run_fake_study", str(feature), str(space), str(MAX_TRIALS), storage],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


SEARCHED = "select count(*) from trials where optuna_number is not null and status in ('completed', 'pruned')"


def test_a_study_runs_to_completion_on_postgres(pg, study_files):
    root, feature, space = study_files
    url = create_database(pg, "complete")
    home = root / "complete"
    run = start(home, feature, space, url)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    [(study_id,)] = query(home, "select id from studies")
    assert f"STUDY {study_id} completed" in out
    assert not (home / "optuna.db").exists(), "the study used the default sqlite storage, not PostgreSQL"
    study = optuna.load_study(study_name=study_id, storage=url)  # the search's trials are in PostgreSQL
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                and not t.user_attrs.get("duplicate")]  # a re-proposed config ends PRUNED, marked duplicate
    # the space holds 6 configs (2 models x 3 strategies): the search tries each once
    assert len(finished) == query(home, SEARCHED)[0][0] == 6
    assert query(home, "select optuna_storage from studies")[0][0] == url


def test_a_study_killed_mid_search_resumes_on_postgres(pg, study_files):
    root, feature, space = study_files
    url = create_database(pg, "resume")
    home = root / "resume"
    victim = start(home, feature, space, url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = query(home, SEARCHED)
        if done and done[0][0] >= 3:
            break
        assert victim.poll() is None, victim.stderr.read()[-3000:]
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)  # the study and its ephemeral Prefect server, like a lost machine
    victim.wait(timeout=30)
    before = query(home, "select trial_id, status, quality from trials where status in ('completed', 'pruned') order by trial_id")
    searched_before = query(home, SEARCHED)[0][0]
    assert 3 <= searched_before < 6, "the kill must land mid-search for this test to mean anything"
    [(study_id,)] = query(home, "select id from studies")

    resumed = start(home, feature, space, url)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert f"STUDY {study_id} completed" in out  # the same study, resumed
    after = {r[0]: r for r in query(home, "select trial_id, status, quality from trials")}
    assert all(after[t[0]] == t for t in before), "a trial completed before the kill was lost or changed"
    study = optuna.load_study(study_name=study_id, storage=url)
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                and not t.user_attrs.get("duplicate")]  # a re-proposed config ends PRUNED, marked duplicate
    assert len(finished) == query(home, SEARCHED)[0][0] == 6  # the rest of the search was done, from PostgreSQL's record
    assert not (home / "optuna.db").exists()


def test_a_postgres_url_without_its_driver_names_the_extra_and_hides_the_password():
    with pytest.raises(UserError, match=r"PostgreSQL driver \(pg8000\) is not installed: pip install 'offramp\[postgres\]'") as caught:
        open_storage("postgresql+pg8000://alice:hunter2-secret@127.0.0.1:1/optuna")
    assert "hunter2-secret" not in str(caught.value)
    assert "alice:***@127.0.0.1:1/optuna" in str(caught.value)


def test_a_storage_password_reaches_neither_prefect_nor_the_warehouse(pg, study_files, tmp_path):
    """`--storage postgresql://user:password@...`: the CLI moves the password to PGPASSWORD; the
    flow run's parameters (which Prefect keeps and shows) and the warehouse hold the URL without it.
    A flow parameter with a password (a deployment's form) is refused, naming the way out."""
    from pydantic import ValidationError

    from offramp.flows.params import MigrateParams
    from tests.test_cli_commands import OFFRAMP, _env

    root, feature, space = study_files
    url = create_database(pg, "secret")
    password = "pg-pass-8f3a1c"
    with_password = url.replace("postgres@", f"postgres:{password}@")
    home = tmp_path / "home"
    result = subprocess.run([str(OFFRAMP), "migrate", str(feature), "--space", str(space), "--max-trials", "2",
                             "--storage", with_password], cwd=tmp_path, env=_env(home), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert query(home, "select optuna_storage from studies")[0][0] == url
    for path in [p for p in home.rglob("*") if p.is_file()]:
        assert password.encode() not in path.read_bytes(), f"the password is in {path}"
    assert password not in result.stdout + result.stderr
    with pytest.raises(ValidationError, match="PGPASSWORD"):
        MigrateParams(feature_dir=str(feature), optuna_storage=with_password)
