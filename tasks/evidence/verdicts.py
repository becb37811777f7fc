"""Slices judged by evidence, and the power a test split has before anything is paid.

A slice's verdict comes from its paired interval (tasks.evidence.compare), not from its point
estimate, with the number of slices accounted for (Bonferroni):

- `m` is the number of slices judged for one candidate (slices of at least `min_slice_n`
  examples, every slice field counted). Each slice's interval is widened from 95% to
  1 - 0.05 / m: each side of the stored 95% interval is scaled by z(1 - 0.025 / m) / z(0.975).
  The 95% interval may be asymmetric (a percentile bootstrap, or another estimator that fills
  `diff_ci_low`/`diff_ci_high`): its shape is kept, only its width grows. The chance that any of
  the m verdicts is wrong is then at most 5% whatever the slices' overlap.
- A slice whose examples all differ the same way has a zero-width bootstrap interval, yet it is a
  sample: the verdict's standard error is at least that of one discordant pair in n + 1 examples,
  sqrt(1 / (n (n + 1))).
- `not_worse`: the adjusted interval's lower end >= -max_slice_drop (shown not worse than the limit);
  `worse`: its upper end < -max_slice_drop (shown worse than the limit);
  `too_few`: neither: too few examples to tell. `not_judged`: fewer than `min_slice_n` examples.

Examples needed (a `too_few` slice): taking the slice's observed difference as the truth, with
the per-example standard deviation its interval implies, the smallest n at which the adjusted
interval excludes the limit on the point's side in 80% of draws:
n = ((z_adj + z_0.80) * sd / |diff + max_slice_drop|)^2; none ("never at this effect size") when
the point is at the limit.

Power before spend (no call made yet, so no variance measured): a paired binary difference with a
discordance rate psi (the share of examples on which candidate and incumbent differ) and no true
difference has per-example variance psi. With n examples the smallest drop the split can tell
(at the adjusted confidence, 80% power) is (z_adj + z_0.80) * sqrt(psi / n): a candidate as good as
the incumbent is then shown `not_worse` than that limit in 80% of draws, and a true drop of that
size is shown below zero as often. The examples that bring it down to `max_slice_drop`:
ceil((z_adj + z_0.80)^2 * psi / max_slice_drop^2). psi is an assumption, stated with every row:
30% before any call (conservative for a candidate meant to replace the incumbent), or from the
incumbent's measured dev quality q once known: 2 q (1 - q) (a candidate as good whose errors are
independent of the incumbent's), at least 5%. The overall row uses the quality rule's own 95%
interval (no multiplicity) and `quality_tolerance` as its target.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from scipy import stats

ALPHA = 0.05  # the policy's confidence is 95%, for the overall interval and for the slices as a family
POWER = 0.80
DEFAULT_DISCORDANCE = 0.30
MIN_DISCORDANCE = 0.05
NOT_WORSE, WORSE, TOO_FEW, NOT_JUDGED = "not_worse", "worse", "too_few", "not_judged"
_Z95 = float(stats.norm.ppf(1 - ALPHA / 2))
_ZPOWER = float(stats.norm.ppf(POWER))


def adjusted_z(m: int) -> float:
    """The two-sided normal quantile of a 1 - ALPHA / m interval (Bonferroni over m slices)."""
    return float(stats.norm.ppf(1 - ALPHA / (2 * max(1, m))))


def adjusted_confidence(m: int) -> float:
    return 1 - ALPHA / max(1, m)


@dataclass(frozen=True)
class SliceVerdict:
    """One slice of one candidate, judged against `-max_slice_drop` at the adjusted confidence."""

    name: str  # "field=value"
    n: int
    diff: float
    ci_low: float  # the 95% interval it was derived from
    ci_high: float
    verdict: str  # not_worse | worse | too_few | not_judged
    slices_judged: int  # m
    confidence: float | None = None  # 1 - 0.05 / m (None: not judged)
    adj_low: float | None = None
    adj_high: float | None = None
    n_needed: int | None = None  # too_few: total examples that would decide it (80% of draws); None: never
    more_needed: int | None = None  # n_needed - n

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self, limit: float) -> str:
        """'not worse', 'worse', 'too few to tell: ~N more examples would decide', with the numbers."""
        if self.verdict == NOT_JUDGED:
            return f"slice {self.name} (n={self.n}): not judged (fewer examples than the policy's min_slice_n)"
        interval = f"{self.confidence:.1%} CI [{self.adj_low:+.3f}, {self.adj_high:+.3f}]"
        head = f"slice {self.name} {self.diff:+.3f} (n={self.n}, {interval}, {self.slices_judged} slice(s) judged)"
        if self.verdict == NOT_WORSE:
            return f"{head}: not worse than -{limit:g}"
        if self.verdict == WORSE:
            return f"{head}: worse than -{limit:g}"
        return f"{head}: too few to tell: {needed_text(self)}"


def needed_text(v: SliceVerdict) -> str:
    if v.verdict != TOO_FEW:
        return ""
    if v.n_needed is None:
        return "never at this effect size (the point is at the limit)"
    return f"~{v.more_needed} more examples would decide (n ~{v.n_needed})"


def _halves(n: int, diff: float, low: float, high: float) -> tuple[float, float]:
    """The 95% interval's two half-widths, each at least the floor of one discordant pair in n + 1."""
    floor = _Z95 * math.sqrt(1.0 / (n * (n + 1))) if n > 0 else math.inf
    return max(diff - low, floor), max(high - diff, floor)


