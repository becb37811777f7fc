"""Issue 13's evidence items: the trivial-answer floor of the front, naive swaps always confirmed on
the held-out split, promoting a rejected config needs --force, the slice-drop table keeps the
decision's config, and a classifier's per-label evidence (precision/recall, confusion, collapse)."""

from __future__ import annotations

import io
import json
import re

import pytest
from prefect.testing.utilities import prefect_test_harness
from rich.console import Console

from offramp.errors import UserError
from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.evidence.render import markdown, write_html
from offramp.tasks.evidence.report import StudyReport, load_report
from offramp.tasks.evidence.terminal import render_report
from offramp.tasks.search.ask_tell import Limits
from offramp.tasks.search.pareto import Point, pareto_front
from offramp.tasks.watch.releases import promote
from offramp.warehouse import Warehouse, records, warehouse_path
from offramp.warehouse.records import TrialMeasurement
from tests.helpers import LABELS, make_feature, make_space, oracle

# --- the trivial answer (pure) ---------------------------------------------------------------------


def _feature(tmp_path, outputs, metric, rows):
    """A feature.yaml over `rows` (dicts of text + the output column `y`), all in train/dev by a column."""
    from offramp.tasks.feature.spec import load_feature

    root = tmp_path / "f"
    root.mkdir(parents=True)
    with (root / "data.jsonl").open("w") as handle:
        for i, row in enumerate(rows):
            handle.write(json.dumps({"id": f"e{i}", **row}) + "\n")
    import yaml

    spec = {"name": "t", "signature": {"inputs": [{"name": "text"}], "outputs": [outputs]},
            "incumbent": {"model": "fake/old", "instructions": "x"},
            "data": {"files": [{"path": "data.jsonl"}], "id_column": "id", "columns": {"text": "text", outputs["name"]: "y"}},
            "metric": metric, "splits": {"column": "split"}}
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))
    return load_feature(root)


def _trivial(feature):
    from offramp.tasks.feature.metrics import build_metric
    from offramp.tasks.feature.trivial import trivial_baseline

    train = [e for e in feature.examples if e.split == "train"]
    dev = [e for e in feature.examples if e.split == "dev"]
    return trivial_baseline(feature.spec, build_metric(feature), train, dev)


def test_trivial_answer_for_every_target_type(tmp_path):
    # labels: the most frequent train label, scored on dev (accuracy) and as macro-F1 of a constant answer
    rows = ([{"text": "t", "y": "a", "split": "train"}] * 6 + [{"text": "t", "y": "b", "split": "train"}] * 3
            + [{"text": "d", "y": "a", "split": "dev"}] * 2 + [{"text": "d", "y": "b", "split": "dev"}] * 6 + [{"text": "x", "y": "a", "split": "test"}])
    label = {"name": "y", "type": "label", "labels": ["a", "b", "c"]}
    t = _trivial(_feature(tmp_path / "1", label, "label_accuracy", rows))
    assert t.answer == {"y": "a"} and t.quality == pytest.approx(2 / 8)  # chosen on train, measured on dev
    t = _trivial(_feature(tmp_path / "2", label, "macro_f1", rows))
    assert t.quality == pytest.approx((2 * 2 / (2 + 8)) / 2)  # F1 of 'a' = 0.4; 'b' present with F1 0; mean 0.2
    # numbers: the most common train value
    nums = ([{"text": "t", "y": 3, "split": "train"}] * 3 + [{"text": "t", "y": 5, "split": "train"}]
            + [{"text": "d", "y": 3, "split": "dev"}] + [{"text": "d", "y": 4, "split": "dev"}] * 3 + [{"text": "x", "y": 1, "split": "test"}])
    t = _trivial(_feature(tmp_path / "3", {"name": "y", "type": "number"}, "numeric_match", nums))
    assert t.answer == {"y": 3.0} and t.quality == pytest.approx(0.25)
    # text: the empty answer when train has no common answer that scores better; here "yes" is common on train
    texts = ([{"text": "t", "y": "yes", "split": "train"}] * 3 + [{"text": "t", "y": "no", "split": "train"}]
             + [{"text": "d", "y": "no", "split": "dev"}] * 2 + [{"text": "x", "y": "no", "split": "test"}])
    t = _trivial(_feature(tmp_path / "4", {"name": "y", "type": "text"}, "exact_match", texts))
    assert t.answer == {"y": "yes"} and t.quality == 0.0
    # json: the empty object wins on train when gold objects are empty more often than any one object repeats
    objs = ([{"text": "t", "y": "{}", "split": "train"}] * 2 + [{"text": "t", "y": json.dumps({"k": i}), "split": "train"} for i in range(3)]
            + [{"text": "d", "y": "{}", "split": "dev"}, {"text": "d", "y": json.dumps({"k": 9}), "split": "dev"}, {"text": "x", "y": "{}", "split": "test"}])
    schema = {"type": "object", "properties": {"k": {"type": "integer"}}}
    t = _trivial(_feature(tmp_path / "5", {"name": "y", "type": "json", "json_schema": schema}, "json_f1", objs))
    assert t.answer == {"y": {}} and t.quality == pytest.approx(0.5)
    # no train examples: no trivial answer, the floor is 0
    from offramp.tasks.feature.metrics import build_metric
    from offramp.tasks.feature.trivial import trivial_baseline

    f = _feature(tmp_path / "6", label, "label_accuracy", rows)
    t = trivial_baseline(f.spec, build_metric(f), [], [e for e in f.examples if e.split == "dev"])
    assert t.answer is None and t.quality == 0.0


