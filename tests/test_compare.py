"""Paired comparison (tasks/compare.py) checked against known answers and scipy as reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from offramp.tasks.evidence.compare import (
    MCNEMAR_EXACT,
    PAIRED_PERMUTATION,
    PairedExample,
    compare_paired,
    mcnemar_exact,
    paired_bootstrap_diff,
)


def _examples(
    inc: list[float], cand: list[float], *, slices: list[dict[str, str]] | None = None,
    inc_pred: list[object] | None = None, cand_pred: list[object] | None = None,
) -> list[PairedExample]:
    n = len(inc)
    slices = slices or [{} for _ in range(n)]
    inc_pred = inc_pred if inc_pred is not None else [f"i{i}" for i in range(n)]
    cand_pred = cand_pred if cand_pred is not None else [f"c{i}" for i in range(n)]
    return [
        PairedExample(
            example_id=f"ex{i}", slices=slices[i], incumbent_score=inc[i], candidate_score=cand[i],
            incumbent_prediction=inc_pred[i], candidate_prediction=cand_pred[i],
            input_text=f"input {i}",
        )
        for i in range(n)
    ]


def _binary(b: int, c: int, both_right: int = 0, both_wrong: int = 0) -> tuple[list[float], list[float]]:
    """Incumbent/candidate binary scores with exactly b right->wrong and c wrong->right pairs."""
    inc = [1.0] * b + [0.0] * c + [1.0] * both_right + [0.0] * both_wrong
    cand = [0.0] * b + [1.0] * c + [1.0] * both_right + [0.0] * both_wrong
    return inc, cand


# --- McNemar ---------------------------------------------------------------------------------

@pytest.mark.parametrize("b,c", [(3, 9), (9, 3), (1, 4), (7, 12), (0, 5)])
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    inc, cand = _binary(b, c, both_right=6, both_wrong=4)
    result = compare_paired(_examples(inc, cand))
    assert result.test == MCNEMAR_EXACT
    assert result.overall.regressed == b and result.overall.improved == c
    assert result.overall.p_value == pytest.approx(stats.binomtest(c, b + c, 0.5).pvalue)


def test_mcnemar_known_values() -> None:
    inc, cand = _binary(0, 10, both_right=5)
    assert compare_paired(_examples(inc, cand)).overall.p_value == pytest.approx(2 / 2**10)
    assert compare_paired(_examples(inc, cand)).overall.p_value == pytest.approx(0.001953125)
    inc, cand = _binary(6, 6, both_right=3, both_wrong=2)
    assert compare_paired(_examples(inc, cand)).overall.p_value == 1.0
    inc, cand = _binary(0, 0, both_right=5, both_wrong=5)
    assert compare_paired(_examples(inc, cand)).overall.p_value == 1.0
    assert mcnemar_exact(0, 0) == 1.0


# --- flips and agreement ---------------------------------------------------------------------

def test_flips_list_exact_examples_with_inputs() -> None:
    inc = [1, 1, 0, 0, 1, 0, 1]
    cand = [0, 1, 1, 0, 0, 1, 1]
    slices = [{"lang": "en"}] * 7
    result = compare_paired(_examples(inc, cand, slices=slices))
    assert [f.example_id for f in result.flips_regressed] == ["ex0", "ex4"]
    assert [f.example_id for f in result.flips_improved] == ["ex2", "ex5"]
    first = result.flips_regressed[0]
    assert first.input_text == "input 0"
    assert first.slices == {"lang": "en"}
    assert (first.incumbent_prediction, first.candidate_prediction) == ("i0", "c0")
    assert (result.overall.regressed, result.overall.improved) == (2, 2)


def test_flips_use_correct_threshold_on_graded_scores() -> None:
    inc = [0.9, 0.4, 0.8, 0.2]
    cand = [0.6, 0.7, 0.85, 0.1]
    result = compare_paired(_examples(inc, cand), correct_threshold=0.75, resamples=200)
    assert [f.example_id for f in result.flips_regressed] == ["ex0"]
    assert [f.example_id for f in result.flips_improved] == []
    assert (result.overall.regressed, result.overall.improved) == (1, 0)
    assert (result.overall.wins, result.overall.losses, result.overall.ties) == (2, 2, 0)


def test_identical_candidate() -> None:
    inc = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    preds: list[object] = [{"label": "a"}, None, "b", 3, None, ["x"]]
    result = compare_paired(_examples(inc, list(inc), inc_pred=preds, cand_pred=list(preds)))
    o = result.overall
    assert (o.diff, o.diff_ci_low, o.diff_ci_high) == (0.0, 0.0, 0.0)
    assert result.agreement_rate == 1.0
    assert result.flips_regressed == [] and result.flips_improved == []
    assert (o.wins, o.losses, o.ties) == (0, 0, 6)
    assert o.p_value == 1.0


def test_agreement_rule_for_missing_answers() -> None:
    inc_pred: list[object] = [None, None, "a", "a"]
    cand_pred: list[object] = [None, "a", None, "a"]
    result = compare_paired(_examples([1, 0, 1, 1], [1, 0, 1, 1], inc_pred=inc_pred, cand_pred=cand_pred))
    assert result.agreement_rate == pytest.approx(0.5)  # None==None and "a"=="a" agree


# --- bootstrap -------------------------------------------------------------------------------

def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inc = (rng.random(n) < 0.70).astype(float)
    cand = (rng.random(n) < 0.80).astype(float)
    return inc, cand


def test_bootstrap_covers_true_difference_and_narrows_with_n() -> None:
    inc_s, cand_s = _synthetic(50, seed=1)
    inc_l, cand_l = _synthetic(2000, seed=2)
    d_s, lo_s, hi_s = paired_bootstrap_diff(inc_s, cand_s, seed=0, resamples=2000)
    d_l, lo_l, hi_l = paired_bootstrap_diff(inc_l, cand_l, seed=0, resamples=2000)
    assert d_s == pytest.approx(float(np.mean(cand_s - inc_s)))
    assert lo_s <= d_s <= hi_s and lo_l <= d_l <= hi_l
    assert lo_s <= 0.10 <= hi_s and lo_l <= 0.10 <= hi_l  # true difference 0.8 - 0.7
    assert hi_l - lo_l < (hi_s - lo_s) / 3  # ~ sqrt(2000 / 50) = 6.3x narrower


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    inc, cand = _synthetic(300, seed=3)
    first = paired_bootstrap_diff(inc, cand, seed=7, resamples=1000)
    assert paired_bootstrap_diff(inc, cand, seed=7, resamples=1000) == first
    assert paired_bootstrap_diff(inc, cand, seed=8, resamples=1000) != first
    a = compare_paired(_examples(list(inc), list(cand)), seed=7).to_dict()
    assert compare_paired(_examples(list(inc), list(cand)), seed=7).to_dict() == a


def test_bootstrap_single_example_is_degenerate() -> None:
    assert paired_bootstrap_diff(np.array([0.2]), np.array([0.7]), seed=0, resamples=50) == pytest.approx(
        (0.5, 0.5, 0.5)
    )
    with pytest.raises(ValueError, match="needs two non-empty 1-d arrays"):
        paired_bootstrap_diff(np.array([]), np.array([]), seed=0, resamples=10)


# --- graded metric: permutation test ---------------------------------------------------------

def test_graded_metric_uses_permutation_test_matching_scipy() -> None:
    rng = np.random.default_rng(11)
    inc = rng.uniform(0.2, 0.8, 40)
    cand = np.clip(inc + rng.normal(0.01, 0.1, 40), 0, 1)
    result = compare_paired(_examples(list(inc), list(cand)), seed=5, resamples=3000)
    assert result.test == PAIRED_PERMUTATION
    reference = stats.permutation_test(
        (cand - inc,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
        vectorized=True, n_resamples=3000, rng=5,
    ).pvalue
    assert result.overall.p_value == pytest.approx(reference, abs=1e-9)
    assert result.overall.p_value > 0.05  # a small noisy shift is not significant here


def test_graded_metric_clear_shift_is_significant() -> None:
    rng = np.random.default_rng(12)
    inc = rng.uniform(0.2, 0.7, 60)
    cand = np.clip(inc + rng.uniform(0.05, 0.25, 60), 0, 1)
    result = compare_paired(_examples(list(inc), list(cand)))
    assert result.test == PAIRED_PERMUTATION
    assert result.overall.p_value < 0.01
    assert result.overall.diff_ci_low > 0


# --- slices ----------------------------------------------------------------------------------

def test_slices_have_right_signs_and_overall_is_pooled() -> None:
    en_inc, en_cand = _binary(b=6, c=1, both_right=5, both_wrong=2)  # regresses
    fr_inc, fr_cand = _binary(b=1, c=7, both_right=3, both_wrong=1)  # improves
    inc, cand = en_inc + fr_inc, en_cand + fr_cand
    slices = [{"lang": "en", "tier": "gold"}] * len(en_inc) + [{"lang": "fr"}] * len(fr_inc)
    result = compare_paired(_examples(inc, cand, slices=slices))
    by_key = {(s.field, s.value): s for s in result.slices}
    assert list(by_key) == [("lang", "en"), ("lang", "fr"), ("tier", "gold")]
    en, fr = by_key[("lang", "en")], by_key[("lang", "fr")]
    assert en.diff < 0 < fr.diff
    assert (en.n, en.regressed, en.improved, en.losses, en.wins) == (14, 6, 1, 6, 1)
    assert (fr.n, fr.regressed, fr.improved, fr.losses, fr.wins) == (12, 1, 7, 1, 7)
    assert en.p_value == pytest.approx(stats.binomtest(1, 7, 0.5).pvalue)
    assert by_key[("tier", "gold")].to_dict() | {"field": "lang", "value": "en"} == en.to_dict()

    o = result.overall
    assert (o.field, o.value, o.n) == (None, None, 26)
    assert o.incumbent_quality == pytest.approx(np.mean(inc))
    assert o.candidate_quality == pytest.approx(np.mean(cand))
    assert o.diff == pytest.approx((en.n * en.diff + fr.n * fr.diff) / o.n)
    assert (o.regressed, o.improved) == (en.regressed + fr.regressed, en.improved + fr.improved)
    assert (o.wins, o.losses, o.ties) == (en.wins + fr.wins, en.losses + fr.losses, en.ties + fr.ties)
    assert o.p_value == pytest.approx(stats.binomtest(8, 15, 0.5).pvalue)


def test_singleton_slice_gets_point_values() -> None:
    rng = np.random.default_rng(4)
    inc, cand = list(rng.uniform(0, 1, 10)), list(rng.uniform(0, 1, 10))
    slices = [{"src": "web"}] * 9 + [{"src": "phone"}]
    result = compare_paired(_examples(inc, cand, slices=slices), resamples=500)
    phone = next(s for s in result.slices if s.value == "phone")
    assert phone.n == 1
    assert phone.diff == pytest.approx(cand[9] - inc[9])
    assert phone.diff_ci_low == phone.diff_ci_high == pytest.approx(phone.diff)
    assert phone.p_value == 1.0


# --- serialisation and validation ------------------------------------------------------------

def test_to_dict_is_json_able() -> None:
    inc, cand = _binary(2, 3, both_right=2)
    result = compare_paired(_examples(inc, cand, slices=[{"k": "v"}] * 7))
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["test"] == MCNEMAR_EXACT
    assert payload["overall"]["improved"] == 3
    assert [f["example_id"] for f in payload["flips_regressed"]] == ["ex0", "ex1"]


@pytest.mark.parametrize("inc,cand,kwargs,message", [
    ([], [], {}, "needs at least one example"),
    ([1.2], [1.0], {}, r"incumbent score of example 'ex0' is 1\.2; scores must be in \[0, 1\]"),
    ([float("nan")], [1.0], {}, r"incumbent score of example 'ex0' is nan"),
    ([1.0], [1.0], {"correct_threshold": 0.0}, r"correct_threshold must be in \(0, 1\], got 0\.0"),
])
def test_invalid_inputs_raise(inc: list[float], cand: list[float], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare_paired(_examples(inc, cand), **kwargs)


@pytest.mark.parametrize(
    ("status", "error", "why"),
    [("failed", "SystemExit: 143", "status failed: it was interrupted (SystemExit: 143)"),
     ("failed", "TerminationSignal:", "status failed: it was interrupted (TerminationSignal:)"),
     ("running", None, "status running: it is still running, or its process was killed")],
)
def test_report_of_an_unfinished_study_says_the_same_command_resumes_it(tmp_path, status, error, why):
    import io

    from rich.console import Console

    from offramp.tasks.evidence.render import markdown, write_html
    from offramp.tasks.evidence.report import load_report
    from offramp.tasks.evidence.terminal import render_report
    from offramp.warehouse import Warehouse, records

    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s1", feature="f", deprecated_model=None, incumbent_model="fake/old", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    if status != "running":
        records.finish_study(wh, "s1", status=status, error=error)
    r = load_report(wh, "s1")
    out = io.StringIO()
    render_report(Console(file=out, width=400), r)
    write_html(r, tmp_path / "r.html")
    for text in (" ".join(out.getvalue().split()), markdown(r), (tmp_path / "r.html").read_text()):
        assert f"This study did not finish ({why}" in text
        assert "Run the same `offramp migrate ...` command again" in text and "resume it" in text


def test_report_of_a_finished_study_has_no_resume_hint(tmp_path):
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from offramp.warehouse import Warehouse, records

    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s1", feature="f", deprecated_model=None, incumbent_model="fake/old", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    records.finish_study(wh, "s1", status="completed", selection={"reason": "kept the incumbent"})
    r = load_report(wh, "s1")
    assert r.unfinished is None and "did not finish" not in markdown(r)