def judge_slice(name: str, diff: float, n: int, low: float, high: float, *, limit: float, m: int) -> SliceVerdict:
    """One judged slice (n >= min_slice_n) at the confidence adjusted for `m` slices."""
    z = adjusted_z(m)
    left, right = _halves(n, diff, low, high)
    adj_low, adj_high = diff - left * z / _Z95, diff + right * z / _Z95
    verdict = NOT_WORSE if adj_low >= -limit else WORSE if adj_high < -limit else TOO_FEW
    n_needed = more = None
    if verdict == TOO_FEW:
        gap = abs(diff + limit)
        if gap > 1e-9:
            sd = math.sqrt(n) * (left + right) / (2 * _Z95)
            n_needed = max(n + 1, math.ceil(((z + _ZPOWER) * sd / gap) ** 2))
            more = n_needed - n
    return SliceVerdict(name, n, diff, low, high, verdict, m, adjusted_confidence(m), adj_low, adj_high, n_needed, more)


def judge_slices(
    slices: Mapping[str, tuple[float, int]], intervals: Mapping[str, tuple[float, float]], *, limit: float, min_slice_n: int,
) -> list[SliceVerdict]:
    """Every slice of one candidate: `slices` name -> (diff, n), `intervals` name -> its 95% (low, high)
    (a slice without one is taken at its point, a zero-width interval, floored as above). Sorted by name."""
    judged = [k for k, (_, n) in slices.items() if n >= min_slice_n]
    m = len(judged)
    out = []
    for name in sorted(slices):
        diff, n = slices[name]
        if n < min_slice_n:
            out.append(SliceVerdict(name, n, diff, *intervals.get(name, (diff, diff)), NOT_JUDGED, m))
            continue
        low, high = intervals.get(name, (diff, diff))
        out.append(judge_slice(name, diff, n, low, high, limit=limit, m=m))
    return out


# --- power before spend ---------------------------------------------------------------------------

def discordance_from_quality(quality: float) -> float:
    """The assumed share of examples on which an equally good candidate differs from an incumbent of
    this quality: 2 q (1 - q) (independent errors), at least MIN_DISCORDANCE."""
    q = min(1.0, max(0.0, quality))
    return max(MIN_DISCORDANCE, 2 * q * (1 - q))


def detectable_drop(n: int, discordance: float, z: float) -> float:
    """Smallest difference n paired examples tell apart at quantile z with 80% power."""
    return (z + _ZPOWER) * math.sqrt(discordance / n) if n > 0 else math.inf