def _measured(q, high, cost, p95=1.0):
    return TrialMeasurement(quality=q, quality_ci_low=max(0.0, q - 0.1), quality_ci_high=high, cost_per_1k_usd=cost,
                            latency_p95_s=p95, latency_p95_ci_low=p95, latency_p95_ci_high=p95, error_rate=0.0, n_examples=20)


def test_python_and_sql_fronts_leave_out_configs_no_better_than_the_trivial_answer(tmp_path):
    floor = 0.30
    limits = Limits(trivial_quality=floor)
    trials = {0: _measured(0.0, 0.0, 0.01), 1: _measured(0.25, 0.30, 0.02), 2: _measured(0.28, 0.45, 0.03), 3: _measured(0.9, 0.95, 1.0)}
    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="m/old",
                        trigger="manual", space_name="x", space={}, params={}, seed=0)
    for trial_id, m in trials.items():
        records.start_trial(wh, study_id="s", trial_id=trial_id, role="candidate", split="dev", source_trial_id=None,
                            config_hash=f"h{trial_id}", model=f"m/{trial_id}", settings={})
        feasible = all(v <= 0 for v in limits.violations(m).values())
        records.finish_trial(wh, study_id="s", trial_id=trial_id, measurement=m, calls=[], feasible=feasible, stage=1.0)
    _, rows = wh.fetch("SELECT trial_id FROM v_pareto_front WHERE study_id = 's' ORDER BY trial_id")
    points = [Point(i, m.quality, m.cost_per_1k_usd, m.latency_p95_s, 0.0, m.quality_ci_high) for i, m in trials.items()]
    # 0 scores nothing and 1's interval only reaches the floor: cheap, but no better than always one answer
    assert [r[0] for r in rows] == [p.key for p in pareto_front(points, floor)] == [2, 3]
    assert [p.key for p in pareto_front(points)] == [0, 1, 2, 3]  # without the floor every one is a trade-off
    assert limits.no_better_than_trivial(trials[1]) and not limits.no_better_than_trivial(trials[2])


# --- per-label evidence (pure) ---------------------------------------------------------------------


