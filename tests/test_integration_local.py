"""The real thing: the bundled feature on the real local models (llama.cpp via litellm), through
the migrate-feature flow under Prefect's test harness, into a real DuckDB file. The servers are
started by the flow and stopped here by PID."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import GatewayParams, MigrateParams
from offramp.tasks.gateway import local_models
from offramp.warehouse import Warehouse, warehouse_path
from tests.conftest import BANK

pytestmark = pytest.mark.integration


@pytest.fixture()
def servers(home):
    yield home
    pids = [s.pid for s in local_models.status(home) if s.pid]
    local_models.down(None, home)
    for pid in pids:
        with pytest.raises(ProcessLookupError, match="No such process"):
            os.kill(pid, 0)  # gone (reaped by down) -- never left behind


def test_migration_on_real_local_models(servers, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "name": "tiny-local",
        "models": ["local/qwen2.5-0.5b", "local/smollm2-135m"],
        "strategies": {"incumbent": {}, "few_shot": {"k": [2]}},
        "settings": {"max_tokens": [32], "output_mode": ["json_schema"]},
    }))
    with prefect_test_harness(server_startup_timeout=120):
        summary = migrate_feature(MigrateParams(
            feature_dir=str(BANK), deprecated_model="local/smollm2-135m", space=str(space), max_examples=4,
            trigger="cli", gateway=GatewayParams(concurrency=2),
        ))
    wh = Warehouse(warehouse_path())
    _, [(status,)] = wh.fetch("select status from studies where id = ?", [summary.study_id])
    assert status == "completed"
    _, rows = wh.fetch(
        "select model, count(*), sum(prompt_tokens), sum(completion_tokens), count(error), count(output_text), sum(cost_usd) "
        "from calls where study_id = ? group by model order by model", [summary.study_id]
    )
    by_model = {r[0]: r[1:] for r in rows}
    assert set(by_model) == {"local/qwen2.5-0.5b", "local/smollm2-135m"}
    for model, (n, prompt_tokens, completion_tokens, errors, outputs, cost) in by_model.items():
        assert n >= 4 and errors == 0 and outputs == n, model
        assert prompt_tokens > 50 * n and completion_tokens > 0, model  # real usage from the server
        assert cost > 0, model  # priced by tasks/prices.yaml
    # JSON-schema output on the real server (the shipped prompt + provider-side schema) parses into a label
    _, [(parsed, total)] = wh.fetch(
        "select count(prediction), count(*) from calls c join trials t using (study_id, trial_id) "
        "where c.study_id = ? and t.model = 'local/qwen2.5-0.5b' and t.strategy = 'incumbent' "
        "and json_extract_string(t.settings, '$.output_mode') = 'json_schema'",
        [summary.study_id],
    )
    assert total > 0 and parsed == total
    # The front: a dev candidate (completed, or stopped at a racing stage) that does not beat the trivial answer's
    # floor (top of its quality interval above it) is infeasible, and the front has a config exactly when some
    # completed candidate is feasible. On 4 examples the tiny models may all score at or under the floor (it happened
    # in CI): then all are stopped early and the front is empty, which is the right answer.
    _, [(n_front,)] = wh.fetch("select count(*) from v_pareto_front where study_id = ?", [summary.study_id])
    _, [(selection,)] = wh.fetch("select selection from studies where id = ?", [summary.study_id])
    floor = json.loads(selection)["trivial"]["quality"]
    _, searched = wh.fetch(
        "select trial_id, greatest(coalesce(quality_ci_high, quality), quality) > ?, feasible and status = 'completed' "
        "from v_trials where study_id = ? and split = 'dev' and status in ('completed', 'pruned') "
        "and role in ('candidate', 'naive_swap')",
        [floor, summary.study_id],
    )
    assert searched
    assert not any(feasible for _, beats, feasible in searched if not beats), searched
    assert (n_front >= 1) == any(feasible for _, _, feasible in searched), searched
    # DSPy few-shot compiled on train through the gateway, on the real model, and evaluated on dev
    _, programs = wh.fetch(
        "select model, compile_calls, compile_tokens, json_array_length(json_extract(program, '$.demos')) "
        "from programs where study_id = ? and strategy = 'few_shot'", [summary.study_id]
    )
    assert {p[0] for p in programs} == {"local/qwen2.5-0.5b"}
    assert all(calls > 0 and tokens > 0 and 1 <= demos <= 2 for _, calls, tokens, demos in programs)
    _, [(optimize_calls,)] = wh.fetch("select count(*) from calls where study_id = ? and purpose = 'optimize'", [summary.study_id])
    assert optimize_calls == sum(p[1] for p in programs)
    _, [(few_shot_dev,)] = wh.fetch(
        "select count(*) from trials where study_id = ? and strategy = 'few_shot' and split = 'dev' "
        "and status in ('completed', 'pruned')",
        [summary.study_id],
    )
    assert few_shot_dev >= 1
