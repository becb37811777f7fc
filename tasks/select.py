"""Choosing the config to ship among the front.

Rule (the foundation's documented default): on the held-out test split, take the front configs
whose quality is not below the incumbent's (point estimates), and among them the cheapest per
1,000 requests (ties: higher quality, then lower p95 latency). If none qualifies, nothing is
selected, and the study recommends the highest-quality front config, stating by how much it
falls short, so a person can decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

RULE = "cheapest front config (cost per 1k requests) whose test quality >= the incumbent's test quality"


@dataclass(frozen=True)
class Candidate:
    trial_id: int
    label: str
    test_quality: float
    cost_per_1k_usd: float
    latency_p95_s: float


@dataclass(frozen=True)
class Selection:
    trial_id: int | None
    rule: str
    reason: str
    incumbent_test_quality: float
    recommended_trial_id: int | None = None
    verdicts: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def select_release(incumbent_test_quality: float, candidates: Sequence[Candidate]) -> Selection:
    verdicts = []
    passing = []
    for c in candidates:
        accepted = c.test_quality >= incumbent_test_quality
        delta = c.test_quality - incumbent_test_quality
        why = (
            f"test quality {c.test_quality:.3f} {'>=' if accepted else '<'} incumbent {incumbent_test_quality:.3f} "
            f"({delta:+.3f})"
        )
        verdicts.append({"trial_id": c.trial_id, "config": c.label, "accepted": accepted, "why": why})
        if accepted:
            passing.append(c)
    if passing:
        best = min(passing, key=lambda c: (c.cost_per_1k_usd, -c.test_quality, c.latency_p95_s))
        reason = (
            f"{len(passing)} of {len(candidates)} front configs keep the incumbent's quality on the test split; "
            f"trial {best.trial_id} is the cheapest of them (${best.cost_per_1k_usd:.4f} per 1k requests)"
        )
        for v in verdicts:
            if v["trial_id"] == best.trial_id:
                v["why"] += "; selected: cheapest of those that qualify"
            elif v["accepted"]:
                v["why"] += "; qualifies but costs more"
        return Selection(best.trial_id, RULE, reason, incumbent_test_quality, best.trial_id, verdicts)
    if not candidates:
        return Selection(None, RULE, "no candidate completed: nothing to select", incumbent_test_quality, None, verdicts)
    best = max(candidates, key=lambda c: (c.test_quality, -c.cost_per_1k_usd))
    reason = (
        f"no front config reaches the incumbent's test quality {incumbent_test_quality:.3f}. Least bad: trial "
        f"{best.trial_id} ({best.label}) at {best.test_quality:.3f} ({best.test_quality - incumbent_test_quality:+.3f}); "
        "shipping it is a quality regression: widen the search space or accept the loss explicitly"
    )
    return Selection(None, RULE, reason, incumbent_test_quality, best.trial_id, verdicts)
