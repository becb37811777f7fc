"""Issue 13, the control room: what a person sees of a migration in the Prefect UI (the run's final
state, its log, its table artifact), in optuna-dashboard (the Optuna storage) and in the terminal
report. Two real studies under Prefect's test harness, on the fake provider: one that selects a
config, one where nothing passes the policy."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import re

import optuna
import pytest
from prefect.testing.utilities import prefect_test_harness
from rich.console import Console

from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.evidence.figures import cost_axis, front_figure, slice_figure
from offramp.tasks.evidence.policy import SelectionPolicy
from offramp.tasks.evidence.render import html_page, markdown, table_rows
from offramp.tasks.evidence.report import load_report
from offramp.tasks.evidence.reviewer import FLIPS_SHOWN, sections
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


async def _front_artifact(flow_run_id, key="migration-front"):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async with get_client() as client:
        [artifact] = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
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
    assert f"Right -> wrong under trial {least_bad} ({len(regressed)})" in text
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


# --- issue 13, the report a reviewer signs: one model, four surfaces, a readable page ----------------------------


def _report(study, monkeypatch):
    _, summary, home = study
    monkeypatch.setenv("OFFRAMP_HOME", str(home))
    return summary, load_report(Warehouse(warehouse_path()), summary.study_id)


@pytest.mark.parametrize("which", ["selected", "nothing_safe"])
def test_one_report_model_gives_the_same_numbers_in_terminal_markdown_table_artifacts_and_html(which, request, monkeypatch):
    """Every cell of the decision, verdict, slice, flip and trial tables is in all four surfaces, and the
    verdict table's numbers are the warehouse's (v_trials, v_regressions), not recomputed by a renderer."""
    state = request.getfixturevalue(which)[0]
    summary, r = _report(request.getfixturevalue(which), monkeypatch)
    model = {s.key: s for s in sections(r)}
    assert [s.key for s in sections(r)][:4] == ["decision", "verdicts", "slices", "flips"]  # what a reviewer reads first
    decision = model["decision"].notes[0]
    chosen = summary.selection["trial_id"]
    assert decision.startswith(f"Decision: SELECTED trial {chosen} (" if chosen is not None else "Decision: NO SAFE CONFIG (least bad: ")
    # the verdict table: every front config, its numbers the warehouse's
    wh = Warehouse(warehouse_path())
    _, front = wh.fetch("select trial_id from v_pareto_front where study_id = ?", [summary.study_id])
    verdicts = model["verdicts"]
    assert {int(row[0]) for row in verdicts.rows} >= {t for (t,) in front} and front
    for row in verdicts.rows:
        cells = dict(zip(verdicts.columns, row))
        _, confirmed = wh.fetch(
            "select t.quality, g.diff, g.diff_ci_low, g.diff_ci_high from v_trials t join v_regressions g "
            "on g.study_id = t.study_id and g.trial_id = t.source_trial_id and g.slice_field = '(all)' "
            "where t.study_id = ? and t.split = 'test' and t.source_trial_id = ?", [summary.study_id, int(row[0])])
        if cells["verdict"] == "not confirmed":  # a front config that could not win: never run on test (confirm.py)
            assert confirmed == [] and str(row[0]) in summary.selection["not_confirmed"]
            assert cells["test quality"] == cells["vs incumbent [95% CI]"] == "-"
            continue
        [(test_quality, diff, low, high)] = confirmed
        assert cells["test quality"] == f"{test_quality:.3f}"
        assert cells["vs incumbent [95% CI]"] == f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
        assert cells["verdict"] in ("SELECTED", "accepted", "REJECTED", "REJECTED (least bad)")
        assert (cells["verdict"] == "SELECTED") == (int(row[0]) == chosen)
    # the four surfaces
    console = Console(record=True, width=3000)
    render_report(console, r)
    terminal = console.export_text()
    md = markdown(r)
    page = html_page(r)
    artifacts = {key: asyncio.run(_front_artifact(state.state_details.flow_run_id, key))
                 for key in ("migration-verdicts", "migration-front")}
    assert artifacts["migration-verdicts"] == table_rows(r, "verdicts")
    assert artifacts["migration-front"] == table_rows(r, "trials")
    assert [str(x["trial"]) for x in artifacts["migration-verdicts"]] == [row[0] for row in verdicts.rows]
    assert decision in terminal and decision in md and html.escape(decision) in page
    assert verdicts.after and len(verdicts.after) == len(verdicts.rows)
    for line in verdicts.after:  # each front config's reasons: what passed, what failed, by how much
        assert line in md and html.escape(line) in page and line in terminal.replace("\n", "")
    for key in ("verdicts", "slices", "flips", "trials"):
        s = model[key]
        for row in s.rows:
            assert "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in md, (key, row)
            assert "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" in page, (key, row)
            line = next((x for x in terminal.splitlines() if f" {row[0]} " in x and all(c in x for c in row)), None)
            assert line is not None, (key, row)


def test_the_html_front_plot_is_readable(selected, nothing_safe, monkeypatch):
    """Every dev trial is one labelled marker (none drawn over another), the decision's config is
    marked, the legend sits under the plot away from the colour bar, and a cost range spanning decades
    gets a log axis."""
    for study, mark in ((selected, "selected"), (nothing_safe, "least bad")):
        summary, r = _report(study, monkeypatch)
        fig = front_figure(r)
        dev = {t.trial_id for t in r.trials if t.split == "dev" and t.measurement.quality is not None}
        drawn = [tid for trace in fig.data for ids in trace.customdata for tid in ids]
        assert sorted(drawn) == sorted(dev)  # each trial exactly once: no naive-swap diamond over a front circle
        points = [(x, y) for trace in fig.data for x, y in zip(trace.x, trace.y)]
        assert len(points) == len(set(points))  # trials at the same point share one marker
        for trace in fig.data:
            assert trace.mode == "markers+text" and all(str(label).strip() for label in trace.text)
            for ids, label in zip(trace.customdata, trace.text):
                assert str(ids[0]) in label
        focus = summary.selection["trial_id"] if mark == "selected" else summary.selection["recommended_trial_id"]
        [marked] = [trace for trace in fig.data if trace.name.startswith(f"{mark}: trial ")]
        assert [focus] in [list(ids) for ids in marked.customdata] or any(focus in ids for ids in marked.customdata)
        assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # under the plot
        assert fig.layout.coloraxis.colorbar.x > 1  # the colour bar at the right, never under the legend
        costs = [t.measurement.cost_per_1k_usd for t in r.trials if t.split == "dev" and t.measurement.cost_per_1k_usd]
        assert fig.layout.xaxis.type == ("log" if max(costs) / min(costs) >= 10 else "linear")
    spread = dataclasses.replace(r, trials=[
        dataclasses.replace(t, measurement=dataclasses.replace(t.measurement, cost_per_1k_usd=(t.measurement.cost_per_1k_usd or 0.01)
                                                                * 10 ** (i % 4)))
        for i, t in enumerate(r.trials)])
    assert front_figure(spread).layout.xaxis.type == "log"
    assert cost_axis([0.09, 0.44]) == "linear" and cost_axis([0.0004, 0.44]) == "log" and cost_axis([0.0, 0.44]) == "linear"


def test_the_html_page_leads_with_the_decision_and_verdicts_and_names_slices_by_config(selected, monkeypatch):
    summary, r = _report(selected, monkeypatch)
    page = html_page(r)
    first_table = page.index("<table>")
    assert page.index("Decision: SELECTED") < first_table < page.index("Verdicts") + 2000
    head = page[first_table: page.index("</table>", first_table)]
    assert "<th>verdict</th>" in head and "<th>vs incumbent [95% CI]</th>" in head
    reasons = page[page.index("</table>", first_table):]
    for v in summary.selection["verdicts"]:  # what passed or failed, by how much, right under the table
        if r.on_front(r.trial(v["trial_id"])):
            assert html.escape(v["why"]) in reasons[:5000]
    for t in r.front:
        assert f"<tr><td>{t.trial_id}</td><td>{html.escape(t.label)}</td>" in head
    fig = slice_figure(r)
    assert fig is not None
    for trace in fig.data:  # not "trial N" alone: the config
        trial_id = int(trace.name.split(":")[0].removeprefix("trial "))
        assert trace.name == f"trial {trial_id}: {r.trial(trial_id).label}"
    assert fig.layout.legend.orientation == "h"


def test_flips_are_capped_in_every_surface_with_the_full_list_in_sql(nothing_safe, monkeypatch):
    """956 flips made one page 5.2 MB: every surface shows at most FLIPS_SHOWN of the decision's config's
    flips and says how to get all of them."""
    summary, r = _report(nothing_safe, monkeypatch)
    focus = summary.selection["recommended_trial_id"]
    many = [{"trial_id": focus, "example_id": f"ex{i}", "direction": "regressed" if i % 3 else "improved",
             "input_text": "a customer message " * 20, "incumbent_prediction": "alpha", "candidate_prediction": "beta"}
            for i in range(956)]
    big = dataclasses.replace(r, flips=many)
    flips = {s.key: s for s in sections(big)}["flips"]
    assert len(flips.rows) == FLIPS_SHOWN and all(row[1] == "right -> wrong" for row in flips.rows)
    assert any(f"{FLIPS_SHOWN} of 956 shown" in n and f"SELECT * FROM v_flips WHERE study_id = '{r.study_id}' AND trial_id = {focus}"
               in n for n in flips.notes)
    assert len(html_page(big)) - len(html_page(r)) < 20_000
    assert markdown(big).count("| ex") <= FLIPS_SHOWN + 1
    console = Console(record=True, width=200)
    render_report(console, big)
    assert len(re.findall(r"^│ ex\d+ ", console.export_text(), re.M)) == FLIPS_SHOWN
