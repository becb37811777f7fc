"""Choosing the config to ship among the front, on evidence, slice by slice.

A `SelectionPolicy` has constraints and a preference. A front config is accepted when, on the
held-out split, compared pairwise with the incumbent (tasks.compare):
- quality: the paired difference is not worse than `-quality_tolerance`, judged on its 95%
  interval: `non_inferior` (default) needs the interval's LOWER end >= -tolerance (evidence that it
  is not worse); `not_worse` only needs the interval's UPPER end >= -tolerance (no evidence that it
  is worse: lenient, for small samples);
- slices (of at least `min_slice_n` examples), judged on their intervals with the number of slices
  accounted for (tasks.evidence.verdicts): a slice shown `worse` than `-max_slice_drop` rejects; one
  with too few examples to tell (`too_few`) warns (`slice_undecided: warn`, the default) or rejects
  (`slice_undecided: block`);
- cost, latency, error rate: at most `max_cost_per_1k_usd`, `max_latency_p95_s`, `max_error_rate`.
Among the accepted, `prefer` picks: `cheapest` (default), `fastest`, `quality`, or `knee` (the
accepted config closest to the ideal corner after scaling each objective to [0, 1]).
Every candidate gets a verdict with its reasons. If none is accepted, nothing is selected and
the least-bad one (fewest violated constraints, then highest quality) is named with its risks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from offramp.errors import UserError
from offramp.search_spaces.validation import load_model
from offramp.tasks.evidence.verdicts import TOO_FEW, WORSE, SliceVerdict, judge_slices
from offramp.util import content_hash
from offramp.warehouse.records import TrialMeasurement


class SelectionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quality_rule: Literal["non_inferior", "not_worse"] = "non_inferior"
    quality_tolerance: float = Field(default=0.05, ge=0, le=1, description="points of quality a candidate may lose")
    max_slice_drop: float | None = Field(default=0.15, ge=0, le=1, description="largest drop allowed in any slice")
    min_slice_n: int = Field(default=5, ge=1, description="slices smaller than this are reported, not judged")
    max_cost_per_1k_usd: float | None = Field(default=None, gt=0)
    max_latency_p95_s: float | None = Field(default=None, gt=0)
    max_error_rate: float | None = Field(default=0.05, ge=0, le=1)
    prefer: Literal["cheapest", "fastest", "quality", "knee"] = "cheapest"
    # a slice with too few examples to tell whether it drops by more than max_slice_drop: warn (the default: a
    # small slice can show nothing either way, and rejecting on no evidence made "nothing passes" the answer of
    # most studies; the warning names the examples that would decide it) or block (reject, as if it were worse)
    slice_undecided: Literal["warn", "block"] = "warn"

    def describe(self) -> str:
        bound = "lower" if self.quality_rule == "non_inferior" else "upper"
        parts = [f"quality vs incumbent: {bound} end of the paired 95% interval >= -{self.quality_tolerance:g}"]
        if self.max_slice_drop is not None:
            parts.append(f"no slice (n >= {self.min_slice_n}) shown worse by more than {self.max_slice_drop:g} "
                         f"(its interval at 1 - 0.05/m, m = slices judged; too few to tell: {self.slice_undecided})")
        if self.max_cost_per_1k_usd is not None:
            parts.append(f"cost <= ${self.max_cost_per_1k_usd:g} per 1k")
        if self.max_latency_p95_s is not None:
            parts.append(f"p95 <= {self.max_latency_p95_s:g} s")
        if self.max_error_rate is not None:
            parts.append(f"error rate <= {self.max_error_rate:g}")
        return "; ".join(parts) + f"; then prefer: {self.prefer}"

    def identity(self, source: str | None = None) -> dict:
        """What the warehouse stores and the report names: the file the policy came from (None:
        the flow's parameters or the defaults), a hash of its values (two files with the same
        values have the same hash) and the values."""
        values = self.model_dump(mode="json")
        hashed = {k: v for k, v in values.items() if not (k in _ADDED and v == _ADDED[k])}  # old policies hash as before
        return {"file": source, "hash": content_hash(hashed, length=12, compact=False), "values": values}


_ADDED = {"slice_undecided": "warn"}  # fields added after studies stored policy hashes, with their defaults


def load_policy(path: str | Path) -> SelectionPolicy:
    """A policy file: YAML of `SelectionPolicy`'s fields (unknown fields and bad values refused,
    naming the file and the field)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such policy file; expected a YAML mapping of policy fields "
                        f"({', '.join(SelectionPolicy.model_fields)})")
    return load_model(path, SelectionPolicy, what="policy", error=UserError,
                      expected=f"a mapping of policy fields ({', '.join(SelectionPolicy.model_fields)})")