def examples_for(target: float, discordance: float, z: float) -> int:
    """Paired examples at which the detectable difference reaches `target`."""
    return math.ceil((z + _ZPOWER) ** 2 * discordance / target ** 2)


@dataclass(frozen=True)
class PowerRow:
    slice_field: str | None  # None: the whole test split
    slice_value: str | None
    n: int
    judged: bool
    slices_judged: int
    confidence: float
    discordance: float
    assumption: str
    detectable_drop: float
    target_drop: float | None  # max_slice_drop (slices), quality_tolerance (overall)
    n_needed: int | None
    more_needed: int | None

    @property
    def name(self) -> str:
        return "(all)" if self.slice_field is None else f"{self.slice_field}={self.slice_value}"

    def to_dict(self) -> dict:
        return asdict(self)


def power_table(
    slice_sizes: Mapping[tuple[str, str], int], n_total: int, *, max_slice_drop: float | None, min_slice_n: int,
    quality_tolerance: float, discordance: float, assumption: str,
) -> list[PowerRow]:
    """The overall row, then one per declared slice (sorted): what the test split can tell."""
    m = sum(1 for n in slice_sizes.values() if n >= min_slice_n)
    z_all, z_slice = _Z95, adjusted_z(m)

    def row(field, value, n, judged, z, conf, target):
        needed = examples_for(target, discordance, z) if target else None
        return PowerRow(field, value, n, judged, m, conf, discordance, assumption, detectable_drop(n, discordance, z),
                        target, needed, None if needed is None else max(0, needed - n))

    rows = [row(None, None, n_total, True, z_all, 1 - ALPHA, quality_tolerance or None)]
    for (field, value), n in sorted(slice_sizes.items()):
        judged = max_slice_drop is not None and n >= min_slice_n
        rows.append(row(field, value, n, judged, z_slice, adjusted_confidence(m), max_slice_drop))
    return rows


def slice_sizes(examples: Sequence) -> dict[tuple[str, str], int]:
    """(field, value) -> count over examples that carry `slices` (tasks.feature.spec.Example)."""
    sizes: dict[tuple[str, str], int] = {}
    for e in examples:
        for field, value in e.slices.items():
            sizes[(field, value)] = sizes.get((field, value), 0) + 1
    return sizes


def power_lines(rows: Sequence[PowerRow]) -> list[str]:
    """The table in words, for a log or a terminal."""
    if not rows:
        return []
    first = rows[0]
    slices = (f"; slices at {rows[-1].confidence:.2%} confidence, Bonferroni over {first.slices_judged} judged"
              if len(rows) > 1 and first.slices_judged else "")
    lines = [f"Power of the test split (discordance {first.discordance:.0%}, {first.assumption}; 80% power; "
             f"overall at 95% confidence{slices}):"]
    for r in rows:
        target = "" if r.target_drop is None else (
            f"; reaches {r.target_drop:g} at n={r.n_needed}" + (f" ({r.more_needed} more labelled examples)" if r.more_needed else ""))
        judged = "" if r.judged else " (not judged: below min_slice_n or no slice limit)"
        lines.append(f"  {r.name}: n={r.n}, smallest detectable drop {r.detectable_drop:.3f}{target}{judged}")
    return lines


def verdict_text(row: Mapping) -> str:
    """A stored slice row's verdict in words (a `v_regressions` / `comparisons` row)."""
    verdict = row.get("verdict")
    if verdict is None:
        return "-"
    if verdict == TOO_FEW:
        needed = row.get("n_needed")
        return ("too few to tell: never at this effect size" if needed is None
                else f"too few to tell: ~{needed - row['n']} more examples would decide")
    return {NOT_WORSE: "not worse", WORSE: "worse", NOT_JUDGED: "not judged (small)"}.get(verdict, verdict)


def verdict_interval(row: Mapping) -> str:
    if row.get("adj_ci_low") is None:
        return "-"
    return f"[{row['adj_ci_low']:+.3f}, {row['adj_ci_high']:+.3f}] at {row['adj_confidence']:.1%}"
