"""Slices judged by evidence (issue 12, item 5): three-way verdicts on intervals adjusted for the
number of slices judged, the examples that would decide an undecided slice, and the power a test
split has before anything is paid."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from rich.console import Console

from offramp.errors import UserError
from offramp.tasks.evidence.compare import PairedExample, compare_paired, paired_bootstrap_diff
from offramp.tasks.evidence.judge import candidate
from offramp.tasks.evidence.policy import SelectionPolicy, load_policy, select_release
from offramp.tasks.evidence.verdicts import (
    NOT_JUDGED,
    NOT_WORSE,
    TOO_FEW,
    WORSE,
    judge_slice,
    judge_slices,
    power_table,
    verdict_text,
)
from offramp.util import content_hash
from offramp.warehouse.records import TrialMeasurement
from tests.helpers import make_feature, make_space


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


MEASURED = TrialMeasurement(quality=0.8, cost_per_1k_usd=0.1, latency_p95_s=0.2, error_rate=0.0)


def paired(rows: list[tuple[str, float, float]]) -> list[PairedExample]:
    """(slice value, incumbent score, candidate score) per example."""
    return [PairedExample(f"ex{i}", {"queue": q}, inc, cand, None, None, "") for i, (q, inc, cand) in enumerate(rows)]


def issue_example() -> list[PairedExample]:
    """The issue's study: overall +0.183, an 11-example slice at -0.273 (3 right -> wrong) whose interval reaches 0."""
    rare = [("rare", 1.0, 0.0)] * 3 + [("rare", 1.0, 1.0)] * 8
    common = [("common", 0.0, 1.0)] * 29 + [("common", 1.0, 0.0)] * 4 + [("common", 1.0, 1.0)] * 76
    return paired(rare + common)


def test_the_issues_example_is_warned_by_default_and_rejected_when_undecided_slices_block():
    comparison = compare_paired(issue_example(), seed=0)
    o = comparison.overall
    assert o.diff == pytest.approx(0.183, abs=0.001) and 0.08 < o.diff_ci_low < 0.11 and 0.26 < o.diff_ci_high < 0.29
    rare = next(s for s in comparison.slices if s.value == "rare")
    assert rare.n == 11 and rare.diff == pytest.approx(-0.273, abs=0.001) and rare.diff_ci_high == 0.0
    assert rare.diff < -0.15  # the old rule (point estimate) rejected this candidate
    c = candidate(1, "new", MEASURED, comparison)

    verdicts = {v.name: v for v in c.slice_verdicts(SelectionPolicy())}
    assert verdicts["queue=rare"].verdict == TOO_FEW and verdicts["queue=common"].verdict == NOT_WORSE
    assert verdicts["queue=rare"].slices_judged == 2 and verdicts["queue=rare"].confidence == pytest.approx(0.975)

    default = select_release(0.7, [c])
    assert default.trial_id == 1
    why = default.verdicts[0]["why"]
    assert "warning: slice queue=rare -0.273 (n=11" in why and "too few to tell" in why and "more examples would decide" in why

    blocked = select_release(0.7, [c], SelectionPolicy(slice_undecided="block"))
    assert blocked.trial_id is None and not blocked.verdicts[0]["accepted"]
    assert "queue=rare" in blocked.verdicts[0]["why"] and "slice_undecided: block" in blocked.verdicts[0]["why"]


def test_a_large_slice_clearly_worse_is_worse_and_rejected_under_either_setting():
    rows = [("big", 1.0, 0.0)] * 60 + [("big", 1.0, 1.0)] * 140 + [("other", 0.0, 1.0)] * 150 + [("other", 1.0, 1.0)] * 50
    c = candidate(2, "new", MEASURED, compare_paired(paired(rows), seed=0))
    assert c.diff_ci_low > 0  # better overall, by a wide margin
    big = next(v for v in c.slice_verdicts(SelectionPolicy()) if v.name == "queue=big")
    assert big.verdict == WORSE and big.adj_high < -0.15
    for policy in (SelectionPolicy(), SelectionPolicy(slice_undecided="block")):
        s = select_release(0.6, [c], policy)
        assert s.trial_id is None and "queue=big -0.300 (n=200" in s.verdicts[0]["why"] and "worse than -0.15" in s.verdicts[0]["why"]


def test_small_slices_are_not_judged_and_do_not_count_in_m():
    out = judge_slices({"q=a": (-0.9, 3), "q=b": (0.0, 50)}, {"q=a": (-1.0, -0.6), "q=b": (-0.05, 0.05)}, limit=0.15, min_slice_n=5)
    assert [v.verdict for v in out] == [NOT_JUDGED, NOT_WORSE] and out[1].slices_judged == 1


