"""The study's tasks take values and return values, so any Prefect task runner can run them:
the same study on a Dask cluster of worker processes finds the same front as on the default
thread pool, while the warehouse is written by the flow's process alone. Each study runs in its
own process, killed if it outlives its time (a hung cluster must fail the test, not CI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from offramp.warehouse import Warehouse
from tests.conftest import ROOT
from tests.helpers import make_feature, make_space

pytest.importorskip("prefect_dask")  # the `dask` extra (installed by ./dev)

FRONT = ("select model, strategy, settings, quality, cost_per_1k_usd from v_pareto_front "
         "order by model, strategy, settings")


def run_study(home, feature, space, runner: str, parallel: int, timeout_s: float = 300) -> dict | None:
    """The study's summary, or None when it did not finish within `timeout_s` (killed)."""
    env = {**os.environ, "OFFRAMP_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING",
           # Dask's statistical profiler walks every thread's frames from the worker's event loop;
           # seen here once: the worker deadlocked in that walk's garbage collection. Not needed.
           "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
           # Dask's worker processes import the fake provider through OFFRAMP_PLUGINS, as a deployment's would
           "OFFRAMP_PLUGINS": "tests.fake_plugin:install_spaced",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in ("PREFECT_API_URL", "OFFRAMP_WAREHOUSE"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "tests.run_runner_study", str(feature), str(space), runner, str(parallel)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_a_process_task_runner_finds_the_thread_runners_front(tmp_path):
    feature = make_feature(tmp_path / "feature", n=40, extra={"splits": {"seed": 5, "train": 16, "dev": 12, "test": 12}})
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/cheap"],
                       strategies={"incumbent": {}, "zero_shot": {}, "few_shot": {"k": [2]}}, max_tokens=[8])
    threads = run_study(tmp_path / "threads", feature, space, "threads", 1)
    assert threads is not None, "the thread-pool study did not finish in 300 s"
    # two trials at once, on two worker processes. A Dask cluster that hangs (seen once in ~10 runs,
    # a deadlock inside a worker: see the note above) gets one more try with a fresh state dir.
    dask_home = tmp_path / "dask"
    dask = run_study(dask_home, feature, space, "dask", 2)
    if dask is None:
        dask_home = tmp_path / "dask-again"
        dask = run_study(dask_home, feature, space, "dask", 2)
    assert dask is not None, "the Dask study did not finish in 300 s, twice"

    assert threads["status"] == dask["status"] == "completed"
    assert threads["calls_in_flow_process"] > 0  # the thread pool calls the models from the flow's process
    assert dask["calls_in_flow_process"] == 0  # on Dask, the workers made every call
    a = Warehouse(tmp_path / "threads" / "warehouse.duckdb")
    b = Warehouse(dask_home / "warehouse.duckdb")
    trials = "select model, strategy, status, quality, cost_per_1k_usd, latency_p95_s from v_trials where split = 'dev' order by 1, 2"
    assert a.fetch(FRONT)[1] == b.fetch(FRONT)[1] != [], (a.fetch(trials)[1], b.fetch(trials)[1])
    # every paid answer made in a worker reached the warehouse through the flow: same calls, same cache
    count = "select purpose, count(*), count(*) filter (where not cache_hit) from calls group by purpose order by purpose"
    assert a.fetch(count)[1] == b.fetch(count)[1]
    paid = "select count(*) from llm_cache"
    assert a.fetch(paid)[1] == b.fetch(paid)[1] != [(0,)]
