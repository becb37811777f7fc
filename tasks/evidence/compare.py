"""Paired comparison of a candidate config against the incumbent on the same held-out examples.

Both configs answered the same examples, so every statistic here is *paired*: it works on the
per-example difference (candidate - incumbent), which removes the example-difficulty variance
that two independent intervals would carry. This is how a migration proves that nothing regressed,
overall and per slice.

- Quality difference: mean paired difference with a 95% paired-bootstrap percentile interval
  (example indices resampled jointly for both configs, `numpy.random.default_rng(seed)`), or the
  caller's `difference` (e.g. a judged feature's, corrected for the judge's errors: `calibration.py`).
- Flips: an example is *correct* when its score >= `correct_threshold`. Right -> wrong flips are
  regressions (count b), wrong -> right flips are improvements (count c). Computed for every
  metric; for graded metrics they depend on the threshold you choose.
- Significance: a binary metric (every score is 0 or 1) gets the exact McNemar test, i.e. a
  two-sided binomial test of c out of b + c discordant pairs at 0.5 (p = 1 when b + c == 0). A
  graded metric gets a paired sign-flip permutation test of the mean difference
  (`scipy.stats.permutation_test`, `permutation_type="samples"`). The test is chosen once from all
  scores and reused in every slice so slices and overall are comparable.
- Agreement: fraction of examples whose candidate prediction equals the incumbent's (`==`), right
  or wrong; it measures behavioural drift, not quality. Two `None` predictions (both calls
  produced no answer: failed or unparseable) count as agreement, since downstream sees the same
  thing; `None` against an answer is a disagreement.

Small slices: a slice with n == 1 still gets point values; its bootstrap interval collapses to the
point and its permutation p-value is 1.0 (no sign-flip evidence is possible from one example).

Pure functions, no I/O; deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from offramp.tasks.evidence.bootstrap import percentile_bootstrap

# (incumbent scores, candidate scores) of a set of examples -> (diff, low, high): e.g. a judge-calibrated one
Difference = Callable[[np.ndarray, np.ndarray], tuple[float, float, float]]

MCNEMAR_EXACT = "mcnemar_exact"
PAIRED_PERMUTATION = "paired_permutation"


@dataclass(frozen=True)
class PairedExample:
    """One held-out example as answered by both configs (same example, same order)."""

    example_id: str
    slices: dict[str, str]
    incumbent_score: float
    candidate_score: float
    incumbent_prediction: object
    candidate_prediction: object
    input_text: str


@dataclass(frozen=True)
class Flip:
    """An example whose correctness changed between incumbent and candidate, for review."""

    example_id: str
    input_text: str
    slices: dict[str, str]
    incumbent_prediction: object
    candidate_prediction: object
    incumbent_score: float
    candidate_score: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (predictions are passed through as given)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SliceComparison:
    """Paired statistics on a set of examples: all of them (`field` and `value` None) or the
    examples whose slice `field` equals `value`."""

    field: str | None
    value: str | None
    n: int
    incumbent_quality: float
    candidate_quality: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    wins: int
    losses: int
    ties: int
    regressed: int
    improved: int
    p_value: float
    test: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Comparison:
    """The candidate against the incumbent: overall, per slice, the flips and the drift."""

    overall: SliceComparison
    slices: list[SliceComparison]
    flips_regressed: list[Flip]
    flips_improved: list[Flip]
    agreement_rate: float
    test: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, nested results converted too."""
        return {
            "overall": self.overall.to_dict(),
            "slices": [s.to_dict() for s in self.slices],
            "flips_regressed": [f.to_dict() for f in self.flips_regressed],
            "flips_improved": [f.to_dict() for f in self.flips_improved],
            "agreement_rate": self.agreement_rate,
            "test": self.test,
        }


def paired_bootstrap_diff(
    inc: np.ndarray, cand: np.ndarray, *, seed: int = 0, resamples: int = 2000
) -> tuple[float, float, float]:
    """Mean paired difference (cand - inc) and its 95% paired-bootstrap percentile interval.

    Example indices are resampled jointly, so each resample keeps the pairing (that is what makes
    the interval narrower than two independent ones). Vectorised; indices are drawn in chunks
    to bound memory on large n, from one `default_rng(seed)` stream, so results are deterministic.

    Args:
        inc: Incumbent per-example scores.
        cand: Candidate per-example scores, same examples in the same order.
        seed: Seed of `numpy.random.default_rng`.
        resamples: Number of bootstrap resamples.

    Returns:
        (diff, low, high). With n == 1 the interval collapses to (diff, diff).

    Raises:
        ValueError: Empty or mismatched inputs, or resamples < 1.
    """
    inc = np.asarray(inc, dtype=float)
    cand = np.asarray(cand, dtype=float)
    if inc.ndim != 1 or inc.shape != cand.shape or inc.shape[0] == 0:
        raise ValueError("paired_bootstrap_diff needs two non-empty 1-d arrays of equal length")
    d = cand - inc
    n = d.shape[0]
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    low, high = percentile_bootstrap(n, lambda idx: d[idx].mean(axis=1), seed=seed, resamples=resamples)
    return float(d.mean()), low, high


def mcnemar_exact(regressed: int, improved: int) -> float:
    """Exact McNemar p-value: two-sided binomial test of `improved` out of the discordant pairs.

    Only discordant pairs carry evidence about which config is better; under the null each one is
    equally likely to go either way. Returns 1.0 when there are no discordant pairs.
    """
    discordant = regressed + improved
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(improved, discordant, 0.5).pvalue)


