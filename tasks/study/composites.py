"""Composite candidates: cascades and routers built from what the search already measured.

A composite answers a request through configs the study evaluated on dev (its members), so it is
built with no new call: each member's per-example answers on dev (table `calls`) say what the
composite would have answered, at what cost and latency. Two kinds:

- cascade: a cheap config answers; a stronger one is called when the cheap answer is unsure. Unsure
  means, for every provider: the call failed or its answer did not parse (rule `unsure`); or two
  cheap configs disagree (rule `disagree`: the cheaper one answers when both agree). Where a call
  carries a confidence (a log-probability of its answer), rule `confidence` escalates below a
  threshold chosen on dev. Cost and latency are the sums of the calls made (sequential).
- router: one member answers each request, chosen from the request alone: by a declared slice
  whose value is an input (a slice that is the gold label is not known at request time: skipped),
  or by a small text classifier (`tasks.study.router`) predicting whether the cheap member will be
  right, cross-fitted on dev.

Choices (members, threshold) are made on dev, so a composite's dev quality is optimistic; like any
config it is confirmed on the held-out test split before it can be selected. The number of
composites is bounded (`MAX_CHEAP` cheap members, one composite per rule and member).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from offramp.tasks.feature.evaluate import bootstrap_interval
from offramp.tasks.feature.metrics import Metric, macro_f1_statistic
from offramp.tasks.search.pareto import Point, dominates
from offramp.util import content_hash
from offramp.warehouse.records import TrialMeasurement

MAX_CHEAP = 3  # cheap members tried per rule: composites stay few, whatever the size of the space
TOLERANCE = 0.01  # a threshold within this much quality of the best one on dev may be chosen for being cheaper


@dataclasses.dataclass(frozen=True)
class Answer:
    """One member's answer to one example, as its call recorded it."""

    score: float
    prediction: dict | None  # parsed; None: the call failed or its answer did not parse
    cost_usd: float  # what the call that produced the answer cost (a cached answer: its original cost)
    latency_s: float
    error: bool = False
    confidence: float | None = None  # log-probability of the answer, where the provider returns one

    @property
    def unsure(self) -> bool:
        return self.error or self.prediction is None


@dataclasses.dataclass(frozen=True)
class Member:
    """A config measured on the whole dev split: its trial, its objectives, its answers."""

    trial_id: int
    label: str
    quality: float
    cost_per_1k_usd: float
    latency_p95_s: float
    answers: dict[str, Answer]  # example_id -> answer


