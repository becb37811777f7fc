"""Calibrating an LLM judge against human judgements: how often it agrees with people, and
quality / paired differences whose intervals account for the judge's errors.

A judged feature's scores come from a judge (rubric: a score in [0, 1]; pairwise: win / tie / loss
of the candidate against the incumbent's answer), and a judge errs. Given a small set of items that
people judged *and* the judge judged (a `Calibration`), this module reports the judge's agreement
with the people (`Agreement`) and corrects the study's estimates for the judge's errors.

**Which correction, and why.** The human-judged answers in a migration are usually the incumbent's
(or a few models'), never the candidate's, so the pass rate on the human set differs from the
candidate's. Prediction-powered inference's rectifier, mean(human - judge) on the human set, is
unbiased only when the human set is drawn from the same answers as the ones being judged: a judge
whose false-pass rate is 30% overstates a weak candidate's quality more than a strong incumbent's, and
a rectifier measured on the incumbent's answers carries the wrong size of error to the candidate. We
therefore use a *misclassification correction*: the judge's confusion matrix M[h, j] =
P(judge says j | human says h) is estimated on the human set, and the study's distribution of judge
verdicts q is unmixed, q = M^T pi, into the distribution pi of verdicts the humans would have given
(least squares, projected onto the probability simplex). For pass / fail this is Rogan-Gladen,
pi_pass = (q_pass + spec - 1) / (sens + spec - 1); for win / tie / loss it is the 3x3 confusion
inverse. It transfers across pass rates as long as the judge's error rates given the true verdict
are the same on the candidate's answers as on the human-judged ones (non-differential errors): the
assumption every report of a corrected number states. PPI is not offered: the labelled answers in a
migration are never a random sample of the candidate's, and with one human set shared by both
configs its rectifier cancels out of a paired difference, leaving the uncorrected one.

**Categories.** Every scale is a set of categories with a value on the score scale: `pass_fail`
(fail 0, pass 1), `five_point` (1..5 -> (s - 1) / 4), `pairwise` (loss 0, tie 0.5, win 1). A human
verdict must be one of those values; a judge score is binned to the nearest category (a rubric with
criteria gives a share of criteria passed: with pass / fail humans, >= 0.5 counts as pass). The
corrected quality is the expected *human* value, sum(pi * value): the quality people would give.
Categories the humans never used are assumed absent from the truth too (the method string says so).

**Intervals.** 95% percentile bootstrap that resamples both the study's examples (paired: one index
draw for candidate and incumbent) and the human-judged set (one draw per resample, shared by the
candidate and the incumbent, so the correction's error cancels where it should). A resample that
loses every item of a human verdict category cannot estimate the judge there and counts as a failed
one (below). Values stay in the valid range by construction ([0, 1] for a quality, [-1, 1] for a
difference).

**When the judge is no better than chance** (Cohen's kappa <= 0 on the human set, quadratic-weighted
for `five_point`; fewer than two human verdict categories; a singular confusion matrix), the
correction is undefined: the interval is the whole valid range and the point is the judge's
uncorrected number, said so in the method string. When more than 2.5% of the bootstrap's human
resamples are like that, the correction is too unstable to trust and the same happens; fewer such
resamples are put at the two ends of the range (half each), widening the interval, never narrowing it.

Without a calibration the functions return the plain (paired) bootstrap of the judge's scores and
the method says the interval assumes a perfect judge. All functions work on any subset of the study's
examples (a slice): the human set is shared, the judge's errors are assumed the same in every slice.

Pure numpy, no I/O; deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from offramp.tasks.evidence.bootstrap import MAX_CELLS, percentile_bootstrap

Scale = Literal["pass_fail", "five_point", "pairwise"]
SCALES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "pass_fail": (("fail", "pass"), (0.0, 1.0)),
    "five_point": (("1", "2", "3", "4", "5"), (0.0, 0.25, 0.5, 0.75, 1.0)),
    "pairwise": (("loss", "tie", "win"), (0.0, 0.5, 1.0)),
}
PERFECT_JUDGE = "assumes a perfect judge (no human judgements)"
ALPHA = 0.05
SINGULAR = 1e-6  # smallest singular value of the confusion matrix below which it is singular


@dataclass(frozen=True)
class Estimate:
    """A point with its 95% interval and how it was computed (`corrected`: the judge's errors
    were accounted for; False both without human judgements and when the correction is undefined)."""

    point: float
    low: float
    high: float
    method: str
    corrected: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Agreement:
    """The judge against the humans on the same items. `confusion[h][j]` counts items the humans
    put in category `labels[h]` and the judge in `labels[j]`. `kappa` is Cohen's (None when
    undefined: every item in one category on both sides); `weighted_kappa` is quadratic-weighted
    (ordinal `five_point` only). Pairwise: the judge's and the humans' share of ties."""

    scale: str
    n: int
    labels: tuple[str, ...]
    raw_agreement: float
    kappa: float | None
    weighted_kappa: float | None
    confusion: tuple[tuple[int, ...], ...]
    judge_tie_rate: float | None
    human_tie_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line for a report, e.g. `judge vs 80 human judgements: agreement 78%, kappa 0.55`."""
        kappa = "undefined" if self.kappa is None else f"{self.kappa:.2f}"
        line = f"judge vs {self.n} human judgements: agreement {self.raw_agreement:.0%}, kappa {kappa}"
        if self.weighted_kappa is not None:
            line += f" (quadratic-weighted {self.weighted_kappa:.2f})"
        if self.judge_tie_rate is not None:
            line += f", ties: judge {self.judge_tie_rate:.0%}, people {self.human_tie_rate:.0%}"
        return line


