"""The migrate-feature flow end to end under Prefect's test harness, on the fake provider."""

from __future__ import annotations

import json

import pytest
from prefect.testing.utilities import prefect_test_harness

from offramp.errors import UserError
from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.search.pareto import Point, pareto_front
from offramp.warehouse import Warehouse, warehouse_path
from tests.helpers import dspy_reply, make_feature, make_space, oracle


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def setup_models(fake):
    fake.add("old", answer=lambda m: "alpha")  # the incumbent: always the same label (1/3 right)
    fake.add("good", answer=oracle)  # always right
    fake.add("sloppy", answer=lambda m: f"I think {oracle(m)}, or maybe not" if "1" in m[-1]["content"] else oracle(m))
    fake.models["old"].answer = lambda m: dspy_reply(m, lambda name, text: "alpha") or "alpha"


def run(tmp_path, **kwargs):
    feature = make_feature(tmp_path / "feature")
    space = make_space(
        tmp_path / "space.yaml", ["fake/good", "fake/sloppy"], strategies={"incumbent": {}, "few_shot": {"k": [3]}},
        output_mode=["text"],
    )
    kwargs.setdefault("max_trials", 6)
    return_state = kwargs.pop("return_state", False)
    params = MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", **kwargs)
    return migrate_feature(params, return_state=return_state)


def test_flow_stores_study_trials_calls_and_selects(harness, home, fake, tmp_path):
    setup_models(fake)
    summary = run(tmp_path, deprecated_model="fake/old")
    wh = Warehouse(warehouse_path())
    _, [(status, selected, selection)] = wh.fetch(
        "select status, selected_trial_id, selection from studies where id = ?", [summary.study_id]
    )
    assert status == "completed"
    # the incumbent as baseline, the 2 naive swaps enqueued first, then the sampler's trials
    _, dev = wh.fetch(
        "select trial_id, role, status, n_examples, quality, optuna_number, stage from trials "
        "where study_id = ? and split = 'dev' order by trial_id", [summary.study_id])
    assert [r[1] for r in dev][:3] == ["incumbent", "naive_swap", "naive_swap"]
    assert len(dev) == 1 + 6 and {r[1] for r in dev[3:]} <= {"candidate", "naive_swap"}
    numbers = [r[5] for r in dev]
    assert numbers[0] is None and numbers[1:3] == [0, 1] and numbers[1:] == sorted(set(numbers[1:]))  # repeats skipped
    assert all(r[2] in ("completed", "pruned") for r in dev)
    assert all(r[6] == 1.0 for r in dev if r[2] == "completed") and all(r[6] < 1.0 for r in dev if r[2] == "pruned")
    _, per_trial = wh.fetch(
        "select t.trial_id, t.status, t.stage, count(c.example_id) from trials t join calls c using (study_id, trial_id) "
        "where t.study_id = ? and t.split = 'dev' and c.purpose = 'eval' group by all", [summary.study_id])
    assert len(per_trial) == len(dev)
    for _, status, stage, n in per_trial:  # racing spends only on the stages a trial reached
        assert n == (20 if status == "completed" else int(round(stage * 20)))
    _, dev_labels = wh.fetch(
        "select c.prediction from calls c where c.study_id = ? and c.trial_id = 0", [summary.study_id]
    )
    assert {json.loads(r[0])["label"] for r in dev_labels} == {"alpha"}  # the incumbent's behaviour, recorded
    # every dev example of every trial is a call row with its score
    _, [(n_calls, n_scored, n_examples)] = wh.fetch(
        "select count(*), count(score), (select sum(n_examples) from trials where study_id = ?) "
        "from calls where study_id = ? and purpose = 'eval'", [summary.study_id, summary.study_id]
    )
    assert n_calls == n_scored == n_examples
    # the 'good' model is perfect and is selected or dominated only by an equally perfect cheaper one
    assert selected is not None
    _, [(selected_model, selected_quality)] = wh.fetch(
        "select model, quality from trials where study_id = ? and trial_id = ?", [summary.study_id, selected]
    )
    assert selected_model == "fake/good" and selected_quality == 1.0
    selection = json.loads(selection)
    assert selection["policy"]["prefer"] == "cheapest" and "paired 95% interval" in selection["rule"]
    # the evidence: overall + per-slice comparisons of every front config, and the flips, in the views
    _, regressions = wh.fetch(
        "select trial_id, slice_field, slice_value, n, diff, diff_ci_low, better from v_regressions where study_id = ?",
        [summary.study_id])
    skipped = {int(k) for k in selection.get("not_confirmed", {})}  # front configs that could not have won (confirm.py)
    naive = {r[0] for r in dev if r[1] == "naive_swap" and r[2] in ("completed", "pruned")}  # always confirmed (references)
    assert {r[0] for r in regressions} == (set(summary.front) - skipped) | naive and selected not in skipped
    overall = [r for r in regressions if r[1] == "(all)" and r[0] == selected]
    assert overall and overall[0][3] == 20 and overall[0][6]  # selected: clearly better than the incumbent
    assert {r[2] for r in regressions if r[1] == "group"} == {"g1", "g2"}
    _, [(n_flips,)] = wh.fetch("select count(*) from v_flips where study_id = ? and trial_id = ?", [summary.study_id, selected])
    assert n_flips > 0


