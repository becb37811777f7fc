"""The study's tasks take values and return values, so any Prefect task runner can run them:
the same study on a Dask cluster of worker processes finds the same front as on the default
thread pool, while the warehouse is written by the flow's process alone."""

from __future__ import annotations

import os

import pytest
from prefect.testing.utilities import prefect_test_harness

from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import GatewayParams, MigrateParams
from offramp.warehouse import Warehouse
from tests import fake_provider
from tests.conftest import ROOT
from tests.fake_plugin import install_slow
from tests.helpers import make_feature, make_space

prefect_dask = pytest.importorskip("prefect_dask")  # the `dask` extra (installed by ./dev)

FRONT = ("select model, strategy, settings, quality, cost_per_1k_usd from v_pareto_front "
         "order by model, strategy, settings")


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def run_study(home, feature, space, task_runner=None, parallel=1):
    os.environ["OFFRAMP_HOME"] = str(home)
    flow = migrate_feature if task_runner is None else migrate_feature.with_options(task_runner=task_runner)
    # max_trials = the whole grid (2 models x 3 strategies) without racing: the front does not depend
    # on which configs the sampler happened to try
    return flow(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=6, racing=False, parallel=parallel, trigger="cli",
                              max_spend_usd=5.0, gateway=GatewayParams(concurrency=2)))


def test_a_process_task_runner_finds_the_thread_runners_front(harness, tmp_path, monkeypatch):
    # Dask's worker processes import the fake provider through OFFRAMP_PLUGINS, as a deployment's would
    monkeypatch.setenv("OFFRAMP_PLUGINS", "tests.fake_plugin:install_slow")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("OFFRAMP_WAREHOUSE", raising=False)
    monkeypatch.setenv("OFFRAMP_HOME", str(tmp_path / "threads"))
    feature = make_feature(tmp_path / "feature", n=60, extra={"splits": {"seed": 5, "train": 20, "dev": 20, "test": 20}})
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/cheap"],
                       strategies={"incumbent": {}, "zero_shot": {}, "few_shot": {"k": [2]}}, max_tokens=[8])

    threads = run_study(tmp_path / "threads", feature, space)
    in_process = {name: m.calls for name, m in fake_provider.PROVIDER.models.items()}
    assert sum(in_process.values()) > 0  # the thread runner called the models from this process
    install_slow()  # fresh call counters
    runner = prefect_dask.DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 2, "processes": True})
    dask = run_study(tmp_path / "dask", feature, space, task_runner=runner, parallel=2)  # two trials at once

    assert threads.status == dask.status == "completed"
    a = Warehouse(tmp_path / "threads" / "warehouse.duckdb")
    b = Warehouse(tmp_path / "dask" / "warehouse.duckdb")
    assert a.fetch(FRONT)[1] == b.fetch(FRONT)[1] != []
    # every paid answer made in a worker reached the warehouse through the flow: same calls, same cache
    count = "select purpose, count(*), count(*) filter (where not cache_hit) from calls group by purpose order by purpose"
    assert a.fetch(count)[1] == b.fetch(count)[1]
    paid = "select count(*) from llm_cache"
    assert a.fetch(paid)[1] == b.fetch(paid)[1] != [(0,)]
    # the calls were made in the workers: this process's fake models answered none of them
    assert b.fetch("select count(*) from calls where not cache_hit")[1][0][0] > 0
    assert sum(m.calls for m in fake_provider.PROVIDER.models.values()) == 0