@dataclass(frozen=True)
class Candidate:
    """A front config as measured on the held-out split, with its paired comparison."""

    trial_id: int  # its dev trial
    label: str
    test: TrialMeasurement  # what its test trial measured
    diff: float  # candidate - incumbent, paired
    diff_ci_low: float
    diff_ci_high: float
    slice_diffs: dict[str, tuple[float, int]] = field(default_factory=dict)  # "field=value" -> (diff, n)
    slice_cis: dict[str, tuple[float, float]] = field(default_factory=dict)  # "field=value" -> its 95% (low, high)

    def slice_verdicts(self, policy: SelectionPolicy) -> list[SliceVerdict]:
        """Each slice judged under the policy (none when the policy sets no slice limit)."""
        if policy.max_slice_drop is None:
            return []
        return judge_slices(self.slice_diffs, self.slice_cis, limit=policy.max_slice_drop, min_slice_n=policy.min_slice_n)


@dataclass(frozen=True)
class Selection:
    trial_id: int | None
    policy: dict
    rule: str
    reason: str
    incumbent_test_quality: float
    recommended_trial_id: int | None = None
    verdicts: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def violations(c: Candidate, policy: SelectionPolicy) -> list[str]:
    """What keeps a candidate from being accepted (empty: accepted)."""
    problems = []
    bound = c.diff_ci_low if policy.quality_rule == "non_inferior" else c.diff_ci_high
    if bound < -policy.quality_tolerance:
        end = "lower" if policy.quality_rule == "non_inferior" else "upper"
        problems.append(
            f"quality {c.diff:+.3f} vs incumbent, 95% CI [{c.diff_ci_low:+.3f}, {c.diff_ci_high:+.3f}]: "
            f"{end} end below -{policy.quality_tolerance:g}"
        )
    for v in c.slice_verdicts(policy):
        if v.verdict == WORSE or (v.verdict == TOO_FEW and policy.slice_undecided == "block"):
            problems.append(f"{v.describe(policy.max_slice_drop)}" + ("; slice_undecided: block" if v.verdict == TOO_FEW else ""))
    if policy.max_cost_per_1k_usd is not None and c.test.cost_per_1k_usd > policy.max_cost_per_1k_usd:
        problems.append(f"cost ${c.test.cost_per_1k_usd:.4f}/1k above ${policy.max_cost_per_1k_usd:g}")
    if policy.max_latency_p95_s is not None and c.test.latency_p95_s > policy.max_latency_p95_s:
        problems.append(f"p95 {c.test.latency_p95_s:.2f} s above {policy.max_latency_p95_s:g} s")
    if policy.max_error_rate is not None and (c.test.error_rate or 0.0) > policy.max_error_rate:
        problems.append(f"error rate {c.test.error_rate:.3f} above {policy.max_error_rate:g}")
    return problems


def warnings(c: Candidate, policy: SelectionPolicy) -> list[str]:
    """What the policy lets pass but the report must say: slices too few to tell (slice_undecided: warn)."""
    if policy.slice_undecided != "warn":
        return []
    return [f"warning: {v.describe(policy.max_slice_drop)}" for v in c.slice_verdicts(policy) if v.verdict == TOO_FEW]