def test_view_front_equals_python_front_and_the_front_of_optunas_trials(harness, home, fake, tmp_path):
    import optuna

    setup_models(fake)
    summary = run(tmp_path, max_trials=8)
    _, rows = Warehouse(warehouse_path()).fetch(
        "select trial_id, quality, cost_per_1k_usd, latency_p95_s, role, (latency_p95_ci_high - latency_p95_ci_low) / 2 "
        "from v_trials where study_id = ? and split = 'dev'",
        [summary.study_id],
    )
    _, statuses = Warehouse(warehouse_path()).fetch(
        "select trial_id, status, feasible from trials where study_id = ? and split = 'dev'", [summary.study_id])
    complete = {r[0] for r in statuses if r[1] == "completed" and r[2]}
    points = [Point(r[0], r[1], r[2], r[3], r[5]) for r in rows if r[4] != "incumbent" and r[0] in complete]
    assert all(r[5] is not None and r[5] >= 0 for r in rows if r[0] in complete)  # every measured p95 has its noise
    _, loads = Warehouse(warehouse_path()).fetch(
        "select count(*) from trials where study_id = ? and status = 'completed' and load_avg_max is null", [summary.study_id])
    assert loads == [(0,)]  # every measured trial records the machine's load while it ran
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report

    assert "Machine load while the trials ran" in markdown(load_report(Warehouse(warehouse_path()), summary.study_id))
    _, front_rows = Warehouse(warehouse_path()).fetch("select trial_id from v_pareto_front where study_id = ?", [summary.study_id])
    assert sorted(r[0] for r in front_rows) == sorted(p.key for p in pareto_front(points)) == sorted(summary.front)
    study = optuna.load_study(study_name=summary.study_id, storage=f"sqlite:///{home / 'optuna.db'}")
    # Optuna's trials carry the same objectives and noise; its own best_trials compare raw p95s
    told = [Point(t.user_attrs["offramp_trial_id"], *t.values, t.user_attrs["latency_noise"]) for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("feasible")]
    assert sorted(p.key for p in pareto_front(told)) == sorted(summary.front)


