"""Issue 13, the control room: what a person sees of a migration in the Prefect UI (the run's final
state, its log, its table artifact), in optuna-dashboard (the Optuna storage) and in the terminal
report. Two real studies under Prefect's test harness, on the fake provider: one that selects a
config, one where nothing passes the policy."""

from __future__ import annotations

import asyncio
import json
import re

import optuna
import pytest
from prefect.testing.utilities import prefect_test_harness
from rich.console import Console

from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.evidence.policy import SelectionPolicy
from offramp.tasks.evidence.report import load_report
from offramp.tasks.evidence.terminal import render_report
from offramp.warehouse import Warehouse, warehouse_path
from tests.helpers import LABELS, make_feature, make_space, oracle


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _wrong(messages: list[dict]) -> str:
    right = oracle(messages)
    return LABELS[(LABELS.index(right) + 1) % 3] if right in LABELS else "alpha"


def _near(messages: list[dict]) -> str:
    """Right except on the messages numbered ...3 or ...7 (a fifth of them)."""
    return _wrong(messages) if re.search(r"message \d*[37] ", messages[-1]["content"]) else oracle(messages)


def _run(tmp_path, incumbent: str, models: list[str], **params):
    feature = make_feature(tmp_path / "feature", incumbent=incumbent)
    space = make_space(tmp_path / "space.yaml", models, strategies={"incumbent": {}}, output_mode=["text"], max_tokens=[8, 16])
    state = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", max_trials=6, **params),
                            return_state=True)
    return state, state.result()


async def _flow_run_and_logs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return run, [log.message for log in logs]