def paired_permutation_p(
    diffs: np.ndarray, *, seed: int = 0, resamples: int = 2000
) -> float:
    """Two-sided sign-flip permutation p-value of the mean paired difference.

    Under the null the two configs are exchangeable per example, so each difference's sign is
    equally likely; scipy enumerates all 2**n sign patterns when that is <= `resamples`, otherwise
    samples them. Returns 1.0 when n < 2 (scipy needs two observations; one proves nothing).
    """
    d = np.asarray(diffs, dtype=float)
    if d.shape[0] < 2:
        return 1.0
    result = stats.permutation_test(
        (d,), _mean_statistic, permutation_type="samples", vectorized=True,
        n_resamples=resamples, alternative="two-sided", rng=seed,
    )
    return float(result.pvalue)


def compare_paired(
    examples: Sequence[PairedExample], *, seed: int = 0, resamples: int = 2000,
    correct_threshold: float = 1.0,
    difference: Difference | None = None,
) -> Comparison:
    """Compare the candidate with the incumbent on the same examples, overall and per slice.

    Args:
        examples: Both configs' results per example, paired by position.
        seed: Seed for the bootstrap and the permutation test (every slice uses the same seed,
            so each slice's result is deterministic on its own).
        resamples: Resamples for the bootstrap and the permutation test.
        correct_threshold: A score >= this counts as correct for flips and McNemar; in (0, 1].
        difference: (incumbent scores, candidate scores) of a set of examples -> (diff, low, high),
            used for the overall and every slice's difference and interval instead of the paired
            bootstrap, e.g. a judge-calibrated one (`calibration.difference_hook`).

    Returns:
        The `Comparison`; slices are sorted by field, then value.

    Raises:
        ValueError: No examples, a score outside [0, 1] (or NaN), or a bad threshold.
    """
    if not examples:
        raise ValueError("compare_paired needs at least one example")
    if not 0.0 < correct_threshold <= 1.0:
        raise ValueError(f"correct_threshold must be in (0, 1], got {correct_threshold}")
    inc = np.array([e.incumbent_score for e in examples], dtype=float)
    cand = np.array([e.candidate_score for e in examples], dtype=float)
    for name, scores in (("incumbent", inc), ("candidate", cand)):
        bad = ~((scores >= 0.0) & (scores <= 1.0))  # NaN fails both comparisons
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{name} score of example {examples[i].example_id!r} is {scores[i]}; "
                "scores must be in [0, 1]"
            )
    binary = bool(np.all(np.isin(inc, (0.0, 1.0))) and np.all(np.isin(cand, (0.0, 1.0))))
    test = MCNEMAR_EXACT if binary else PAIRED_PERMUTATION

    def summarize(field: str | None, value: str | None, idx: np.ndarray) -> SliceComparison:
        return _summarize(field, value, inc[idx], cand[idx], test=test, seed=seed,
                          resamples=resamples, threshold=correct_threshold, difference=difference)

    overall = summarize(None, None, np.arange(len(examples)))
    groups: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(examples):
        for field, value in e.slices.items():
            groups.setdefault((field, value), []).append(i)
    slices = [summarize(f, v, np.array(groups[(f, v)])) for f, v in sorted(groups)]

    inc_ok = inc >= correct_threshold
    cand_ok = cand >= correct_threshold
    regressed = [_flip(e) for e, a, b in zip(examples, inc_ok, cand_ok) if a and not b]
    improved = [_flip(e) for e, a, b in zip(examples, inc_ok, cand_ok) if b and not a]
    agree = sum(_same_prediction(e.incumbent_prediction, e.candidate_prediction) for e in examples)
    return Comparison(
        overall=overall, slices=slices, flips_regressed=regressed, flips_improved=improved,
        agreement_rate=agree / len(examples), test=test,
    )


def _summarize(
    field: str | None, value: str | None, inc: np.ndarray, cand: np.ndarray, *, test: str,
    seed: int, resamples: int, threshold: float,
    difference: Difference | None = None,
) -> SliceComparison:
    """Paired statistics of one set of examples."""
    if difference is None:
        diff, low, high = paired_bootstrap_diff(inc, cand, seed=seed, resamples=resamples)
    else:
        diff, low, high = (float(x) for x in difference(inc, cand))
    inc_ok = inc >= threshold
    cand_ok = cand >= threshold
    b = int(np.sum(inc_ok & ~cand_ok))
    c = int(np.sum(~inc_ok & cand_ok))
    if test == MCNEMAR_EXACT:
        p = mcnemar_exact(b, c)
    else:
        p = paired_permutation_p(cand - inc, seed=seed, resamples=resamples)
    return SliceComparison(
        field=field, value=value, n=int(inc.shape[0]),
        incumbent_quality=float(inc.mean()), candidate_quality=float(cand.mean()),
        diff=diff, diff_ci_low=low, diff_ci_high=high,
        wins=int(np.sum(cand > inc)), losses=int(np.sum(cand < inc)), ties=int(np.sum(cand == inc)),
        regressed=b, improved=c, p_value=p, test=test,
    )


def _flip(e: PairedExample) -> Flip:
    return Flip(
        example_id=e.example_id, input_text=e.input_text, slices=dict(e.slices),
        incumbent_prediction=e.incumbent_prediction, candidate_prediction=e.candidate_prediction,
        incumbent_score=float(e.incumbent_score), candidate_score=float(e.candidate_score),
    )


def _same_prediction(a: object, b: object) -> bool:
    """Whether two predictions agree: `==` on JSON-able values; None == None (both no answer)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. an array-valued prediction with no truth value
        return False


def _mean_statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)