@dataclass(frozen=True)
class Calibration:
    """Human verdicts and the judge's verdicts on the same items, as category indices of `scale`
    (build it with `calibrate`)."""

    scale: str
    human: tuple[int, ...]
    judge: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.human)

    def agreement(self) -> Agreement:
        labels, _ = SCALES[self.scale]
        counts = _confusion(np.array(self.human), np.array(self.judge), len(labels), None)[0]
        kappa = _kappa(counts[None], weighted=False)[0]
        wkappa = _kappa(counts[None], weighted=True)[0] if self.scale == "five_point" else None
        tie = labels.index("tie") if self.scale == "pairwise" else None
        return Agreement(
            scale=self.scale, n=self.n, labels=labels, raw_agreement=float(np.trace(counts) / self.n),
            kappa=None if np.isnan(kappa) else float(kappa),
            weighted_kappa=None if wkappa is None or np.isnan(wkappa) else float(wkappa),
            confusion=tuple(tuple(int(c) for c in row) for row in counts),
            judge_tie_rate=None if tie is None else float(counts[:, tie].sum() / self.n),
            human_tie_rate=None if tie is None else float(counts[tie].sum() / self.n),
        )


def calibrate(human: Sequence[float | str], judge: Sequence[float | str], scale: Scale) -> Calibration:
    """A calibration from the humans' and the judge's verdicts on the same items, in the same order.

    Verdicts are scores on the scale's values (pass_fail 0/1; five_point (s-1)/4; pairwise 1 win,
    0.5 tie, 0 loss) or the scale's labels ("pass", "3", "win"). A human verdict must be exactly a
    category; a judge score in [0, 1] is binned to the nearest one.

    Raises:
        ValueError: An unknown scale, no items, lengths that differ, or a verdict off the scale.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(SCALES)}")
    if len(human) != len(judge) or len(human) == 0:
        raise ValueError(f"calibrate needs the same non-zero number of human and judge verdicts, got {len(human)} and {len(judge)}")
    return Calibration(scale=scale, human=tuple(int(c) for c in codes(human, scale, exact=True)),
                       judge=tuple(int(c) for c in codes(judge, scale, exact=False)))


def codes(verdicts: Sequence[float | str] | np.ndarray, scale: str, *, exact: bool = False) -> np.ndarray:
    """Category indices of verdicts (labels or scores); `exact` refuses a score that is not a category's value."""
    labels, values = SCALES[scale]
    grid = np.array(values)
    items = list(verdicts)
    for x in items:
        if isinstance(x, str) and x not in labels:
            raise ValueError(f"verdict {x!r} is not one of {list(labels)}")
    s = np.array([values[labels.index(x)] if isinstance(x, str) else x for x in items], dtype=float)
    bad = ~((s >= 0.0) & (s <= 1.0))  # NaN fails too
    if bad.any():
        raise ValueError(f"score {items[int(np.argmax(bad))]!r} is outside [0, 1]")
    out = np.argmin(np.abs(s[:, None] - grid[None, :]) - 1e-12 * grid[None, :], axis=1)  # a midpoint goes up
    if exact:
        off = np.abs(grid[out] - s) > 1e-9
        if off.any():
            raise ValueError(f"human verdict {items[int(np.argmax(off))]!r} is not one of the {scale} values {list(values)}")
    return out.astype(np.int64)