async def _front_artifact(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async with get_client() as client:
        [artifact] = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["migration-front"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


@pytest.fixture(scope="module")
def selected(harness, tmp_path_factory):
    """The incumbent answers one label (1/3 right); fake/good is always right: it is selected."""
    from tests import fake_provider

    root = tmp_path_factory.mktemp("selected")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OFFRAMP_HOME", str(root / "home"))
        mp.delenv("OFFRAMP_WAREHOUSE", raising=False)
        fake = fake_provider.install()
        fake.models.clear()
        fake.add("old", answer=lambda m: "alpha")
        fake.add("good", answer=oracle)
        fake.add("near", answer=_near)
        state, summary = _run(root, "fake/old", ["fake/good", "fake/near"])
        yield state, summary, root / "home"


@pytest.fixture(scope="module")
def nothing_safe(harness, tmp_path_factory):
    """The incumbent (fake/old here) is always right; fake/near loses a fifth of the examples and every config
    breaks the cost limit: nothing passes the policy; fake/near is the least bad."""
    from tests import fake_provider

    root = tmp_path_factory.mktemp("nothing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OFFRAMP_HOME", str(root / "home"))
        mp.delenv("OFFRAMP_WAREHOUSE", raising=False)
        fake = fake_provider.install()
        fake.models.clear()
        fake.add("old", answer=oracle)
        fake.add("near", answer=_near)
        fake.add("bad", answer=lambda m: "alpha")
        policy = SelectionPolicy(quality_tolerance=0.3, max_cost_per_1k_usd=1e-9)
        state, summary = _run(root, "fake/old", ["fake/near", "fake/bad"], policy=policy)
        yield state, summary, root / "home"


def test_a_selection_is_the_runs_state_message_and_a_log_line(selected):
    state, summary, _ = selected
    chosen = summary.selection["trial_id"]
    assert chosen is not None
    run, logs = asyncio.run(_flow_run_and_logs(state.state_details.flow_run_id))
    assert run.state.type.value == "COMPLETED" and run.state.name == "Completed"
    label = next(t.label for t in summary.trials if t.trial_id == chosen)
    assert run.state.message.startswith(f"Selected trial {chosen} ({label}): ")
    assert summary.selection["reason"][:80] in run.state.message
    assert any(line.startswith("decision (Completed): Selected trial") for line in logs)


def test_nothing_safe_is_a_named_completed_state_not_a_plain_green_run(nothing_safe):
    state, summary, home = nothing_safe
    sel = summary.selection
    assert sel["trial_id"] is None and sel["recommended_trial_id"] is not None
    run, logs = asyncio.run(_flow_run_and_logs(state.state_details.flow_run_id))
    assert run.state.type.value == "COMPLETED"  # not FAILED: no retries, no failure alerts; the evidence is complete
    assert run.state.name == "No safe config"
    assert run.state.message.startswith("No config is safe to ship: no front config meets the policy")
    assert f"Least bad: trial {sel['recommended_trial_id']}" in run.state.message
    assert any(line.startswith("decision (No safe config): No config is safe to ship") for line in logs)


def test_terminal_report_shows_the_least_bad_configs_flips_when_nothing_is_selected(nothing_safe, monkeypatch):
    _, summary, home = nothing_safe
    monkeypatch.setenv("OFFRAMP_HOME", str(home))
    least_bad = summary.selection["recommended_trial_id"]
    report = load_report(Warehouse(warehouse_path()), summary.study_id)
    regressed = [f for f in report.flips if f["trial_id"] == least_bad and f["direction"] == "regressed"]
    assert regressed  # fake/near is wrong on the messages numbered ...3 and ...7 of the test split
    console = Console(record=True, width=200)
    render_report(console, report)
    text = console.export_text()
    assert f"Right -> wrong under trial {least_bad} ({len(regressed)}), e.g.:" in text
    assert regressed[0]["example_id"] in text


def test_the_table_artifact_is_formatted_for_a_person(selected):
    state, summary, _ = selected
    rows = asyncio.run(_front_artifact(state.state_details.flow_run_id))
    dev = [t for t in summary.trials if t.split == "dev"]
    assert [r["trial"] for r in rows] == [t.trial_id for t in dev]
    assert len(rows[0]) <= 9  # the UI gives every column the same share of the page: few columns, short cells
    for row in rows:
        for key, value in row.items():
            if key in ("trial",):
                continue
            assert isinstance(value, str), (key, value)  # no raw floats (0.030229600694444445)
            assert not re.search(r"\d\.\d{5,}(?!\d*%)", value) or key == "$ / 1k", (key, value)
            assert len(value) <= 60, (key, value)
        assert re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]|-", row["quality [95% CI]"])
        assert re.fullmatch(r"\$\d+\.\d{2,}|\$0|-", row["$ / 1k"]) and len(row["$ / 1k"].rstrip("0")) <= 12
        assert re.fullmatch(r"\d+\.\d{2} s|\d+ s|-", row["p95"])
    marks = {r["trial"]: r["front"] for r in rows}
    assert marks[summary.selection["trial_id"]] == "selected"
    assert {t for t, m in marks.items() if m in ("front", "selected")} == set(summary.front) & set(marks)


def test_optuna_trials_carry_offramps_trial_ids_roles_and_stages_and_no_duplicate_fails(selected, monkeypatch):
    _, summary, home = selected
    monkeypatch.setenv("OFFRAMP_HOME", str(home))
    wh = Warehouse(warehouse_path())
    _, [(storage,)] = wh.fetch("select optuna_storage from studies where id = ?", [summary.study_id])
    study = optuna.load_study(study_name=summary.study_id, storage=storage or f"sqlite:///{home / 'optuna.db'}")
    _, rows = wh.fetch("select optuna_number, trial_id, role, status, stage from trials where study_id = ? and split = 'dev' "
                       "and optuna_number is not null", [summary.study_id])
    by_number = {r[0]: r for r in rows}
    measured = [t for t in study.trials if not t.user_attrs.get("duplicate")]
    assert {t.number for t in measured} == set(by_number)
    for t in measured:
        _, trial_id, role, status, stage = by_number[t.number]
        assert t.user_attrs["offramp_trial_id"] == trial_id and t.user_attrs["role"] == role
        assert t.user_attrs["stage"] == stage
        what = "measured on" if status == "completed" else "pruned at"
        assert t.user_attrs["offramp"].startswith(f"trial {trial_id} ({role}): {what} stage ")
        assert t.state.name == ("COMPLETE" if status == "completed" else "PRUNED")
    duplicates = [t for t in study.trials if t.user_attrs.get("duplicate")]
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in duplicates)  # skipped, not failed
    assert all(t.user_attrs["offramp"].startswith("skipped: repeats ") for t in duplicates)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert duplicates  # a 4-point space searched with 6 trials: the sampler repeats itself
    assert len(by_number) == 4  # every point measured: the skipped repeats did not count toward max_trials
