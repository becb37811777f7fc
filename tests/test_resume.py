"""SIGKILL mid-study, run the same command again: the study resumes. No completed trial is lost,
no paid call is paid again, and the front is the one an uninterrupted run finds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from offramp.warehouse import Warehouse
from tests.conftest import ROOT
from tests.helpers import make_feature, make_space

MAX_TRIALS = 8


def start(home, feature, space) -> subprocess.Popen:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.run_fake_study", str(feature), str(space), str(MAX_TRIALS)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def query(home, sql, params=None):
    """Read the study's warehouse from this (another) process, as `offramp sql` does: read-only,
    waiting out the writer's short write locks."""
    wh = Warehouse(home / "warehouse.duckdb", wait_s=120)
    if not wh.path.exists():
        return []
    try:
        return wh.fetch(sql, params or [])[1]
    except duckdb.CatalogException:  # the schema is not there yet
        return []


FRONT = (
    "select t.model, t.strategy, t.settings, t.quality, t.cost_per_1k_usd from v_pareto_front t "
    "order by t.model, t.strategy, t.settings"
)


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    feature = make_feature(root / "feature", n=90, extra={"splits": {"seed": 5, "train": 30, "dev": 30, "test": 30}})
    space = make_space(root / "space.yaml", ["fake/good", "fake/cheap"], strategies={"incumbent": {}, "zero_shot": {}, "few_shot": {"k": [2]}},
                       output_mode=["text"], max_tokens=[8])
    return root, feature, space


def test_killed_study_resumes_to_the_uninterrupted_front(study_files):
    root, feature, space = study_files
    # an uninterrupted run: the reference
    reference = start(root / "reference", feature, space)
    out, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]
    expected_front = query(root / "reference", FRONT)
    assert expected_front

    # the same study, killed once a few search trials have completed
    home = root / "killed"
    victim = start(home, feature, space)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = query(home, "select count(*) from trials where optuna_number is not null and status in ('completed', 'pruned')")
        if done and done[0][0] >= 3:
            break
        assert victim.poll() is None, victim.stderr.read()[-3000:]
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)  # the study and its ephemeral Prefect server, like a lost machine
    victim.wait(timeout=30)
    before = query(home, "select trial_id, status, quality from trials where status in ('completed', 'pruned') order by trial_id")
    paid_before = {r[0] for r in query(home, "select cache_key from calls where not cache_hit and error is null")}
    [(study_id,)] = query(home, "select id from studies")
    searched_before = query(home, "select count(*) from trials where optuna_number is not null and status in ('completed', 'pruned')")[0][0]
    assert 3 <= searched_before < 6, "the kill must land mid-search for this test to mean anything"
    assert query(home, "select status from studies")[0][0] == "running"

    # the same command again
    resumed = start(home, feature, space)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert f"STUDY {study_id} completed" in out  # the same study, resumed, not a new one
    after = {r[0]: r for r in query(home, "select trial_id, status, quality from trials")}
    assert all(after[t[0]] == t for t in before), "a trial completed before the kill was lost or changed"
    repaid = query(home, "select cache_key from calls where not cache_hit and error is null group by 1 having count(*) > 1")
    assert not repaid, f"{len(repaid)} paid calls were paid again"
    assert len(paid_before) > 0
    searched_after = query(home, "select count(*) from trials where optuna_number is not null and status in ('completed', 'pruned')")[0][0]
    assert searched_after > searched_before  # the resumed run did the rest of the search
    assert query(home, FRONT) == expected_front
    assert query(home, "select count(*) from trials where status = 'running'")[0][0] == 0