def test_label_evidence_precision_recall_confusion_and_collapse():
    from offramp.tasks.evidence.labels import Answered, collapse, label_evidence

    labels = [f"l{i}" for i in range(11)]
    gold = {f"e{i}": labels[i % 11] for i in range(60)}  # l0..l4: 6 of 60 each, l5..l10: 5
    # the incumbent answers l0 for the first 41, then right (upper case: read as the label)
    inc = Answered(0, "old", "incumbent", {k: {"y": "l0" if i < 41 else v.upper()} for i, (k, v) in enumerate(gold.items())})
    cand = Answered(4, "new", "candidate", {k: {"y": v} if i % 2 else None for i, (k, v) in enumerate(gold.items())})
    ev = label_evidence("y", labels, gold, inc, [cand])
    rows = {(r["trial_id"], r["label"]): r for r in ev["per_label"]}
    l0 = rows[(0, "l0")]
    assert l0["n_gold"] == 6 and l0["n_answered"] == 41 + 2 and l0["precision"] == pytest.approx(6 / 43) and l0["recall"] == 1.0
    assert rows[(0, "l5")]["n_gold"] == 5 and rows[(0, "l5")]["recall"] == pytest.approx(1 / 5)  # only 49 after 41; 'L5' read as l5
    assert rows[(4, "l0")]["precision"] == 1.0 and rows[(4, "l0")]["recall"] == pytest.approx(3 / 6)
    assert [w["trial_id"] for w in ev["collapse"]] == [0] and "43 of 60" in ev["collapse"][0]["why"]
    pairs = {(r["incumbent_answer"], r["candidate_answer"]): r["n"] for r in ev["confusion"] if r["trial_id"] == 4}
    assert sum(pairs.values()) == 60 and pairs[("l0", "(no answer)")] > 0 and pairs[("l0", "l3")] == 2  # examples 3 and 25
    # the rules' edges: a majority the gold shares is no collapse; few distinct labels is
    assert collapse(["a"] * 7 + ["b"] * 3, ["a"] * 8 + ["b"] * 2) is None
    assert collapse(list("abcdefgh") * 3, list("abcd") * 6) == "answers only 4 distinct labels on the test split, where the gold holds 8"


# --- the slice-drop table keeps the decision's config ----------------------------------------------


def _slice(trial_id, value, diff):
    return {"trial_id": trial_id, "slice_field": "group", "slice_value": value, "n": 10, "incumbent_quality": 0.8,
            "candidate_quality": 0.8 + diff, "diff": diff, "diff_ci_low": diff - 0.1, "diff_ci_high": diff + 0.1, "p_value": 0.5}


def test_largest_slice_drops_always_show_the_least_bad_config():
    regressions = [_slice(7, f"s{i}", -0.5 - i / 100) for i in range(8)] + [_slice(3, "s0", -0.2), _slice(3, "s1", -0.1)]
    study = {"id": "s", "feature": "f", "incumbent_model": "m", "status": "completed", "policy": None, "error": None,
             "selection": json.dumps({"trial_id": None, "recommended_trial_id": 3, "reason": "none meets the policy", "rule": "r"})}
    r = StudyReport(study=study, trials=[], front_ids=set(), regressions=regressions, flips=[], spend=[], health=[], unparsed=[])
    out = io.StringIO()
    render_report(Console(file=out, width=200), r)
    table = out.getvalue().split("Largest slice drops (test")[1].split("Flips")[0]
    assert re.search(r"│ 3\s+│ group=s0", table), table  # the least bad config's worst slice is in the table
    assert re.search(r"│ 7\s+│ group=s7", table)  # and the worst of the others
    md = markdown(r).split("Largest slice drops (test")[1]
    assert "| 3 | group=s0 |" in md and "| 3 | group=s1 |" in md


# --- one study on the fake provider: floor, naive swaps, promote, labels in the report --------------


def _number(messages):
    return int(re.search(r"message (\d+)", messages[-1]["content"]).group(1))


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def study(harness, home, fake, tmp_path):
    # the incumbent is right except on every 4th message (it says alpha there)
    fake.add("old", answer=lambda m: "alpha" if _number(m) % 4 == 0 else oracle(m))
    fake.add("zero", answer=lambda m: "no idea")  # cheapest, never parses: scores 0
    fake.add("half", answer=lambda m: oracle(m) if _number(m) % 2 == 0 else "alpha")  # collapses onto alpha
    fake.add("good", answer=oracle)
    fake.add("dear", answer=oracle, latency_s=0.05)  # as good as good, dearer and slower: off the front (not by latency noise)
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/zero", "fake/half", "fake/good", "fake/dear"], strategies={"incumbent": {}})
    space.write_text(space.read_text() + "composites: false\n")  # naive swaps only: four trials, four models
    summary = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=4, trigger="cli"))
    return summary, Warehouse(warehouse_path())


