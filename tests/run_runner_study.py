"""Run one migrate-feature study on the fake provider (`install_spaced`) in its own process, on a
chosen Prefect task runner (for the task-runner test).

usage: python -m tests.run_runner_study FEATURE_DIR SPACE_FILE threads|dask PARALLEL
Prints one JSON line: the study's status and how many model calls this (the flow's) process made.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from tests import fake_provider  # noqa: E402
from tests.fake_plugin import install_spaced  # noqa: E402


def main() -> None:
    feature_dir, space, runner, parallel = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    install_spaced()
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import GatewayParams, MigrateParams

    flow = migrate_feature
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        flow = migrate_feature.with_options(
            task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 2, "processes": True})
        )
    # max_trials = the whole grid (2 models x 3 strategies) without racing: the front does not depend
    # on which configs the sampler happened to try
    summary = flow(MigrateParams(
        feature_dir=feature_dir, space=space, max_trials=6, racing=False, parallel=parallel, trigger="cli",
        max_spend_usd=5.0, gateway=GatewayParams(concurrency=4),
    ))
    from offramp.warehouse import Warehouse, warehouse_path

    calls = sum(m.calls for m in fake_provider.PROVIDER.models.values())
    # the preflight's one call per model is the flow's own, before any trial
    _, [(preflight,)] = Warehouse(warehouse_path()).fetch(
        "select count(*) from calls where study_id = ? and purpose = 'preflight' and not cache_hit", [summary.study_id])
    print(json.dumps({"status": summary.status, "calls_in_flow_process": calls - preflight}), flush=True)


if __name__ == "__main__":
    main()