def _preferred(accepted: Sequence[Candidate], prefer: str) -> Candidate:
    if prefer == "fastest":
        return min(accepted, key=lambda c: (c.test.latency_p95_s, c.test.cost_per_1k_usd, -c.test.quality))
    if prefer == "quality":
        return max(accepted, key=lambda c: (c.test.quality, -c.test.cost_per_1k_usd, -c.test.latency_p95_s))
    if prefer == "knee":
        def scaled(values: list[float], v: float) -> float:
            lo, hi = min(values), max(values)
            return 0.0 if hi == lo else (v - lo) / (hi - lo)

        qs = [c.test.quality for c in accepted]
        cs = [c.test.cost_per_1k_usd for c in accepted]
        ls = [c.test.latency_p95_s for c in accepted]
        return min(accepted, key=lambda c: ((1 - scaled(qs, c.test.quality)) ** 2 + scaled(cs, c.test.cost_per_1k_usd) ** 2
                                            + scaled(ls, c.test.latency_p95_s) ** 2, c.trial_id))
    return min(accepted, key=lambda c: (c.test.cost_per_1k_usd, -c.test.quality, c.test.latency_p95_s))


def _why(best: Candidate, candidates: Sequence[Candidate]) -> str:
    """The selected config's evidence in one sentence: against the incumbent, and against the
    other front configs on cost and latency."""
    t = best.test
    text = (f"quality {best.diff:+.3f} vs the incumbent on held-out test (95% CI [{best.diff_ci_low:+.3f}, "
            f"{best.diff_ci_high:+.3f}]), ${t.cost_per_1k_usd:.5f}/1k requests, p95 {t.latency_p95_s:.3f} s")
    others = [c for c in candidates if c.trial_id != best.trial_id]
    if others:
        cost = min(c.test.cost_per_1k_usd for c in others)
        p95 = min(c.test.latency_p95_s for c in others)
        text += (f"; the next cheapest front config costs ${cost:.5f}/1k"
                 f"{f' ({cost / t.cost_per_1k_usd:.1f}x)' if t.cost_per_1k_usd > 0 else ''}, the next fastest has p95 {p95:.3f} s")
    return text


def select_release(incumbent_test_quality: float, candidates: Sequence[Candidate], policy: SelectionPolicy | None = None) -> Selection:
    policy = policy or SelectionPolicy()
    verdicts, accepted = [], []
    for c in candidates:
        problems, warned = violations(c, policy), warnings(c, policy)
        verdicts.append({"trial_id": c.trial_id, "config": c.label, "accepted": not problems,
                         "why": "; ".join([*(problems or ["meets every constraint"]), *warned])})
        if not problems:
            accepted.append(c)
    rule = policy.describe()
    if accepted:
        best = _preferred(accepted, policy.prefer)
        for v in verdicts:
            if v["trial_id"] == best.trial_id:
                v["why"] += f"; selected ({policy.prefer})"
            elif v["accepted"]:
                v["why"] += f"; accepted, not preferred ({policy.prefer})"
        reason = (f"{len(accepted)} of {len(candidates)} front configs meet the policy on the held-out split; "
                  f"trial {best.trial_id} is preferred ({policy.prefer}): {best.label}. Why: {_why(best, candidates)}")
        return Selection(best.trial_id, policy.model_dump(), rule, reason, incumbent_test_quality, best.trial_id, verdicts)
    if not candidates:
        return Selection(None, policy.model_dump(), rule, "no front config could be evaluated on the held-out split: nothing to select",
                         incumbent_test_quality, None, verdicts)
    least_bad = min(candidates, key=lambda c: (len(violations(c, policy)), -c.test.quality, c.test.cost_per_1k_usd))
    risks = "; ".join(violations(least_bad, policy))
    reason = (f"no front config meets the policy. Least bad: trial {least_bad.trial_id} ({least_bad.label}); "
              f"its risks: {risks}. Widen the search, collect more held-out examples, or relax the policy knowingly.")
    return Selection(None, policy.model_dump(), rule, reason, incumbent_test_quality, least_bad.trial_id, verdicts)