def corrected_quality(
    judge_scores: Sequence[float] | np.ndarray, calibration: Calibration | None = None, *,
    seed: int = 0, resamples: int = 2000,
) -> Estimate:
    """The quality people would give, from the judge's per-example scores: mean human value, with a
    95% interval that resamples the examples and the human set. Without `calibration`, the mean judge
    score and its bootstrap interval, which assume a perfect judge. Range [0, 1]."""
    scores = _scores(judge_scores, "judge_scores")
    if calibration is None:
        low, high = percentile_bootstrap(scores.shape[0], lambda idx: scores[idx].mean(axis=1), seed=seed, resamples=resamples)
        return Estimate(float(scores.mean()), low, high, f"bootstrap of the judge's scores; {PERFECT_JUDGE}", False)
    _, values = SCALES[calibration.scale]
    v = np.array(values)
    study = [codes(scores, calibration.scale)]
    return _corrected(study, calibration, lambda pis: pis[0] @ v, (0.0, 1.0), float(scores.mean()),
                      "quality", seed=seed, resamples=resamples)


def corrected_difference(
    cand_scores: Sequence[float] | np.ndarray, inc_scores: Sequence[float] | np.ndarray,
    calibration: Calibration | None = None, *, seed: int = 0, resamples: int = 2000,
) -> Estimate:
    """Rubric: candidate quality minus incumbent quality as people would judge them, on the same
    examples (paired). Both qualities are unmixed with the same confusion matrix (one human-set
    resample per bootstrap resample, one example resample for both). Without `calibration`, the
    paired bootstrap of the judge's score difference, which assumes a perfect judge. Range [-1, 1]."""
    cand = _scores(cand_scores, "cand_scores")
    inc = _scores(inc_scores, "inc_scores")
    if cand.shape != inc.shape:
        raise ValueError(f"cand_scores and inc_scores must pair the same examples, got {cand.shape[0]} and {inc.shape[0]}")
    d = cand - inc
    if calibration is not None and calibration.scale == "pairwise":
        raise ValueError("a pairwise judge scores the candidate against the incumbent: use corrected_preference")
    if calibration is None:
        low, high = percentile_bootstrap(d.shape[0], lambda idx: d[idx].mean(axis=1), seed=seed, resamples=resamples)
        return Estimate(float(d.mean()), low, high, f"paired bootstrap of the judge's scores; {PERFECT_JUDGE}", False)
    _, values = SCALES[calibration.scale]
    v = np.array(values)
    study = [codes(cand, calibration.scale), codes(inc, calibration.scale)]
    return _corrected(study, calibration, lambda pis: pis[0] @ v - pis[1] @ v, (-1.0, 1.0), float(d.mean()),
                      "paired difference", seed=seed, resamples=resamples)


def corrected_preference(
    verdicts: Sequence[float | str] | np.ndarray, calibration: Calibration | None = None, *,
    scale: Literal["net", "score"] = "net", seed: int = 0, resamples: int = 2000,
) -> Estimate:
    """Pairwise: how much people would prefer the candidate to the incumbent, from the judge's
    combined verdicts per example (1 / "win", 0.5 / "tie", 0 / "loss", candidate's view).

    `scale="net"`: P(win) - P(loss) under the humans' verdicts, in [-1, 1] (0: parity).
    `scale="score"`: the same halved, (P(win) - P(loss)) / 2 = mean human score - 0.5, in
    [-0.5, 0.5]: the scale of the uncalibrated paired difference `compare_paired` computes when
    the candidate scores 1 / 0.5 / 0 and the incumbent 0.5 (a tie with itself).
    Without `calibration`, the bootstrap of the judge's own verdicts (assumes a perfect judge).
    """
    if scale not in ("net", "score"):
        raise ValueError(f"scale must be 'net' or 'score', got {scale!r}")
    if calibration is not None and calibration.scale != "pairwise":
        raise ValueError(f"corrected_preference needs a pairwise calibration, got {calibration.scale!r}")
    c = codes(verdicts, "pairwise")
    if c.shape[0] == 0:
        raise ValueError("corrected_preference needs at least one verdict")
    half = 0.5 if scale == "score" else 1.0
    net = (c == 2).astype(float) - (c == 0).astype(float)
    if calibration is None:
        low, high = percentile_bootstrap(c.shape[0], lambda idx: net[idx].mean(axis=1), seed=seed, resamples=resamples)
        return Estimate(half * float(net.mean()), half * low, half * high,
                        f"bootstrap of the judge's verdicts, P(win) - P(loss){' halved' if half < 1 else ''}; {PERFECT_JUDGE}", False)
    label = "(P(win) - P(loss)) / 2" if half < 1 else "P(win) - P(loss)"
    return _corrected([c], calibration, lambda pis: half * (pis[0][:, 2] - pis[0][:, 0]), (-half, half),
                      half * float(net.mean()), label, seed=seed, resamples=resamples)