def test_with_many_slices_each_interval_is_wider_and_a_verdict_can_become_undecided():
    target = {"q=x": (-0.05, 100)}
    ci = {"q=x": (-0.13, 0.03)}  # 95%: lower end above -0.15 alone
    alone = judge_slices(target, ci, limit=0.15, min_slice_n=5)[0]
    assert alone.verdict == NOT_WORSE and alone.adj_low == pytest.approx(-0.13)
    crowd = {**target, **{f"q=s{i}": (0.0, 40) for i in range(19)}}
    among = next(v for v in judge_slices(crowd, ci, limit=0.15, min_slice_n=5) if v.name == "q=x")
    assert among.slices_judged == 20 and among.confidence == pytest.approx(1 - 0.05 / 20)
    ratio = 3.0233 / 1.95996  # z(1 - 0.025/20) / z(0.975), from a normal table
    assert among.adj_low == pytest.approx(-0.05 - 0.08 * ratio, abs=1e-3) and among.adj_high == pytest.approx(-0.05 + 0.08 * ratio, abs=1e-3)
    assert among.verdict == TOO_FEW  # the same data, judged as one of 20 slices, no longer shows it


def test_a_zero_width_interval_is_still_a_sample():
    """Five ties give a bootstrap interval of [0, 0]: five examples do not show a slice is not worse."""
    ties = judge_slice("q=t", 0.0, 5, 0.0, 0.0, limit=0.15, m=1)
    assert ties.verdict == TOO_FEW and ties.adj_low < -0.15
    assert judge_slice("q=t", 0.0, 500, 0.0, 0.0, limit=0.15, m=1).verdict == NOT_WORSE


def _decided(rng, diffs: np.ndarray, n: int, m: int, draws: int) -> float:
    """Share of simulated slices of n examples, drawn from `diffs`, whose verdict is decided."""
    decided = 0
    for k in range(draws):
        d = rng.choice(diffs, size=n)
        mean, low, high = paired_bootstrap_diff(-np.minimum(d, 0), np.maximum(d, 0), seed=k, resamples=400)
        decided += judge_slice("s", mean, n, low, high, limit=0.15, m=m).verdict != TOO_FEW
    return decided / draws


@pytest.mark.parametrize("counts", [(3, 0, 8), (2, 2, 8)])  # (right->wrong, wrong->right, ties): a drop; no change
def test_the_examples_needed_decide_the_slice_in_most_draws(counts):
    regressed, improved, ties = counts
    diffs = np.array([-1.0] * regressed + [1.0] * improved + [0.0] * ties)
    n = len(diffs)
    mean, low, high = paired_bootstrap_diff(-np.minimum(diffs, 0), np.maximum(diffs, 0), seed=0)
    v = judge_slice("queue=rare", mean, n, low, high, limit=0.15, m=2)
    assert v.verdict == TOO_FEW and v.n_needed is not None and n < v.n_needed < 2000 and v.more_needed == v.n_needed - n
    assert f"~{v.more_needed} more examples would decide" in v.describe(0.15)
    rng = np.random.default_rng(7)
    at_needed = _decided(rng, diffs, v.n_needed, m=2, draws=150)
    assert at_needed >= 0.65  # planned for 80%
    assert _decided(rng, diffs, n, m=2, draws=150) < 0.2  # where it was: undecided in most draws


def test_a_point_at_the_limit_is_never_decided():
    v = judge_slice("q=edge", -0.15, 20, -0.4, 0.1, limit=0.15, m=1)
    assert v.verdict == TOO_FEW and v.n_needed is None and "never at this effect size" in v.describe(0.15)
    assert verdict_text({"verdict": TOO_FEW, "n": 20, "n_needed": None}) == "too few to tell: never at this effect size"
    assert verdict_text({"verdict": TOO_FEW, "n": 20, "n_needed": 95}) == "too few to tell: ~75 more examples would decide"


def test_power_table_matches_the_closed_form_of_a_paired_binary_difference():
    rows = power_table({("q", "a"): 50, ("q", "b"): 10, ("q", "c"): 3}, 63, max_slice_drop=0.15, min_slice_n=5,
                       quality_tolerance=0.05, discordance=0.3, assumption="assumed")
    overall, a, b, c = rows
    # overall: 95% (z 1.95996) + 80% power (z 0.84162); detectable = 2.80158 * sqrt(0.3 / 63)
    assert overall.name == "(all)" and overall.detectable_drop == pytest.approx(2.80158 * math.sqrt(0.3 / 63), rel=1e-4)
    assert overall.n_needed == math.ceil(2.80158 ** 2 * 0.3 / 0.05 ** 2) == 942 and overall.more_needed == 942 - 63
    # slices: m = 2 judged (c is below min_slice_n): z(1 - 0.05/4) = 2.24140
    assert a.slices_judged == 2 and a.confidence == pytest.approx(0.975)
    assert a.detectable_drop == pytest.approx(3.08302 * math.sqrt(0.3 / 50), rel=1e-4)
    assert a.n_needed == b.n_needed == 127 and (a.more_needed, b.more_needed) == (77, 117)
    assert not c.judged and a.judged and b.judged


