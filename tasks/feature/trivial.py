"""The trivial answer of a feature and its quality: the floor a config must beat to enter the front.

A config that scores no better than answering every input the same way (cheap and fast, because
it says almost nothing) must not reach the front: it would be paid for on the held-out split and
shown as a trade-off when it is none. The trivial answer is chosen on the train split only, then
scored on dev with the feature's own metric (per-example score and trial aggregate, so `macro_f1`
is the macro-F1 of a constant answer):

- `label` target: the most frequent train label (ties: the first of `signature.outputs.labels`);
- `number`, `json`, `text` targets: the most common train answer (ties: the first seen) or the
  empty answer (`{}` for json, `""` for text; none for numbers), whichever scores higher on train;
- other output fields of the signature: their most common train value (a user metric may read them).
With no train examples there is no trivial answer: the floor is 0 (nothing scores below 0, so only a
config that scores 0 everywhere stays off the front). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from offramp.tasks.feature.metrics import Metric
from offramp.tasks.feature.spec import Example, FeatureSpec

EMPTY = {"json": {}, "text": ""}


@dataclass(frozen=True)
class Trivial:
    """The trivial answer (None: none could be drawn), its dev quality (the floor) and how it was chosen."""

    answer: dict[str, Any] | None
    quality: float
    rule: str

    def describe(self) -> str:
        if self.answer is None:
            return f"trivial baseline: quality {self.quality:.3f} ({self.rule})"
        shown = json.dumps(self.answer, sort_keys=True, default=str)
        return f"trivial baseline: always answering {shown[:80]} scores {self.quality:.3f} on dev ({self.rule})"

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "quality": self.quality, "rule": self.rule}


def _most_common(values: Sequence[Any], order: Sequence[Any] | None = None) -> Any:
    keyed = Counter(json.dumps(v, sort_keys=True, default=str) for v in values)
    top = max(keyed.values())
    first = [v for v in (order if order is not None else values) if keyed.get(json.dumps(v, sort_keys=True, default=str)) == top]
    return first[0]


def quality_of(metric: Metric, answer: dict[str, Any], examples: Sequence[Example]) -> float:
    """The metric's aggregate when every example is answered `answer`."""
    if not examples:
        return 0.0
    scores = [metric.score(e.outputs, dict(answer)) for e in examples]
    golds = [e.outputs.get(metric.field) for e in examples]
    return metric.aggregate(scores, golds, [answer.get(metric.field)] * len(examples))


def trivial_baseline(spec: FeatureSpec, metric: Metric, train: Sequence[Example], dev: Sequence[Example]) -> Trivial:
    """The feature's trivial answer (chosen on train) and its quality on dev (see the module docstring)."""
    if metric.judge is not None:  # scored by a judge, with calls: a trivial answer's score is not known without paying
        return Trivial(None, 0.0, "a judged feature (metric.judge): a trivial answer's score would need judge calls, "
                       "so the floor is 0")
    if not train or not dev:
        return Trivial(None, 0.0, "no train examples to draw a trivial answer from: the floor is 0" if not train
                       else "no dev examples: the floor is 0")
    target = spec.target
    base = {f.name: _most_common([e.outputs.get(f.name) for e in train]) for f in spec.signature.outputs}
    if target.type == "label":
        base[target.name] = _most_common([e.outputs.get(target.name) for e in train], target.labels)
        rule = f"the most frequent train label, {base[target.name]!r}"
        answer = base
    else:
        options = [(base, f"the most common train answer of `{target.name}`")]
        if target.type in EMPTY:
            options.append(({**base, target.name: EMPTY[target.type]}, f"the empty answer of `{target.name}`"))
        answer, rule = max(options, key=lambda o: quality_of(metric, o[0], train))  # chosen on train; ties: the first
    return Trivial(answer, quality_of(metric, answer, dev), rule + f", under {metric.name}")