def difference_hook(
    calibration: Calibration | None, *, pairwise: bool = False, seed: int = 0, resamples: int = 2000,
) -> Callable[[np.ndarray, np.ndarray], tuple[float, float, float]]:
    """A `difference` for `compare.compare_paired`: (inc, cand) per-example scores -> (diff, low, high).
    Rubric: `corrected_difference`. Pairwise: `corrected_preference(cand, scale="score")` (the
    incumbent's scores are not used: each candidate score already is a verdict against it)."""
    def difference(inc: np.ndarray, cand: np.ndarray) -> tuple[float, float, float]:
        if pairwise:
            e = corrected_preference(cand, calibration, scale="score", seed=seed, resamples=resamples)
        else:
            e = corrected_difference(cand, inc, calibration, seed=seed, resamples=resamples)
        return e.point, e.low, e.high
    return difference


# --- internals ------------------------------------------------------------------------------------


def _scores(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array")
    if not np.all((a >= 0.0) & (a <= 1.0)):
        raise ValueError(f"{name} must be in [0, 1]")
    return a


def _counts(c: np.ndarray, k: int, idx: np.ndarray | None) -> np.ndarray:
    """Per resample (row of idx), the count of each category 0..k-1 among c[idx]: shape (b, k)."""
    sel = c[None, :] if idx is None else c[idx]
    b = sel.shape[0]
    return np.bincount((sel + k * np.arange(b)[:, None]).ravel(), minlength=b * k).reshape(b, k)


def _confusion(h: np.ndarray, j: np.ndarray, k: int, idx: np.ndarray | None) -> np.ndarray:
    """Confusion counts (b, k, k), rows human, columns judge."""
    return _counts(h * k + j, k * k, idx).reshape(-1, k, k)


def _kappa(counts: np.ndarray, *, weighted: bool) -> np.ndarray:
    """Cohen's kappa of each (k, k) count table in a stack (NaN where chance agreement is 1)."""
    k = counts.shape[-1]
    total = counts.sum(axis=(1, 2)).astype(float)
    i, j = np.indices((k, k))
    w = 1.0 - (i - j) ** 2 / (k - 1) ** 2 if weighted else (i == j).astype(float)
    p = counts / total[:, None, None]
    expected = p.sum(axis=2)[:, :, None] * p.sum(axis=1)[:, None, :]
    po = (w * p).sum(axis=(1, 2))
    pe = (w * expected).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pe < 1.0 - 1e-12, (po - pe) / (1.0 - pe), np.nan)


def _project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto the probability simplex (Duchi et al. 2008)."""
    u = -np.sort(-v, axis=1)
    css = np.cumsum(u, axis=1) - 1.0
    ind = np.arange(1, v.shape[1] + 1)
    rho = (u - css / ind > 0).sum(axis=1)  # >= 1 always
    theta = css[np.arange(v.shape[0]), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


def _unmix(conf: np.ndarray, observed: np.ndarray, qs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Humans' verdict distribution from the judge's, per resample.

    conf: (b, k, k) confusion counts; observed: the human categories used in the full human set;
    qs: judge verdict distributions (b, k). Returns the distributions over all k categories (zero
    where humans never judged) and the smallest singular value of each M^T.
    """
    b, k, _ = conf.shape
    rows = conf[:, observed, :].astype(float)
    m = rows / np.maximum(rows.sum(axis=2, keepdims=True), 1.0)  # (b, h, k): P(judge j | human h); an empty row is a failure
    u, s, vt = np.linalg.svd(np.transpose(m, (0, 2, 1)), full_matrices=False)  # M^T: (b, k, h)
    inv_s = np.where(s > SINGULAR, 1.0 / np.where(s > SINGULAR, s, 1.0), 0.0)
    pinv = np.transpose(vt, (0, 2, 1)) @ (inv_s[:, :, None] * np.transpose(u, (0, 2, 1)))  # (b, h, k)
    out = []
    for q in qs:
        pi_h = _project_simplex(np.einsum("bhk,bk->bh", pinv, q))
        full = np.zeros((b, k))
        full[:, observed] = pi_h
        out.append(full)
    return out, s.min(axis=1)


