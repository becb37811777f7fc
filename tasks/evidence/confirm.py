"""Which front configs the held-out test split confirms: only those that can still win.

Confirming a front config costs a test split of calls. Two kinds cannot change the decision, and are
not confirmed (the report names them and why):
- under `quality_rule: non_inferior`, a config whose dev quality, even at the top of its 95% interval,
  is below the incumbent's dev quality minus the tolerance: it cannot show non-inferiority;
- under `prefer: cheapest`, once a confirmed config is accepted, every config whose dev cost is above
  the accepted one's test cost by more than COST_SLACK (the cost of a config moves between splits
  only with its examples' lengths): it could be accepted too, never preferred.
So the front is confirmed cheapest first, and the confirmation stops when it is settled. Every naive
swap (the incumbent's prompt and settings on a candidate model) is confirmed afterwards if it was
not yet, whether or not it can win: it answers "would just swapping the model do?" and is a
reference, judged under the policy (`reference_verdict`) and never selected. Other rules
(`not_worse`) and preferences (`fastest`: latency is noisy; `quality`, `knee`: need every candidate)
confirm the whole front, as before. bench/search_efficiency.py measures what this saves and whether
the decision changes (the `can_win` rows of its decision table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from offramp.tasks.evidence.policy import Candidate, Selection, SelectionPolicy, violations
from offramp.warehouse.records import TrialMeasurement

COST_SLACK = 0.05


def confirmation_order(
    front: Mapping[int, TrialMeasurement], incumbent_dev: TrialMeasurement | None, policy: SelectionPolicy,
) -> tuple[list[int], dict[int, str]]:
    """(the front trials to confirm, cheapest on dev first; those that cannot be accepted, with why)."""
    order = sorted(front, key=lambda t: (front[t].cost_per_1k_usd or 0.0, -(front[t].quality or 0.0), t))
    skipped: dict[int, str] = {}
    if policy.quality_rule == "non_inferior" and incumbent_dev is not None and incumbent_dev.quality is not None:
        floor = incumbent_dev.quality - policy.quality_tolerance
        for t in order:
            high = front[t].quality_ci_high
            if high is not None and high < floor:
                skipped[t] = (f"not confirmed on test: its dev quality {front[t].quality:.3f} (95% CI up to {high:.3f}) is below the "
                              f"incumbent's dev quality {incumbent_dev.quality:.3f} minus the tolerance {policy.quality_tolerance:g}, "
                              "so it cannot be shown non-inferior")
    return [t for t in order if t not in skipped], skipped


def settled(chosen_test: TrialMeasurement | None, left: Sequence[TrialMeasurement], policy: SelectionPolicy) -> bool:
    """Whether no config left to confirm (`left`: their dev measurements) can be preferred over the
    selected one (`chosen_test`: its test measurement; None: nothing accepted yet). `prefer: cheapest` only."""
    if policy.prefer != "cheapest" or chosen_test is None or chosen_test.cost_per_1k_usd is None:
        return False
    return all((m.cost_per_1k_usd or 0.0) > chosen_test.cost_per_1k_usd * (1 + COST_SLACK) for m in left)


def chosen(selection: Selection, candidates: Sequence[Candidate]) -> TrialMeasurement | None:
    """The selected candidate's test measurement (None: nothing selected)."""
    return next((c.test for c in candidates if c.trial_id == selection.trial_id), None)


REFERENCE = "a naive swap confirmed as a reference, to answer 'would just swapping the model do?'; never selected"


def reference_verdict(c: Candidate, policy: SelectionPolicy) -> dict:
    """A naive swap's verdict under the policy, marked as a reference (not a selection candidate)."""
    problems = violations(c, policy)
    return {"trial_id": c.trial_id, "config": c.label, "accepted": not problems, "reference": True,
            "why": ("; ".join(problems) if problems else "would meet every constraint") + f"; {REFERENCE}"}
