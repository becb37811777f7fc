"""Judge calibration: agreement with people, misclassification-corrected quality and paired
differences (coverage checked on simulated studies whose truth is known), the compare hook, and
the human judgements file loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from offramp.errors import UserError
from offramp.tasks.evidence.calibration import (
    PERFECT_JUDGE,
    calibrate,
    corrected_difference,
    corrected_preference,
    corrected_quality,
    difference_hook,
)
from offramp.tasks.evidence.compare import PairedExample, compare_paired, paired_bootstrap_diff
from offramp.tasks.feature.human_judgements import load_human_judgements
from offramp.tasks.feature.spec import FeatureSpec

SENS, SPEC = 0.8, 0.7


def _judge(truth: np.ndarray, rng: np.random.Generator, sens: float = SENS, spec: float = SPEC) -> np.ndarray:
    """A noisy pass/fail judge: says pass on a true pass with prob sens, fail on a true fail with prob spec."""
    u = rng.random(truth.shape)
    return np.where(truth == 1, u < sens, u >= spec).astype(float)


def _paired_truth(rng: np.random.Generator, n: int, p_inc: float, p_cand: float) -> tuple[np.ndarray, np.ndarray]:
    """Human verdicts of both configs on n examples, correlated (shared difficulty), with exact
    population pass rates p_inc and p_cand."""
    z = rng.random(n)
    z2 = np.where(rng.random(n) < 0.6, z, rng.random(n))  # still uniform: the marginals are exact
    return (z2 < p_cand).astype(int), (z < p_inc).astype(int)


# --- coverage on simulated studies -----------------------------------------------------------------


def test_corrected_interval_covers_the_true_difference_and_the_naive_one_does_not():
    """200 studies: candidate truly passes 75%, incumbent 55% (true difference 0.20); the judge has
    sensitivity 0.8 and specificity 0.7; 60-150 human judgements of *incumbent-like* answers
    (45% pass, not the candidate's 75%)."""
    rng = np.random.default_rng(2026)
    p_inc, p_cand, studies = 0.55, 0.75, 200
    corrected = naive = 0
    for s in range(studies):
        cand_true, inc_true = _paired_truth(rng, 300, p_inc, p_cand)
        human = (rng.random(int(rng.integers(60, 151))) < 0.45).astype(int)
        cal = calibrate(human.astype(float), _judge(human, rng), "pass_fail")
        cand, inc = _judge(cand_true, rng), _judge(inc_true, rng)
        fixed = corrected_difference(cand, inc, cal, seed=s, resamples=1000)
        plain = corrected_difference(cand, inc, None, seed=s, resamples=1000)
        assert fixed.corrected and not plain.corrected
        assert -1.0 <= fixed.low <= fixed.point <= fixed.high <= 1.0
        corrected += fixed.low <= p_cand - p_inc <= fixed.high
        naive += plain.low <= p_cand - p_inc <= plain.high
    print(f"\ncoverage of the true difference over {studies} studies: corrected {corrected / studies:.3f}, "
          f"naive {naive / studies:.3f}")
    assert corrected / studies >= 0.90
    assert naive < corrected
    assert naive / studies < 0.5  # the naive difference is shrunk by sens + spec - 1 = 0.5


def _ppi_interval(judge_scores: np.ndarray, human: np.ndarray, judge_on_human: np.ndarray, seed: int) -> tuple[float, float]:
    """Prediction-powered inference's estimate, mean(judge) + mean(human - judge on the human set),
    with a bootstrap over both sets: the alternative calibration.py does not use."""
    rng = np.random.default_rng(seed)
    a = judge_scores[rng.integers(0, judge_scores.shape[0], (1000, judge_scores.shape[0]))].mean(axis=1)
    r = human - judge_on_human
    b = r[rng.integers(0, r.shape[0], (1000, r.shape[0]))].mean(axis=1)
    low, high = np.percentile(a + b, [2.5, 97.5])
    return float(low), float(high)


def test_corrected_quality_covers_the_candidates_pass_rate_and_ppi_does_not():
    """The candidate truly passes 80%; the 100 human judgements are of answers passing 40%. PPI's
    rectifier, measured where the judge's false passes weigh more, over-corrects the candidate."""
    rng = np.random.default_rng(7)
    studies, covered, ppi = 100, 0, 0
    for s in range(studies):
        truth = (rng.random(300) < 0.8).astype(int)
        human = (rng.random(100) < 0.4).astype(int)
        judged_human = _judge(human, rng)
        cal = calibrate(human.astype(float), judged_human, "pass_fail")
        scores = _judge(truth, rng)
        e = corrected_quality(scores, cal, seed=s, resamples=1000)
        assert 0.0 <= e.low <= e.point <= e.high <= 1.0
        covered += e.low <= 0.8 <= e.high
        low, high = _ppi_interval(scores, human.astype(float), judged_human, seed=s)
        ppi += low <= 0.8 <= high
    print(f"\ncoverage of the candidate's quality: corrected {covered / studies:.2f}, PPI {ppi / studies:.2f}")
    assert covered / studies >= 0.88
    assert ppi < covered


PAIRWISE_CONFUSION = np.array([  # P(judge verdict | human verdict), rows/columns loss, tie, win
    [0.70, 0.15, 0.15],
    [0.25, 0.50, 0.25],
    [0.10, 0.15, 0.75],
])


def _pairwise_judge(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cum = PAIRWISE_CONFUSION.cumsum(axis=1)[truth]
    return (rng.random(truth.shape)[:, None] > cum).sum(axis=1)


def test_corrected_preference_covers_the_true_net_win_rate():
    """Truth: the candidate wins 55%, ties 15%, loses 30% (net +0.25); the human set is a different
    mix (35 / 30 / 35) and the judge confuses every verdict."""
    rng = np.random.default_rng(11)
    truth_p, human_p = [0.30, 0.15, 0.55], [0.35, 0.30, 0.35]
    net = truth_p[2] - truth_p[0]
    studies = 100
    corrected = naive = 0
    for s in range(studies):
        study = _pairwise_judge(rng.choice(3, size=300, p=truth_p), rng) / 2.0  # 0 / 0.5 / 1
        human = rng.choice(3, size=120, p=human_p)
        cal = calibrate(human / 2.0, _pairwise_judge(human, rng) / 2.0, "pairwise")
        fixed = corrected_preference(study, cal, seed=s, resamples=1000)
        plain = corrected_preference(study, None, seed=s, resamples=1000)
        assert fixed.corrected and -1.0 <= fixed.low <= fixed.high <= 1.0
        corrected += fixed.low <= net <= fixed.high
        naive += plain.low <= net <= plain.high
    print(f"\npairwise coverage: corrected {corrected / studies:.2f}, naive {naive / studies:.2f}")
    assert corrected / studies >= 0.88
    assert naive < corrected


def test_pairwise_without_human_ties_assumes_none_and_says_so():
    rng = np.random.default_rng(12)
    human = rng.choice([0, 2], size=100)  # people never tie
    cal = calibrate(human / 2.0, _pairwise_judge(human, rng) / 2.0, "pairwise")
    truth = rng.choice([0, 2], size=2000, p=[0.35, 0.65])
    e = corrected_preference(_pairwise_judge(truth, rng) / 2.0, cal, resamples=500)
    assert e.corrected and "humans never said ['tie']" in e.method
    assert e.low <= 0.3 <= e.high and abs(e.point - 0.3) < 0.1
    halved = corrected_preference(_pairwise_judge(truth, rng) / 2.0, cal, scale="score", resamples=500)
    assert -0.5 <= halved.low <= halved.high <= 0.5 and "/ 2" in halved.method


# --- exact values, edge cases ----------------------------------------------------------------------


def test_pass_fail_correction_is_rogan_gladen():
    # 40 true passes (32 judged pass), 60 true fails (42 judged fail)
    human = [1.0] * 40 + [0.0] * 60
    judge = [1.0] * 32 + [0.0] * 8 + [0.0] * 42 + [1.0] * 18
    cal = calibrate(human, judge, "pass_fail")
    sens, spec = 32 / 40, 42 / 60
    scores = np.array([1.0] * 65 + [0.0] * 35)
    e = corrected_quality(scores, cal, resamples=300)
    assert e.point == pytest.approx((0.65 + spec - 1) / (sens + spec - 1))
    assert e.corrected and "misclassification-corrected" in e.method and "100 human judgements" in e.method
    # the paired difference is the difference of two corrections with the same confusion
    inc = np.array([1.0] * 50 + [0.0] * 50)
    d = corrected_difference(scores, inc, cal, resamples=300)
    assert d.point == pytest.approx(0.15 / (sens + spec - 1))
    assert d.low < d.point < d.high


def test_without_human_judgements_the_plain_bootstrap_assumes_a_perfect_judge():
    rng = np.random.default_rng(0)
    cand, inc = (rng.random(50) < 0.7).astype(float), (rng.random(50) < 0.6).astype(float)
    e = corrected_difference(cand, inc, None, seed=3, resamples=500)
    assert (e.point, e.low, e.high) == paired_bootstrap_diff(inc, cand, seed=3, resamples=500)
    assert PERFECT_JUDGE in e.method and not e.corrected
    q = corrected_quality(cand, None)
    assert q.point == pytest.approx(cand.mean()) and PERFECT_JUDGE in q.method
    p = corrected_preference(["win", "win", "tie", "loss"], None, resamples=200)
    assert p.point == pytest.approx(0.25) and PERFECT_JUDGE in p.method


def test_a_judge_no_better_than_chance_gets_the_whole_range():
    rng = np.random.default_rng(5)
    human = (rng.random(100) < 0.5).astype(int)
    coin = rng.random(100) < 0.5  # ignores the answer
    judge = np.where(coin, human, 1 - human).astype(float)
    if np.mean(judge == human) > 0.5:  # make it exactly chance or worse on this set
        judge = 1.0 - judge
    cal = calibrate(human.astype(float), judge, "pass_fail")
    assert cal.agreement().kappa <= 0
    cand, inc = np.ones(200), np.zeros(200)
    e = corrected_difference(cand, inc, cal)
    assert (e.low, e.high) == (-1.0, 1.0) and not e.corrected
    assert "no better than chance" in e.method and e.point == 1.0  # the judge's own, uncorrected
    q = corrected_quality(cand, cal)
    assert (q.low, q.high) == (0.0, 1.0) and "no better than chance" in q.method


def test_a_barely_better_judge_is_too_unstable_to_correct():
    rng = np.random.default_rng(1)
    human = (rng.random(60) < 0.5).astype(int)
    judge = _judge(human, rng, sens=0.56, spec=0.56)
    cal = calibrate(human.astype(float), judge, "pass_fail")
    e = corrected_difference(np.ones(100), np.zeros(100), cal)
    assert (e.low, e.high) == (-1.0, 1.0) and not e.corrected
    assert "chance" in e.method


def test_one_verdict_category_among_the_humans_leaves_the_correction_undefined():
    cal = calibrate([1.0] * 30, [1.0] * 25 + [0.0] * 5, "pass_fail")
    e = corrected_quality([1.0, 0.0, 1.0], cal)
    assert (e.low, e.high) == (0.0, 1.0) and "all say 'pass'" in e.method


def test_a_rare_human_verdict_makes_the_interval_honest_not_narrow():
    # 2 true fails among 60: the judge's specificity is unknowable; many resamples lose them
    human = [1.0] * 58 + [0.0] * 2
    judge = [1.0] * 50 + [0.0] * 8 + [0.0] * 2
    e = corrected_difference(np.ones(100), np.zeros(100), calibrate(human, judge, "pass_fail"))
    assert (e.low, e.high) == (-1.0, 1.0) and "missing" in e.method


def test_a_perfect_judge_changes_little():
    rng = np.random.default_rng(9)
    human = (rng.random(200) < 0.5).astype(float)
    cal = calibrate(human, human, "pass_fail")
    scores = (rng.random(400) < 0.7).astype(float)
    e = corrected_quality(scores, cal, resamples=500)
    plain = corrected_quality(scores, None, resamples=500)
    assert e.point == pytest.approx(scores.mean(), abs=0.01)
    assert e.high - e.low == pytest.approx(plain.high - plain.low, rel=0.35)


def test_five_point_scale_and_criteria_shares():
    # a lenient judge: half the time one point too high; informative, and corrected
    human = [h for h in range(1, 6) for _ in range(20)]
    judge = [min(h + (i % 2), 5) for i, h in enumerate(human)]
    cal = calibrate([(h - 1) / 4 for h in human], [(j - 1) / 4 for j in judge], "five_point")
    agreement = cal.agreement()
    assert agreement.weighted_kappa > 0.8 and agreement.raw_agreement == pytest.approx(0.6)
    # people would rate the candidate's 1000 answers 1..5 as 10/10/20/30/30%: the judge's expected verdicts
    truth = np.array([0.1, 0.1, 0.2, 0.3, 0.3])
    confusion = np.array([[0.5, 0.5, 0, 0, 0], [0, 0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5, 0], [0, 0, 0, 0.5, 0.5], [0, 0, 0, 0, 1]])
    counts = np.rint(1000 * truth @ confusion).astype(int)
    study = np.repeat(np.arange(5) / 4, counts)
    e = corrected_quality(study, cal, resamples=300)
    true_quality = truth @ (np.arange(5) / 4)
    assert e.corrected and "quadratic-weighted kappa" in e.method
    assert e.point == pytest.approx(true_quality, abs=0.02) and study.mean() > true_quality + 0.08
    assert e.low <= true_quality <= e.high
    # a judge that says 5 for both 4 and 5 cannot tell them apart: undefined, not a made-up split
    blind = calibrate([(h - 1) / 4 for h in human], [(min(h + 1, 5) - 1) / 4 for h in human], "five_point")
    u = corrected_quality(study, blind)
    assert not u.corrected and (u.low, u.high) == (0.0, 1.0) and "singular" in u.method
    # a share of criteria passed is binned to the nearest human category (>= 0.5 is a pass)
    cal2 = calibrate([1.0, 0.0, 1.0, 0.0], [0.75, 0.25, 0.5, 0.4], "pass_fail")
    assert cal2.judge == (1, 0, 1, 0)


def test_verdicts_off_the_scale_are_refused():
    with pytest.raises(ValueError, match="not one of the pass_fail values"):
        calibrate([0.5], [1.0], "pass_fail")
    with pytest.raises(ValueError, match="outside"):
        calibrate([1.0], [1.5], "pass_fail")
    with pytest.raises(ValueError, match="not one of"):
        calibrate(["maybe"], ["win"], "pairwise")
    with pytest.raises(ValueError, match="use corrected_preference"):
        corrected_difference([1.0], [0.0], calibrate([1.0, 0.0], [1.0, 0.0], "pairwise"))
    with pytest.raises(ValueError, match="pairwise calibration"):
        corrected_preference([1.0], calibrate([1.0, 0.0], [1.0, 0.0], "pass_fail"))


# --- agreement --------------------------------------------------------------------------------------


def test_agreement_on_hand_checked_cases():
    # rows human (fail, pass), columns judge: [[2, 1], [1, 2]]; po = 4/6, pe = 1/2, kappa = 1/3
    human = ["pass", "pass", "pass", "fail", "fail", "fail"]
    judge = ["pass", "pass", "fail", "fail", "fail", "pass"]
    a = calibrate(human, judge, "pass_fail").agreement()
    assert a.n == 6 and a.confusion == ((2, 1), (1, 2))
    assert a.raw_agreement == pytest.approx(4 / 6) and a.kappa == pytest.approx(1 / 3)
    assert a.judge_tie_rate is None and a.weighted_kappa is None
    # pairwise: rows loss, tie, win
    h = ["win", "win", "win", "loss", "loss", "tie", "tie", "win"]
    j = ["win", "win", "tie", "loss", "win", "tie", "loss", "win"]
    b = calibrate(h, j, "pairwise").agreement()
    assert b.confusion == ((1, 0, 1), (1, 1, 0), (0, 1, 3))
    assert b.raw_agreement == pytest.approx(5 / 8)
    assert b.kappa == pytest.approx(cohen_kappa_score(h, j))
    # po = 5/8; pe = (2*2 + 2*2 + 4*4) / 64 = 24/64; kappa = (40/64 - 24/64) / (40/64) = 0.4
    assert b.kappa == pytest.approx(0.4)
    assert b.judge_tie_rate == pytest.approx(2 / 8) and b.human_tie_rate == pytest.approx(2 / 8)
    # all one category on both sides: kappa undefined, not a number pretending to be one
    assert calibrate([1.0, 1.0], [1.0, 1.0], "pass_fail").agreement().kappa is None
    json.dumps(b.to_dict())
    assert b.summary() == "judge vs 8 human judgements: agreement 62%, kappa 0.40, ties: judge 25%, people 25%"
    assert a.summary() == "judge vs 6 human judgements: agreement 67%, kappa 0.33"


def test_five_point_weighted_kappa_matches_sklearn():
    rng = np.random.default_rng(4)
    h = rng.integers(1, 6, 80)
    j = np.clip(h + rng.integers(-1, 2, 80), 1, 5)
    a = calibrate((h - 1) / 4, (j - 1) / 4, "five_point").agreement()
    assert a.kappa == pytest.approx(cohen_kappa_score(h, j, labels=[1, 2, 3, 4, 5]))
    assert a.weighted_kappa == pytest.approx(cohen_kappa_score(h, j, labels=[1, 2, 3, 4, 5], weights="quadratic"))


# --- the compare hook --------------------------------------------------------------------------------


def test_compare_paired_takes_the_calibrated_difference_overall_and_per_slice():
    rng = np.random.default_rng(3)
    cand_true, inc_true = _paired_truth(rng, 120, 0.5, 0.7)
    cand, inc = _judge(cand_true, rng), _judge(inc_true, rng)
    human = (rng.random(100) < 0.5).astype(int)
    cal = calibrate(human.astype(float), _judge(human, rng), "pass_fail")
    slices = ["a" if i % 3 else "b" for i in range(120)]
    examples = [PairedExample(f"e{i}", {"kind": slices[i]}, float(inc[i]), float(cand[i]), None, None, "")
                for i in range(120)]
    result = compare_paired(examples, resamples=300, difference=difference_hook(cal, seed=0, resamples=300))
    overall = corrected_difference(cand, inc, cal, seed=0, resamples=300)
    assert (result.overall.diff, result.overall.diff_ci_low, result.overall.diff_ci_high) == (
        overall.point, overall.low, overall.high)
    b = np.array([s == "b" for s in slices])
    only_b = corrected_difference(cand[b], inc[b], cal, seed=0, resamples=300)
    got = next(s for s in result.slices if s.value == "b")
    assert (got.diff, got.diff_ci_low, got.diff_ci_high) == (only_b.point, only_b.low, only_b.high)
    # the calibrated interval is wider than the perfect-judge one (the judge's errors are counted)
    plain = compare_paired(examples, resamples=300)
    assert result.overall.diff_ci_high - result.overall.diff_ci_low > plain.overall.diff_ci_high - plain.overall.diff_ci_low
    # pairwise: the candidate's verdict scores, on the uncalibrated difference's scale (inc = 0.5)
    hook = difference_hook(None, pairwise=True, resamples=200)
    verdicts = np.array([1.0, 1.0, 0.5, 0.0])
    d, _, _ = hook(np.full(4, 0.5), verdicts)
    assert d == pytest.approx(verdicts.mean() - 0.5)


# --- the file loader ---------------------------------------------------------------------------------


@pytest.fixture()
def spec() -> FeatureSpec:
    return FeatureSpec.model_validate({
        "name": "support-reply",
        "signature": {"inputs": [{"name": "message"}, {"name": "tone"}], "outputs": [{"name": "reply", "type": "text"}]},
        "incumbent": {"model": "fake/incumbent", "instructions": "Reply."},
        "data": {"files": [{"path": "data.csv"}], "columns": {"message": "text", "tone": "tone", "reply": "reply"}},
        "metric": "exact_match",
    })


def _write(tmp_path: Path, name: str, rows: list[object]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


INPUTS = {"message": "my card is lost", "tone": "calm"}


def test_loads_rubric_and_pairwise_jsonl(tmp_path, spec):
    path = _write(tmp_path, "h.jsonl", [
        {"inputs": INPUTS, "answer": "Blocked it.", "verdict": "pass", "id": "r1", "note": "fine"},
        "",
        {"inputs": INPUTS, "answer": "No.", "verdict": "FAIL"},
    ])
    got = load_human_judgements(path, spec, "rubric")
    assert got.scale == "pass_fail" and [j.id for j in got.items] == ["r1", "h-3"]
    assert got.scores() == [1.0, 0.0] and got.items[1].line == 3
    five = load_human_judgements(_write(tmp_path, "f.jsonl", [
        {"inputs": INPUTS, "answer": {"reply": "x"}, "verdict": 4}, {"inputs": INPUTS, "answer": "y", "verdict": "1"}]),
        spec, "rubric", scale="five_point")
    assert five.scale == "five_point" and five.scores() == [0.75, 0.0]
    pair = load_human_judgements(_write(tmp_path, "p.jsonl", [
        {"inputs": INPUTS, "answer_a": "A", "answer_b": "B", "preferred": "a"},
        {"inputs": INPUTS, "answer_a": "A", "answer_b": "B", "preferred": "tie"},
        {"inputs": INPUTS, "answer_a": "A", "answer_b": "B", "preferred": "b"}]), spec, "pairwise")
    assert pair.scale == "pairwise" and pair.scores() == [1.0, 0.5, 0.0]
    cal = calibrate(pair.scores(), [1.0, 0.5, 0.5], pair.scale)  # what the integrator does with the judge's verdicts
    assert cal.agreement().raw_agreement == pytest.approx(2 / 3)


def test_loads_csv_with_signature_or_data_column_names(tmp_path, spec):
    path = tmp_path / "h.csv"
    path.write_text('text,tone,answer,verdict,id\n"lost card, help",calm,Blocked it.,pass,\nhi,rude,No.,fail,x2\n',
                    encoding="utf-8")
    got = load_human_judgements(path, spec, "rubric")
    assert got.items[0].inputs == {"message": "lost card, help", "tone": "calm"}
    assert [j.id for j in got.items] == ["h-2", "x2"] and got.scores() == [1.0, 0.0]


@pytest.mark.parametrize(("rows", "line", "field", "expected"), [
    ([{"inputs": INPUTS, "answer": "a", "verdict": "pass"}, {"inputs": INPUTS, "answer": "a", "verdict": "great"}],
     2, "verdict", '"pass" or "fail", or an integer 1..5'),
    ([{"inputs": INPUTS, "answer": "a", "verdict": 6}], 1, "verdict", "integer 1..5"),
    ([{"inputs": INPUTS, "answer": "a"}], 1, "verdict", "missing"),
    ([{"inputs": {"message": "m"}, "answer": "a", "verdict": "pass"}], 1, "inputs.tone", "every input field"),
    ([{"inputs": {**INPUTS, "mood": 1}, "answer": "a", "verdict": "pass"}], 1, "inputs.mood", "not an input field"),
    ([{"inputs": INPUTS, "answer": "a", "verdict": "pass", "score": 1}], 1, "score", "expected the fields"),
    ([{"inputs": INPUTS, "answer": "a", "verdict": "pass"}, {"inputs": INPUTS, "answer": "b", "verdict": 3}],
     2, "verdict", "mixes scales with line 1"),
    ([{"inputs": INPUTS, "answer": "a", "verdict": "pass", "id": "x"}, "", {"inputs": INPUTS, "answer": "a", "verdict": "fail", "id": "x"}],
     3, "id", "repeats line 1"),
    ([{"inputs": INPUTS, "answer": " ", "verdict": "pass"}], 1, "answer", "empty"),
    ([{"inputs": INPUTS, "answer_a": "a", "answer_b": "b", "preferred": "a"}], 1, "answer_a", "pairwise judge's file"),
])
def test_rubric_file_errors_name_file_line_and_field(tmp_path, spec, rows, line, field, expected):
    path = _write(tmp_path, "h.jsonl", rows)
    with pytest.raises(UserError, match=f"line {line}") as err:
        load_human_judgements(path, spec, "rubric")
    message = str(err.value)
    assert str(path) in message and f"line {line}" in message and f"`{field}`" in message and expected in message


def test_other_file_errors(tmp_path, spec):
    bad_json = _write(tmp_path, "b.jsonl", [{"inputs": INPUTS, "answer": "a", "verdict": "pass"}, "{oops"])
    with pytest.raises(UserError, match=r"b\.jsonl: line 2 is not valid JSON"):
        load_human_judgements(bad_json, spec, "rubric")
    pref = _write(tmp_path, "p.jsonl", [{"inputs": INPUTS, "answer_a": "a", "answer_b": "b", "preferred": "both"}])
    with pytest.raises(UserError, match=r'p\.jsonl: line 1: field `preferred` is .both.; expected "a", "b" or "tie"'):
        load_human_judgements(pref, spec, "pairwise")
    scale = _write(tmp_path, "s.jsonl", [{"inputs": INPUTS, "answer": "a", "verdict": 4}])
    with pytest.raises(UserError, match=r"line 1: field `verdict`: 4 is a five_point verdict, but the judge's scale is pass_fail"):
        load_human_judgements(scale, spec, "rubric", scale="pass_fail")
    with pytest.raises(UserError, match="holds no human judgements"):
        load_human_judgements(_write(tmp_path, "e.jsonl", [""]), spec, "rubric")
    with pytest.raises(UserError, match="no such file"):
        load_human_judgements(tmp_path / "absent.jsonl", spec, "rubric")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("text,answer,verdict\nhi,a,pass\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"c\.csv: line 1 \(the header\): no column for input field `tone`"):
        load_human_judgements(csv_path, spec, "rubric")
    csv_path.write_text("text,tone,answer,verdict\nhi,calm,a,pass\nhi,calm,a,good\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"c\.csv: line 3: field `verdict` is 'good'; expected \"pass\" or \"fail\""):
        load_human_judgements(csv_path, spec, "rubric")
    csv_path.write_text("text,tone,answer,verdict\nhi,calm,a,pass\nhi,calm,a,b,pass\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"c\.csv: line 3 has 5 fields, but the header has 4"):
        load_human_judgements(csv_path, spec, "rubric")
