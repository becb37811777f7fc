"""Discovered slices: the clustering finds a planted bad slice, stays quiet on uniform traffic, is
deterministic; stored and reported per compared config; saved into the feature as a declared slice."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from bench.discover import score_run, synthetic_traffic
from offramp.errors import UserError
from offramp.tasks.evidence.discover import ComparedInput, DiscoveryRule, discover_slices


def _planted(found, planted):
    loss = [s for s in found.slices if s.signal == "loss"]
    best = max(loss, key=lambda s: len(planted & set(s.member_ids)))
    hit = len(planted & set(best.member_ids))
    return best, hit / best.size, hit / len(planted)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_planted_bad_topic_is_found_with_its_members(seed):
    # 400 inputs from 6 topics; the candidate loses on 60% of one topic and 5% elsewhere
    inputs, planted = synthetic_traffic(400, planted_topic=True, loss_in=0.6, loss_out=0.05, seed=seed)
    found = discover_slices(inputs, seed=seed)
    best, precision, recall = _planted(found, planted)
    assert precision >= 0.8 and recall >= 0.8
    assert best.p_value < found.threshold == pytest.approx(0.05 / found.n_tested)
    assert best.loss_ci_low <= best.loss_rate <= best.loss_ci_high and best.loss_rate > 0.4
    assert best.outside_loss_rate < 0.1
    assert len(best.examples) == 3 and all(e["lost"] for e in best.examples)  # members that lost, with both answers
    assert {"incumbent", "candidate", "input", "example_id"} <= set(best.examples[0])
    assert set(best.terms) & {"card", "debit", "credit", "pin", "contactless", "chip", "physical", "virtual", "replace",
                              "stolen", "lost", "expired", "activate", "limit"}
    assert best.share == pytest.approx(best.size / 400)


def test_no_planted_slice_means_almost_no_false_alarms():
    false_slices = 0
    for seed in range(4):
        inputs, _ = synthetic_traffic(400, share=0.0, loss_in=0.1, loss_out=0.1, seed=seed)
        found = discover_slices(inputs, seed=seed)
        assert found.n_tested > 10  # it did test many groups: the quiet is the rule's, not an empty search
        false_slices += len(found.slices)
    assert false_slices <= 1


def test_a_larger_planted_sub_topic_is_found():
    inputs, planted = synthetic_traffic(400, share=0.10, loss_in=0.9, loss_out=0.05, seed=3)
    hit, precision, recall, _ = score_run(discover_slices(inputs, seed=3), planted)
    assert hit and precision >= 0.5 and recall >= 0.5


def test_discovery_is_deterministic_and_ignores_input_order():
    inputs, _ = synthetic_traffic(300, planted_topic=True, seed=5)
    a = discover_slices(inputs, seed=5)
    b = discover_slices(list(reversed(inputs)), seed=5)
    assert a == b and a.slices


def test_unknown_losses_test_disagreement_only_and_small_inputs_find_nothing():
    inputs, planted = synthetic_traffic(400, planted_topic=True, seed=2)
    samples = [ComparedInput(x.example_id, x.text, None, x.disagrees, x.incumbent_answer, x.candidate_answer) for x in inputs]
    found = discover_slices(samples, seed=2)
    assert found.overall_loss_rate is None and found.slices
    assert {s.signal for s in found.slices} == {"disagree"} and all(s.loss_rate is None for s in found.slices)
    few = discover_slices(inputs[:6], seed=0)
    assert few.slices == () and few.n_tested == 0 and "Bonferroni" in few.rule
    strict = discover_slices(inputs, seed=2, rule=DiscoveryRule(min_size=200))
    assert all(s.size >= 200 for s in strict.slices)


# --- in a study: stored, reported, saved -----------------------------------------------------------


def test_stored_rows_report_section_and_none_found(tmp_path):
    from offramp.tasks.evidence.discovered import store_discoveries
    from offramp.tasks.evidence.discovered_report import discovered_lines
    from offramp.warehouse import Warehouse

    wh = Warehouse(tmp_path / "w.duckdb")
    bad, _ = synthetic_traffic(300, planted_topic=True, seed=1)
    quiet, _ = synthetic_traffic(300, share=0.0, loss_in=0.1, loss_out=0.1, seed=1)
    found = store_discoveries(wh, "s1", "test", {3: (9, bad), 4: (10, quiet)}, seed=1)
    store_discoveries(wh, "s1", "test", {3: (9, bad), 4: (10, quiet)}, seed=1)  # recomputed: replaced, not doubled
    _, runs = wh.fetch("select trial_id, n_found, n_tested, rule from slice_discovery where study_id='s1' order by trial_id")
    assert [(r[0], r[1]) for r in runs] == [(3, len(found[3].slices)), (4, len(found[4].slices))] and runs[0][1] >= 1
    cols, rows = wh.fetch("select * from v_discovered_slices where study_id='s1' order by slice_id")
    stored = [dict(zip(cols, r)) for r in rows]
    assert [x["slice_id"] for x in stored if x["trial_id"] == 3][0] == "3-1"
    first = next(x for x in stored if x["slice_id"] == "3-1")
    assert json.loads(first["member_ids"]) == list(found[3].slices[0].member_ids)
    assert len(json.loads(first["examples"])) == 3 and first["threshold"] == pytest.approx(found[3].threshold)
    from offramp.tasks.evidence.report import _rows

    lines = discovered_lines(_rows(wh, "report_discovery", "s1"), _rows(wh, "report_discovered", "s1"))
    text = "\n".join(lines)
    assert "slice 3-1 (loss, test)" in text and "top terms:" in text and "incumbent 'cards' -> candidate 'fees'" in text
    assert found[4].slices == ()  # uniform losses: nothing passes the rule, and the report says so with the rule
    assert "- trial 4 (test, 300 inputs; overall loss" in text and "none found (rule: a group of >= 5" in text


def _feature(tmp_path: Path) -> Path:
    from tests.conftest import BANK

    folder = tmp_path / "feature"
    shutil.copytree(BANK, folder)
    return folder


def test_save_round_trip_declares_a_slice_and_keeps_comments(tmp_path):
    from offramp.tasks.feature.slice_save import save_slice
    from offramp.tasks.feature.spec import load_feature

    folder = _feature(tmp_path)
    before = load_feature(folder)
    original = (folder / "feature.yaml").read_text()
    members = [e.id for e in before.examples[:7]]
    saved = save_slice(before.spec_path, "abroad", members, {e.id for e in before.examples})
    assert saved.yaml_written
    text = (folder / "feature.yaml").read_text()
    assert text.startswith(original.split("data:")[0])  # the user's lines and comments are all there
    assert all(line in text.splitlines() for line in original.splitlines())
    after = load_feature(folder)
    assert after.spec.data.slice_files[0].path == "slices/abroad.csv"
    tags = {e.id: e.slices["abroad"] for e in after.examples}
    assert {i for i, v in tags.items() if v == "yes"} == set(members) and set(tags.values()) == {"yes", "no"}
    assert all(e.slices["queue"] == b.slices["queue"] for e, b in zip(after.examples, before.examples))
    # a second slice appends to the list; the spec hash of a feature without slice files is unchanged
    save_slice(after.spec_path, "second", members[:2], {e.id for e in after.examples})
    assert [s.name for s in load_feature(folder).spec.data.slice_files] == ["abroad", "second"]
    assert "slice_files" not in json.dumps(before.spec.model_dump(mode="json")["data"]) or before.spec.data.slice_files == []


def test_the_next_study_compares_a_saved_slice_like_a_declared_one(tmp_path):
    from offramp.tasks.evidence.compare import PairedExample, compare_paired
    from offramp.tasks.feature.slice_save import save_slice
    from offramp.tasks.feature.spec import load_feature, split_examples

    folder = _feature(tmp_path)
    feature = load_feature(folder)
    test = split_examples(feature, seed=7).test
    members = [e.id for e in test[:10]]
    save_slice(feature.spec_path, "tail", members, {e.id for e in feature.examples})
    reloaded = load_feature(folder)
    assert split_examples(reloaded, seed=7).test == tuple(
        e for e in reloaded.examples if e.id in {x.id for x in test}) or [e.id for e in split_examples(reloaded, seed=7).test] == [
        e.id for e in test]  # same split: slice files do not stratify
    pairs = [PairedExample(e.id, dict(e.slices), 1.0, 0.0 if e.id in members else 1.0, "a", "b", "x")
             for e in split_examples(reloaded, seed=7).test]
    c = compare_paired(pairs, seed=0, resamples=200)
    tail = {s.value: s for s in c.slices if s.field == "tail"}
    assert tail["yes"].n == 10 and tail["yes"].diff == -1.0 and tail["no"].diff == 0.0


def test_slice_file_errors_name_the_file_field_and_line(tmp_path):
    from offramp.tasks.feature.spec import load_feature

    folder = _feature(tmp_path)
    spec = yaml.safe_load((folder / "feature.yaml").read_text())
    spec["data"]["slice_files"] = [{"name": "tail", "path": "slices/tail.csv"}]
    (folder / "feature.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match=r"data.slice_files\[0\].path.*does not exist"):
        load_feature(folder)
    (folder / "slices").mkdir()
    (folder / "slices" / "tail.csv").write_text("example_id\nnot-an-id\n")
    with pytest.raises(UserError, match=r"tail.csv line 2: example_id 'not-an-id' is not an example"):
        load_feature(folder)
    (folder / "slices" / "tail.csv").write_text("id\n")
    with pytest.raises(UserError, match=r"data.slice_files\[0\].path.*tail.csv has no `example_id` column"):
        load_feature(folder)
    spec["data"]["slice_files"] = [{"name": "queue", "path": "slices/tail.csv"}]
    (folder / "feature.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match="slice_files"):
        load_feature(folder)


def test_a_flow_style_data_block_is_left_alone_and_the_lines_are_given(tmp_path):
    from offramp.tasks.feature.slice_save import save_slice
    from offramp.tasks.feature.spec import load_feature

    folder = _feature(tmp_path)
    spec = yaml.safe_load((folder / "feature.yaml").read_text())
    text = yaml.safe_dump({k: v for k, v in spec.items() if k != "data"}) + "data: " + json.dumps(spec["data"]) + "\n"
    (folder / "feature.yaml").write_text(text)
    feature = load_feature(folder)
    saved = save_slice(feature.spec_path, "tail", [feature.examples[0].id], {e.id for e in feature.examples})
    assert not saved.yaml_written and "slice_files:" in saved.lines
    assert (folder / "feature.yaml").read_text() == text and (folder / "slices" / "tail.csv").read_text().startswith("example_id\n")
    with pytest.raises(UserError, match="not examples of this feature"):
        save_slice(feature.spec_path, "x", ["sample-1"], {e.id for e in feature.examples})


def test_cli_slices_save(tmp_path, home):
    from typer.testing import CliRunner

    from offramp.flows.cli import app
    from offramp.tasks.evidence.discovered import store_discoveries
    from offramp.tasks.feature.spec import load_feature
    from offramp.warehouse import Warehouse, records, warehouse_path

    folder = _feature(tmp_path)
    feature = load_feature(folder)
    wh = Warehouse(warehouse_path())
    records.upsert_feature(wh, name=feature.spec.name, description="", spec_path=str(feature.spec_path),
                           spec_hash=feature.spec.spec_hash(), spec=feature.spec.model_dump(mode="json"))
    records.start_study(wh, study_id="st", feature=feature.spec.name, deprecated_model="m", incumbent_model="m", trigger="manual",
                        space_name="s", space={}, params={}, seed=0, max_spend_usd=None, optuna_storage=None)
    texts = {e.id: str(e.inputs["message"]) for e in feature.examples}
    ids = sorted(texts)[:300]
    lost = set(i for i in ids if "card" in texts[i].lower())
    inputs = [ComparedInput(i, texts[i], i in lost, i in lost, "a", "b" if i in lost else "a") for i in ids]
    found = store_discoveries(wh, "st", "test", {1: (2, inputs)}, seed=0)
    assert found[1].slices
    runner = CliRunner()
    result = runner.invoke(app, ["slices", "save", "st", "1-1", "--name", "found"])
    assert result.exit_code == 0, result.output
    assert set(load_feature(folder).spec.data.slice_files[0].model_dump().values()) == {"found", "slices/found.csv"}
    members = set(found[1].slices[0].member_ids)
    assert {e.id for e in load_feature(folder).examples if e.slices["found"] == "yes"} == members
    missing = runner.invoke(app, ["slices", "save", "st", "9-9", "--name", "x"])
    assert missing.exit_code != 0 and "1-1" in str(missing.exception)


def test_a_study_discovers_slices_for_every_confirmed_config_and_reports_them(home, fake, tmp_path):
    from prefect.testing.utilities import prefect_test_harness
    from rich.console import Console

    from offramp.tasks.evidence.render import markdown, write_html
    from offramp.tasks.evidence.report import load_report
    from offramp.tasks.evidence.terminal import render_report
    from offramp.warehouse import Warehouse, warehouse_path
    from tests.test_flow import run, setup_models

    setup_models(fake)
    with prefect_test_harness(server_startup_timeout=120):
        summary = run(tmp_path, deprecated_model="fake/old")
    wh = Warehouse(warehouse_path())
    _, compared = wh.fetch("select distinct trial_id from comparisons where study_id = ? order by 1", [summary.study_id])
    _, runs = wh.fetch("select trial_id, source, n_inputs, n_tested, rule from slice_discovery where study_id = ? order by 1",
                       [summary.study_id])
    assert compared and [r[0] for r in runs] == [r[0] for r in compared]
    assert all(r[1] == "test" and r[2] == 20 and "Bonferroni" in r[4] for r in runs)
    report = load_report(wh, summary.study_id)
    text = markdown(report)
    assert "Discovered slices" in text and all(f"- trial {r[0]} (test, 20 inputs" in text for r in runs)
    out = io.StringIO()
    render_report(Console(file=out, width=200), report)
    assert "Discovered slices" in out.getvalue() and f"- trial {runs[0][0]} (test, 20 inputs" in out.getvalue()
    page = write_html(report, tmp_path / "r.html").read_text()
    assert "<h2>Discovered slices (" in page