def test_at_the_planned_n_an_equally_good_candidate_is_shown_not_worse_about_80_percent_of_the_time():
    """Simulated: discordance 30%, no true difference, n = the table's n_needed for 0.15 with m = 2."""
    n = power_table({("q", "a"): 50, ("q", "b"): 10}, 60, max_slice_drop=0.15, min_slice_n=5, quality_tolerance=0.05,
                    discordance=0.3, assumption="assumed")[1].n_needed
    rng = np.random.default_rng(11)
    shown = 0
    draws = 300
    for k in range(draws):
        d = rng.choice([-1.0, 0.0, 1.0], p=[0.15, 0.7, 0.15], size=n)
        mean, low, high = paired_bootstrap_diff(-np.minimum(d, 0), np.maximum(d, 0), seed=k, resamples=400)
        shown += judge_slice("q=a", mean, n, low, high, limit=0.15, m=2).verdict == NOT_WORSE
    assert 0.7 <= shown / draws <= 0.9


def test_old_policies_keep_their_hash_and_the_new_field_is_validated(tmp_path):
    default = SelectionPolicy()
    values = default.model_dump(mode="json")
    before = {k: v for k, v in values.items() if k != "slice_undecided"}  # a policy as stored before this field
    assert default.identity()["hash"] == content_hash(before, length=12, compact=False)
    assert SelectionPolicy(slice_undecided="block").identity()["hash"] != default.identity()["hash"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"slice_undecided": "block"}))
    assert load_policy(path).slice_undecided == "block"
    path.write_text(yaml.safe_dump({"slice_undecided": "maybe"}))
    with pytest.raises(UserError, match=r"slice_undecided"):
        load_policy(path)


def test_dry_run_plan_shows_the_power_of_the_test_split(tmp_path, home):
    from offramp.flows.migrate_feature import study_inputs
    from offramp.flows.params import MigrateParams
    from offramp.tasks.study.plan import plan_study, render_plan
    from offramp.tasks.study.prepare import preflight

    root = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good"])
    params = MigrateParams(feature_dir=str(root), space=str(space), max_trials=2)
    plan = plan_study(preflight(study_inputs(params)), params)
    names = [r.name for r in plan.power]
    assert names == ["(all)", "group=g1", "group=g2"] and sum(r.n for r in plan.power[1:]) == plan.power[0].n == 20
    assert all(r.discordance == 0.3 and "assumed" in r.assumption for r in plan.power)
    console = Console(record=True, width=200)
    render_plan(console, plan)
    text = console.export_text()
    assert "discordance 30%, assumed" in text and "group=g1: n=" in text and "smallest detectable drop" in text
    assert "more labelled examples" in text


def test_a_study_stores_its_power_and_its_slice_verdicts(harness, home, fake, tmp_path):
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from offramp.warehouse import Warehouse, warehouse_path
    from tests.test_shipped import answering

    root = make_feature(tmp_path / "feature")
    answering(fake)
    space = make_space(tmp_path / "space.yaml", ["fake/good"], output_mode=["text"])
    summary = migrate_feature(MigrateParams(feature_dir=str(root), space=str(space), trigger="cli", max_trials=2))
    wh = Warehouse(warehouse_path())
    cols, power = wh.fetch("select slice_field, slice_value, n, discordance, assumption, detectable_drop, n_needed "
                           "from slice_power where study_id = ? order by slice_field nulls first, slice_value", [summary.study_id])
    power = [dict(zip(cols, r)) for r in power]
    assert [(p["slice_field"], p["slice_value"]) for p in power] == [(None, None), ("group", "g1"), ("group", "g2")]
    inc_dev = next(t for t in summary.trials if t.role == "incumbent" and t.split == "dev").measurement.quality
    q = inc_dev
    assert power[0]["discordance"] == pytest.approx(max(0.05, 2 * q * (1 - q)))  # replaced once the incumbent was measured
    assert "incumbent's dev quality" in power[0]["assumption"]
    cols, rows = wh.fetch("select slice_field, verdict, adj_confidence, adj_ci_low, adj_ci_high, slices_judged, diff_ci_low "
                          "from comparisons where study_id = ?", [summary.study_id])
    rows = [dict(zip(cols, r)) for r in rows]
    slices = [r for r in rows if r["slice_field"] is not None]
    assert slices and all(r["verdict"] in (NOT_WORSE, WORSE, TOO_FEW) and r["slices_judged"] == 2 for r in slices)
    assert all(r["adj_ci_low"] <= r["diff_ci_low"] and r["adj_confidence"] == pytest.approx(0.975) for r in slices)
    assert all(r["verdict"] is None for r in rows if r["slice_field"] is None)
    text = markdown(load_report(wh, summary.study_id))
    assert "| verdict | detectable |" in text and "Power of the test split" in text
    from offramp.tasks.evidence.terminal import render_report

    console = Console(record=True, width=250)
    render_report(console, load_report(wh, summary.study_id))
    shown = console.export_text()
    assert "Power of the test split" in shown and any(w in shown for w in ("not worse", "too few to tell", "worse"))
    assert json.loads(wh.fetch("select policy from studies where id = ?", [summary.study_id])[1][0][0])["values"]["slice_undecided"] == "warn"