@dataclasses.dataclass(frozen=True)
class Composite:
    """What defines a composite: its kind, rule, members (dev trial ids) and the choices made on dev.

    cascade: `members` = (cheap..., fallback): the first cheap member answers unless escalated.
    router: `members` = the configs it routes to; `routes` maps a slice value to a member, or the
    learned rule routes to members[0] when the classifier's probability is >= `threshold`."""

    kind: str  # cascade | router
    rule: str  # unsure | disagree | confidence | slice | learned
    members: tuple[int, ...]
    labels: tuple[str, ...]  # the members' config labels, in the same order
    threshold: float | None = None
    slice_field: str | None = None  # the input field a slice router reads
    routes: tuple[tuple[str, int], ...] = ()  # slice value -> member
    router: dict | None = None  # the learned router's training data (tasks.study.router)

    def label(self) -> str:
        """What a person reads in a table: `cascade: A → B`, `router by slice: A | B`."""
        short = [x.split(" ")[0] for x in self.labels]
        if len(set(short)) < len(short):  # one model in two members: name them whole
            short = list(self.labels)
        if self.kind == "cascade":
            head = " + ".join(short[:-1])
            return f"cascade ({self.rule}): {head} → {short[-1]}"
        return f"router ({self.rule}): {' | '.join(short)}"

    def describe(self) -> str:
        """The rule in words, for the report."""
        if self.rule == "unsure":
            return f"{self.labels[0]} answers; {self.labels[-1]} when that call fails or its answer does not parse"
        if self.rule == "disagree":
            return f"{self.labels[0]} answers when {self.labels[1]} agrees; else {self.labels[-1]}"
        if self.rule == "confidence":
            return (f"{self.labels[0]} answers; {self.labels[-1]} when the answer is unsure or its log-probability "
                    f"< {self.threshold:.3f} (threshold chosen on dev)")
        if self.rule == "slice":
            routes = ", ".join(f"{v} → {self.labels[self.members.index(m)].split(' ')[0]}" for v, m in self.routes)
            return f"by {self.slice_field}: {routes}; any other value → {self.labels[-1].split(' ')[0]}"
        return (f"a text classifier (TF-IDF + logistic regression, cross-fitted on dev) sends a request to {self.labels[0]} "
                f"when it predicts that answer is right with probability >= {self.threshold:.2f}; else {self.labels[-1]}")

    def key(self) -> str:
        """The composite's identity (its `config_hash`)."""
        return content_hash(self.to_dict(), length=16, compact=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Composite:
        data = dict(data)
        data["members"] = tuple(data["members"])
        data["labels"] = tuple(data["labels"])
        data["routes"] = tuple((str(v), int(m)) for v, m in data.get("routes") or ())
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Routed:
    """One request through a composite: which branch answered, and what all its calls cost."""

    example_id: str
    branch: str  # the member label that answered, prefixed by how (`cheap`, `escalated`, `route`)
    member: int  # the member whose answer is final
    answer: Answer  # the final answer, with cost and latency summed over the calls made
    calls: int


# ---------------------------------------------------------------------------- the rules
def cascade_escalates(composite: Composite, cheap: Sequence[Answer]) -> bool:
    """Whether a cascade calls its fallback, given its cheap members' answers to one request."""
    first = cheap[0]
    if first.unsure:
        return True
    if composite.rule == "disagree":
        return cheap[1].unsure or cheap[1].prediction != first.prediction
    if composite.rule == "confidence":
        return first.confidence is None or first.confidence < (composite.threshold or 0.0)
    return False


def cascade_request(composite: Composite, example_id: str, cheap: Sequence[Answer], fallback: Answer | None) -> Routed:
    """One request through a cascade: its cheap calls, then the fallback if escalated (sequential:
    cost and latency add up). `fallback` is needed only when the request escalates."""
    escalated = cascade_escalates(composite, cheap)
    calls = list(cheap) + ([fallback] if escalated else [])
    if escalated and fallback is None:
        raise ValueError(f"example {example_id}: escalated without the fallback's answer")
    final = fallback if escalated else cheap[0]
    member = composite.members[-1] if escalated else composite.members[0]
    summed = dataclasses.replace(final, cost_usd=sum(a.cost_usd for a in calls), latency_s=sum(a.latency_s for a in calls))
    branch = f"escalated: {composite.labels[-1]}" if escalated else f"cheap: {composite.labels[0]}"
    return Routed(example_id, branch, member, summed, len(calls))


def routed_member(composite: Composite, slice_value: str | None, probability: float | None) -> int:
    """The member a router sends one request to."""
    if composite.rule == "slice":
        return dict(composite.routes).get(slice_value or "", composite.members[-1])
    return composite.members[0] if probability is not None and probability >= (composite.threshold or 0.0) else composite.members[-1]


def router_request(composite: Composite, example_id: str, member: int, answer: Answer) -> Routed:
    label = composite.labels[composite.members.index(member)]
    return Routed(example_id, f"route: {label}", member, answer, 1)


def branch_shares(routed: Sequence[Routed]) -> dict[str, float]:
    """How often each branch answered."""
    n = len(routed) or 1
    counts: dict[str, int] = {}
    for r in routed:
        counts[r.branch] = counts.get(r.branch, 0) + 1
    return {branch: count / n for branch, count in sorted(counts.items())}


# ------------------------------------------------------------------------- measurement
def measure(metric: Metric, golds: Sequence[Any], routed: Sequence[Routed], *, seed: int = 0) -> TrialMeasurement:
    """A composite's measurement from its requests, as `evaluate.aggregate` measures a config:
    quality with its bootstrap interval; cost per 1k and latency from the calls each request made."""
    n = len(routed)
    answered = [r for r in routed if not r.answer.error]
    scores = [r.answer.score for r in routed]
    preds = [None if r.answer.prediction is None else r.answer.prediction.get(metric.field) for r in routed]
    if not answered:
        return TrialMeasurement.failed(n, "failed", "no request of the composite got an answer")
    statistic = macro_f1_statistic(golds, preds, metric.labels or ()) if metric.corpus_level else None
    low, high = bootstrap_interval(scores, seed=seed, statistic=statistic)
    latencies = np.array([r.answer.latency_s for r in answered], dtype=float)
    return TrialMeasurement(
        status="completed", n_examples=n, quality=metric.aggregate(scores, golds, preds), quality_ci_low=low, quality_ci_high=high,
        cost_per_1k_usd=1000.0 * float(np.mean([r.answer.cost_usd for r in answered])),
        latency_p50_s=float(np.percentile(latencies, 50)), latency_p95_s=float(np.percentile(latencies, 95)),
        error_rate=(n - len(answered)) / n,
        parse_failure_rate=sum(1 for r in answered if r.answer.prediction is None) / n,
    )


def simulate(composite: Composite, members: dict[int, Member], example_ids: Sequence[str], *,
             slices: dict[str, str] | None = None, probabilities: dict[str, float] | None = None) -> list[Routed]:
    """The composite on dev, from its members' recorded answers (no call). `slices`: example ->
    value of the slice router's field; `probabilities`: example -> the learned router's
    cross-fitted probability that the cheap member is right."""
    out = []
    for eid in example_ids:
        if composite.kind == "cascade":
            cheap = [members[m].answers[eid] for m in composite.members[:-1]]
            out.append(cascade_request(composite, eid, cheap, members[composite.members[-1]].answers[eid]))
        else:
            member = routed_member(composite, (slices or {}).get(eid), (probabilities or {}).get(eid))
            out.append(router_request(composite, eid, member, members[member].answers[eid]))
    return out


def _quality(metric: Metric, golds: Sequence[Any], routed: Sequence[Routed]) -> float:
    preds = [None if r.answer.prediction is None else r.answer.prediction.get(metric.field) for r in routed]
    return metric.aggregate([r.answer.score for r in routed], golds, preds)


def best_threshold(candidates: Sequence[float], evaluate: Callable[[float], tuple[float, float]],
                   tolerance: float = TOLERANCE) -> float:
    """The threshold chosen on dev: of those within `tolerance` of the best quality, the cheapest
    (then the lowest). `evaluate(t)` -> (quality, cost)."""
    scored = [(t, *evaluate(t)) for t in sorted(set(candidates))]
    best = max(q for _, q, _ in scored)
    return min(((c, t) for t, q, c in scored if q >= best - tolerance))[1]


def _mean_cost(routed: Sequence[Routed]) -> float:
    return float(np.mean([r.answer.cost_usd for r in routed])) if routed else 0.0


# ---------------------------------------------------------------------------- building
@dataclasses.dataclass(frozen=True)
class Built:
    """A composite chosen on dev, with what it did there."""

    composite: Composite
    routed: list[Routed]
    measurement: TrialMeasurement


def _ordered(members: Sequence[Member]) -> tuple[Member, list[Member]]:
    """(the strongest member, the cheaper members not dominated by another member, cheapest first)."""
    strong = max(members, key=lambda m: (m.quality, -m.cost_per_1k_usd, -m.latency_p95_s, -m.trial_id))
    points = {m.trial_id: Point(m.trial_id, m.quality, m.cost_per_1k_usd, m.latency_p95_s) for m in members}
    front = [m for m in members if not any(dominates(points[o.trial_id], points[m.trial_id]) for o in members)]
    cheap = sorted((m for m in front if m.cost_per_1k_usd < strong.cost_per_1k_usd), key=lambda m: (m.cost_per_1k_usd, m.trial_id))
    return strong, cheap[:MAX_CHEAP]


def propose(
    metric: Metric, members: Sequence[Member], golds: dict[str, Any], *, seed: int = 0,
    slices: dict[str, dict[str, str]] | None = None, learned: Callable[[Member, Member], tuple[dict, dict[str, float]] | None] | None = None,
) -> list[Built]:
    """The composites worth confirming, built from members measured on every dev example.

    `golds`: example_id -> gold value of the metric's field (dev). `slices`: field -> (example_id ->
    value) for the slices usable at request time. `learned(cheap, strong)`: the learned router's
    (definition, cross-fitted probability per example), or None when it cannot be trained.
    Returns only composites no member and no other composite dominates on dev."""
    ids = sorted(golds)
    usable = [m for m in members if set(ids) <= set(m.answers)]
    if len(usable) < 2:
        return []
    by_id = {m.trial_id: m for m in usable}
    gold_list = [golds[e] for e in ids]
    strong, cheap = _ordered(usable)
    built: list[Built] = []

    def add(composite: Composite, **kwargs: Any) -> None:
        routed = simulate(composite, by_id, ids, **kwargs)
        if len({r.member for r in routed}) == 1 and all(r.calls == 1 for r in routed):
            return  # every request answered by one member alone: that member, not a composite
        built.append(Built(composite, routed, measure(metric, gold_list, routed, seed=seed)))

    def cascade(rule: str, chain: Sequence[Member], threshold: float | None = None) -> Composite:
        return Composite("cascade", rule, tuple(m.trial_id for m in chain), tuple(m.label for m in chain), threshold=threshold)

    for c in cheap:
        answers = [c.answers[e] for e in ids]
        if any(a.unsure for a in answers):
            add(cascade("unsure", [c, strong]))
        if all(a.confidence is not None for a in answers if not a.unsure):
            def confidence_at(t: float, c: Member = c) -> tuple[float, float]:
                routed = simulate(cascade("confidence", [c, strong], t), by_id, ids)
                return _quality(metric, gold_list, routed), _mean_cost(routed)
            levels = [a.confidence for a in answers if a.confidence is not None]
            if levels:
                add(cascade("confidence", [c, strong], best_threshold([*levels, max(levels) + 1.0], confidence_at)))
    if len(cheap) >= 2:
        add(cascade("disagree", [cheap[0], cheap[1], strong]))
    for field, values in (slices or {}).items():
        chosen = _slice_routes(metric, [*cheap, strong], values, ids, golds)
        if len({m for _, m in chosen}) > 1:
            pool = [*cheap, strong]
            add(Composite("router", "slice", tuple(m.trial_id for m in pool), tuple(m.label for m in pool), slice_field=field,
                          routes=tuple(chosen)), slices=values)
    if learned is not None and cheap:
        trained = learned(cheap[0], strong)
        if trained is not None:
            definition, probabilities = trained
            pool = [cheap[0], strong]

            def routed_at(t: float) -> tuple[float, float]:
                comp = Composite("router", "learned", tuple(m.trial_id for m in pool), tuple(m.label for m in pool), threshold=t)
                routed = simulate(comp, by_id, ids, probabilities=probabilities)
                return _quality(metric, gold_list, routed), _mean_cost(routed)

            t = best_threshold([*probabilities.values(), 1.01], routed_at)
            add(Composite("router", "learned", tuple(m.trial_id for m in pool), tuple(m.label for m in pool), threshold=t,
                          router=definition), probabilities=probabilities)
    return undominated(built, usable)


def _slice_routes(metric: Metric, pool: Sequence[Member], values: dict[str, str], ids: Sequence[str],
                  golds: dict[str, Any]) -> list[tuple[str, int]]:
    """Per slice value, the member with the best dev quality on it (ties: the cheaper)."""
    routes = []
    for value in sorted({values[e] for e in ids}):
        sub = [e for e in ids if values[e] == value]

        def quality(m: Member, sub: list[str] = sub) -> float:
            preds = [None if m.answers[e].prediction is None else m.answers[e].prediction.get(metric.field) for e in sub]
            return metric.aggregate([m.answers[e].score for e in sub], [golds[e] for e in sub], preds)

        best = max(pool, key=lambda m: (quality(m), -m.cost_per_1k_usd, -m.trial_id))
        routes.append((value, best.trial_id))
    return routes


def undominated(built: Sequence[Built], members: Sequence[Member]) -> list[Built]:
    """The composites no member and no other composite dominates (and no repeats of one definition)."""
    points = [Point(-1 - i, b.measurement.quality, b.measurement.cost_per_1k_usd, b.measurement.latency_p95_s)
              for i, b in enumerate(built) if b.measurement.status == "completed"]
    points += [Point(m.trial_id, m.quality, m.cost_per_1k_usd, m.latency_p95_s) for m in members]
    out, seen = [], set()
    for i, b in enumerate(built):
        if b.measurement.status != "completed" or b.composite.key() in seen:
            continue
        me = next(p for p in points if p.key == -1 - i)
        if not any(dominates(p, me) for p in points if p is not me):
            out.append(b)
            seen.add(b.composite.key())
    return out


def answer_of(score: float | None, prediction: str | dict | None, cost: float | None, latency: float | None,
              error: str | None, confidence: float | None = None) -> Answer:
    """An `Answer` from a call's columns (prediction as JSON text or parsed)."""
    parsed = json.loads(prediction) if isinstance(prediction, str) else prediction
    return Answer(score=float(score or 0.0), prediction=parsed, cost_usd=float(cost or 0.0), latency_s=float(latency or 0.0),
                  error=error is not None, confidence=confidence)
