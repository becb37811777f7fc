"""A released composite (cascade, router): it answers through its members' released configs, with
the rule the study chose on dev. `load_release` returns one when the release file pins a composite.

    route = load_release("releases/x.json")
    route(message="...")   # the cheap member answers; the strong one when the rule escalates
    route.last_branch      # which branch answered the last request
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from offramp.tasks.feature.prompts import render_input
from offramp.tasks.feature.spec import Example, FeatureSpec
from offramp.tasks.study import router
from offramp.tasks.study.composites import Answer, Composite, cascade_escalates, routed_member
from offramp.warehouse import Warehouse
from offramp.warehouse.composites import composite_definition

log = logging.getLogger(__name__)


def composite_entry(wh: Warehouse, study_id: str, trial_id: int, members: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A release entry for a composite: its definition and each member's own entry."""
    row = composite_definition(wh, study_id, trial_id)
    if row is None:
        raise ValueError(f"trial {trial_id} of {study_id} is a composite with no definition in table `composites`")
    first = next(iter(members.values()))
    return {"model": row["label"], "strategy": f"{row['kind']}:{row['rule']}", "description": row["description"],
            "composite": row["definition"], "members": {str(m): e for m, e in members.items()}, "spec": first["spec"],
            "program_hash": None}


class ReleasedComposite:
    """A released cascade or router, ready to call: `composite(**inputs) -> outputs dict` (None if unparseable)."""

    def __init__(self, entry: dict[str, Any], make_member: Callable[[dict[str, Any]], Callable[..., dict | None]]) -> None:
        self.entry = entry
        self.spec = FeatureSpec.model_validate(entry["spec"])
        self.composite = Composite.from_dict(entry["composite"])
        self.members = {int(m): make_member(e) for m, e in entry["members"].items()}
        self._router = router.fit(self.composite.router) if self.composite.rule == "learned" else None
        self.last_branch: str | None = None

    def _answer(self, member: int, inputs: dict[str, Any]) -> Answer:
        """A cheap member's answer; a failed call is an unsure answer (the cascade escalates)."""
        try:
            prediction = self.members[member](**inputs)
            return Answer(score=0.0, prediction=prediction, cost_usd=0.0, latency_s=0.0,
                          confidence=getattr(self.members[member], "last_confidence", None))
        except Exception as exc:  # noqa: BLE001 - any provider error: the cascade's rule is to escalate on it
            log.warning("composite member %s failed (%s: %s); escalating", member, type(exc).__name__, exc)
            return Answer(score=0.0, prediction=None, cost_usd=0.0, latency_s=0.0, error=True)

    def __call__(self, **inputs: Any) -> dict | None:
        missing = [f.name for f in self.spec.signature.inputs if f.name not in inputs]
        if missing:
            raise TypeError(f"missing input field(s) {missing} for feature {self.spec.name}")
        c = self.composite
        if c.kind == "cascade":
            cheap = [self._answer(m, inputs) for m in c.members[:-1]]
            if not cascade_escalates(c, cheap):
                self.last_branch = f"cheap: {c.labels[0]}"
                return cheap[0].prediction
            self.last_branch = f"escalated: {c.labels[-1]}"
            return self.members[c.members[-1]](**inputs)
        if c.rule == "slice":
            member = routed_member(c, str(inputs.get(c.slice_field or "")), None)
        else:
            text = render_input(self.spec, Example(id="input", inputs=inputs, outputs={}))
            member = routed_member(c, None, router.probabilities(self._router, [text])[0])
        self.last_branch = f"route: {c.labels[c.members.index(member)]}"
        return self.members[member](**inputs)