def _corrected(
    study: list[np.ndarray], cal: Calibration, statistic: Callable[[list[np.ndarray]], np.ndarray],
    bounds: tuple[float, float], uncorrected: float, what: str, *, seed: int, resamples: int,
) -> Estimate:
    """The misclassification-corrected statistic and its two-way bootstrap interval (see the module doc)."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    labels, _ = SCALES[cal.scale]
    k = len(labels)
    human = np.array(cal.human, dtype=np.int64)
    judge = np.array(cal.judge, dtype=np.int64)
    n = study[0].shape[0]
    m = human.shape[0]
    observed = np.flatnonzero(np.bincount(human, minlength=k))
    weighted = cal.scale == "five_point"
    conf = _confusion(human, judge, k, None)
    kappa = float(_kappa(conf, weighted=weighted)[0])
    kname = "quadratic-weighted kappa" if weighted else "kappa"

    def undefined(reason: str) -> Estimate:
        return Estimate(uncorrected, bounds[0], bounds[1],
                        f"not corrected: {reason}; the interval is the whole range [{bounds[0]:g}, {bounds[1]:g}] and the "
                        f"point is the judge's uncorrected {what}", False)

    if observed.shape[0] < 2:
        return undefined(f"the {m} human judgements all say {labels[observed[0]]!r}, so the judge's errors on the "
                         "other verdicts are unknown")
    if not kappa > 0.0:  # NaN too
        return undefined(f"the judge is no better than chance on the {m} human judgements ({kname} {kappa:.2f})")
    pis, smin = _unmix(conf, observed, [_counts(c, k, None) / n for c in study])
    if smin[0] <= SINGULAR:
        return undefined(f"the judge's confusion matrix on the {m} human judgements is singular")
    point = float(np.clip(statistic(pis)[0], *bounds))

    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_CELLS // max(n, m))
    values = np.empty(resamples)
    failed = np.zeros(resamples, dtype=bool)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx_h = rng.integers(0, m, size=(stop - start, m))
        idx_s = rng.integers(0, n, size=(stop - start, n))
        conf_b = _confusion(human, judge, k, idx_h)
        qs = [_counts(c, k, idx_s) / n for c in study]
        pis_b, smin_b = _unmix(conf_b, observed, qs)
        kappa_b = _kappa(conf_b, weighted=weighted)
        vanished = (conf_b.sum(axis=2)[:, observed] == 0).any(axis=1)
        failed[start:stop] = vanished | ~(kappa_b > 0.0) | (smin_b <= SINGULAR)
        values[start:stop] = np.clip(statistic(pis_b), *bounds)
    share = float(failed.mean())
    if share > ALPHA / 2:
        return undefined(f"in {share:.0%} of the bootstrap's resamples of the {m} human judgements the judge is no "
                         f"better than chance (or a verdict category is missing), so the correction is unstable "
                         f"({kname} {kappa:.2f})")
    bad = np.flatnonzero(failed)
    values[bad[0::2]] = bounds[0]  # anything is possible in those resamples: both ends of the range
    values[bad[1::2]] = bounds[1]
    low, high = np.percentile(values, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    unused = [labels[i] for i in range(k) if i not in set(observed.tolist())]
    note = f"; humans never said {unused}, assumed absent from the truth" if unused else ""
    method = (f"misclassification-corrected {what} (the judge's confusion on {m} human judgements, {kname} {kappa:.2f}, "
              f"assumed the same on every config's answers{note}); 95% bootstrap over the {n} examples and the human set")
    return Estimate(point, float(low), float(high), method, True)