def test_the_front_floor_naive_swaps_promote_and_label_evidence(study, tmp_path):
    summary, wh = study
    sid = summary.study_id
    by_model = {t.model: t for t in summary.trials if t.split == "dev" and t.role == "naive_swap"}
    assert set(by_model) == {"fake/zero", "fake/half", "fake/good", "fake/dear"}
    zero, half, good, dear = (by_model[f"fake/{m}"] for m in ("zero", "half", "good", "dear"))
    # 1. the config that scores nothing is cheapest and fastest, yet off the front; the report names the floor
    trivial = summary.selection["trivial"]
    assert trivial["answer"]["label"] in LABELS and 0.2 < trivial["quality"] < 0.5
    _, front = wh.fetch("select trial_id from v_pareto_front where study_id = ?", [sid])
    front = {r[0] for r in front}
    assert zero.trial_id not in front and zero.trial_id not in summary.front and good.trial_id in front
    _, [(feasible,)] = wh.fetch("select feasible from trials where study_id = ? and trial_id = ?", [sid, zero.trial_id])
    assert feasible is False
    # 2. every naive swap is measured on test and compared with the incumbent, on the front or not
    _, compared = wh.fetch("select trial_id from comparisons where study_id = ? and slice_field is null", [sid])
    assert {r[0] for r in compared} >= {zero.trial_id, half.trial_id, good.trial_id, dear.trial_id}
    _, tests = wh.fetch("select source_trial_id from trials where study_id = ? and split = 'test' and role = 'naive_swap'", [sid])
    assert {r[0] for r in tests} == {zero.trial_id, half.trial_id, good.trial_id, dear.trial_id}
    verdicts = {v["trial_id"]: v for v in summary.selection["verdicts"]}
    assert verdicts[dear.trial_id].get("reference") and verdicts[zero.trial_id].get("reference")
    assert summary.selection["trial_id"] == good.trial_id  # a reference is judged, never selected
    assert dear.trial_id not in summary.front
    # 3. promoting a config the policy rejected needs --force
    assert not verdicts[half.trial_id]["accepted"]
    with pytest.raises(UserError, match="rejected by the study's policy"):
        promote(wh, sid, trial_id=half.trial_id, directory=tmp_path / "releases")
    _, entry, warnings = promote(wh, sid, trial_id=half.trial_id, force=True, directory=tmp_path / "releases")
    assert entry["forced"] and any("rejected" in w for w in warnings)
    _, entry, warnings = promote(wh, sid, directory=tmp_path / "releases")  # the selection needs no --force
    assert not entry["forced"] and not warnings
    # 5. per-label precision/recall of the incumbent and each confirmed config; half collapsed onto alpha
    _, metrics = wh.fetch("select trial_id, role, label, precision, recall from v_label_metrics where study_id = ?", [sid])
    assert {r[0] for r in metrics} == {0, zero.trial_id, half.trial_id, good.trial_id, dear.trial_id}
    assert all(r[3] == 1.0 and r[4] == 1.0 for r in metrics if r[0] == good.trial_id)
    _, collapsed = wh.fetch("select trial_id, why from v_label_collapse where study_id = ?", [sid])
    assert [r[0] for r in collapsed] == [half.trial_id] and "'alpha'" in collapsed[0][1]
    _, confusion = wh.fetch("select sum(n) from v_label_confusion where study_id = ? and trial_id = ?", [sid, good.trial_id])
    assert confusion[0][0] == 20
    # the report says all of it: terminal, markdown and HTML
    r = load_report(wh, sid)
    md = markdown(r)
    out = io.StringIO()
    render_report(Console(file=out, width=240), r)
    page = write_html(r, tmp_path / "r.html").read_text()
    for text in (md, out.getvalue(), page):
        assert "Trivial baseline" in text and f"trial {zero.trial_id}" in text
        assert "Would just swapping the model do?" in text and "COLLAPSE" in text and "precision / recall" in text
    assert re.search(rf"\| {dear.trial_id} \| fake/dear \| .* \| no \| 1.000 \| \+0\.\d+ ", md)


def test_the_cap_reserves_every_naive_swap_on_test(tmp_path, home):
    from offramp.flows.migrate_feature import _needs, study_inputs
    from offramp.tasks.study.prepare import preflight

    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/sloppy"])  # prices: x1, x2; the incumbent fake/old x3
    needs = _needs(preflight(study_inputs(MigrateParams(feature_dir=str(feature), space=str(space)))))
    # a naive swap sends the incumbent's exact test requests to its model: priced x1 and x2 against the incumbent's x3
    assert needs.naive_test == pytest.approx(needs.incumbent_test * (1 + 2) / 3)
    assert needs.reserve == pytest.approx(needs.incumbent_test + needs.front_test + needs.naive_test)