def test_second_run_is_served_from_the_cache(harness, home, fake, tmp_path):
    setup_models(fake)
    first = run(tmp_path)
    calls_after_first = {name: m.calls for name, m in fake.models.items()}
    second = run(tmp_path)
    assert {name: m.calls for name, m in fake.models.items()} == calls_after_first
    wh = Warehouse(warehouse_path())
    _, [(hits, total, spend)] = wh.fetch(
        "select count(*) filter (where cache_hit), count(*), sum(cost_usd) from calls where study_id = ?", [second.study_id]
    )
    assert hits == total and spend == 0
    # objectives do not depend on the cache: same cost per 1k in both studies
    _, rows = wh.fetch(
        "select study_id, trial_id, cost_per_1k_usd, quality from trials where split = 'dev' order by study_id, trial_id"
    )
    by_study = {}
    for study_id, trial_id, cost, quality in rows:
        by_study.setdefault(study_id, []).append((trial_id, cost, quality))
    # compiled programs are reused from the warehouse: the second study made no optimizer calls
    _, [(optimize_calls,)] = wh.fetch("select count(*) from calls where study_id = ? and purpose = 'optimize'", [second.study_id])
    _, reuse = wh.fetch("select reused_program from trials where study_id = ? and strategy = 'few_shot'", [second.study_id])
    assert optimize_calls == 0 and reuse and all(r[0] for r in reuse)
    _, [(first_optimize,)] = wh.fetch("select count(*) from calls where study_id = ? and purpose = 'optimize'", [first.study_id])
    assert first_optimize > 0
    first_rows, second_rows = by_study[first.study_id], by_study[second.study_id]
    assert [r[0] for r in first_rows] == [r[0] for r in second_rows]
    assert [v for r in first_rows for v in r[1:]] == pytest.approx([v for r in second_rows for v in r[1:]])


def test_wrong_deprecated_model_is_refused_before_any_call(harness, home, fake, tmp_path):
    setup_models(fake)
    with pytest.raises(UserError, match="does not use it"):
        run(tmp_path, deprecated_model="fake/other")
    assert sum(m.calls for m in fake.models.values()) == 0


def test_unknown_model_is_refused_before_any_call(harness, home, fake, tmp_path):
    setup_models(fake)
    feature = make_feature(tmp_path / "feature")
    space = tmp_path / "space.yaml"
    space.write_text(
        "name: s\nmodels: [fake/good, nosuchprovider/model-x]\nprices:\n"
        "  fake/good: {input_cost_per_token: 1.0e-6, output_cost_per_token: 1.0e-6}\n"
        "  fake/old: {input_cost_per_token: 1.0e-6, output_cost_per_token: 1.0e-6}\n"
    )
    with pytest.raises(UserError, match="nosuchprovider/model-x"):
        migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space)))
    assert sum(m.calls for m in fake.models.values()) == 0


def test_artifacts_exist_on_the_flow_run(harness, home, fake, tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    setup_models(fake)
    state = run(tmp_path, max_trials=3, return_state=True)
    summary = state.result()
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None

    async def artifacts():  # this flow run's own, not those earlier tests left on the shared harness
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["migration-report", "migration-front"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            ))

    arts = {a.key: a for a in asyncio.run(artifacts())}
    assert set(arts) == {"migration-report", "migration-front"}
    assert all(a.flow_run_id == flow_run_id for a in arts.values())
    assert summary.study_id in arts["migration-report"].description
    assert summary.study_id in arts["migration-front"].description
    assert summary.report_path in arts["migration-report"].data


def test_local_server_not_up_is_a_clear_error_when_not_allowed_to_start(home):
    from offramp.flows.migrate_feature import ensure_local_models

    with pytest.raises(UserError, match=r"not up: \['qwen2.5-0.5b'\].*offramp models up qwen2.5-0.5b"):
        ensure_local_models.fn(["local/qwen2.5-0.5b", "fake/x"], start=False)


def test_spend_cap_too_small_for_the_incumbent_and_the_test_reserve_is_refused(harness, home, fake, tmp_path):
    """A cap that cannot pay for the incumbent's evaluation and the held-out confirmation is refused
    before any call (the capped study's test phase, selection and report: tests/test_money.py)."""
    setup_models(fake)
    with pytest.raises(UserError, match=r"--max-spend: \$0\.0040 is too small.*give --max-spend"):
        run(tmp_path, max_spend_usd=0.004)
    assert sum(m.calls for m in fake.models.values()) == 0
