"""Composite candidates built from per-example outcomes (tasks/study/composites.py, router.py):
which are built, the thresholds chosen on dev, branch shares, summed cost and latency."""

from __future__ import annotations

import pytest

from offramp.tasks.feature.metrics import Metric
from offramp.tasks.feature.spec import load_feature
from offramp.tasks.study import router
from offramp.tasks.study.composite_trials import request_time_slices
from offramp.tasks.study.composites import Answer, Composite, Member, branch_shares, propose, simulate
from tests.helpers import make_feature

METRIC = Metric(name="label_accuracy", field="label", score_fn=lambda gold, pred: float(gold["label"] == pred.get("label")))
IDS = [f"e{i:02d}" for i in range(20)]
GOLDS = {e: ("alpha" if i % 2 else "beta") for i, e in enumerate(IDS)}


def answer(e: str, right: bool | None, cost: float, latency: float, confidence: float | None = None) -> Answer:
    """right None: the answer did not parse."""
    if right is None:
        return Answer(score=0.0, prediction=None, cost_usd=cost, latency_s=latency)
    label = GOLDS[e] if right else "gamma"
    return Answer(score=float(right), prediction={"label": label}, cost_usd=cost, latency_s=latency, confidence=confidence)


def member(trial_id: int, answers: dict[str, Answer]) -> Member:
    scores = [a.score for a in answers.values()]
    lat = sorted(a.latency_s for a in answers.values())
    return Member(trial_id, f"fake/m{trial_id} incumbent k=0 text", sum(scores) / len(scores),
                  1000 * sum(a.cost_usd for a in answers.values()) / len(answers), lat[int(0.95 * (len(lat) - 1))], answers)


STRONG = member(9, {e: answer(e, True, 1e-5, 1.0) for e in IDS})


def test_unsure_cascade_escalates_what_did_not_parse_and_sums_cost_and_latency():
    cheap = member(1, {e: answer(e, True if i < 10 else None, 1e-6, 0.1) for i, e in enumerate(IDS)})
    built = propose(METRIC, [cheap, STRONG], GOLDS)
    [b] = [b for b in built if b.composite.rule == "unsure"]
    assert b.composite.kind == "cascade" and b.composite.members == (1, 9)
    assert b.composite.label() == "cascade (unsure): fake/m1 → fake/m9"
    assert branch_shares(b.routed) == {"cheap: " + cheap.label: 0.5, "escalated: " + STRONG.label: 0.5}
    m = b.measurement
    assert m.quality == 1.0 and m.parse_failure_rate == 0.0
    assert m.cost_per_1k_usd == pytest.approx(1000 * (1e-6 + 0.5 * 1e-5))  # the cheap call always, the strong one half the time
    assert m.latency_p95_s == pytest.approx(1.1) and m.latency_p50_s == pytest.approx(0.6)  # sequential: 0.1 (+ 1.0)
    assert sorted(r.calls for r in b.routed) == [1] * 10 + [2] * 10


def test_no_cascade_when_the_cheap_config_is_never_unsure():
    cheap = member(1, {e: answer(e, i < 10, 1e-6, 0.1) for i, e in enumerate(IDS)})  # wrong, but always parsed
    assert [b for b in propose(METRIC, [cheap, STRONG], GOLDS) if b.composite.kind == "cascade"] == []


def test_confidence_threshold_is_chosen_on_dev():
    # parsed everywhere; wrong answers come with a low log-probability
    cheap = member(1, {e: answer(e, i < 14, 1e-6, 0.1, confidence=-0.05 if i < 14 else -2.0 - i / 10) for i, e in enumerate(IDS)})
    [b] = [b for b in propose(METRIC, [cheap, STRONG], GOLDS) if b.composite.rule == "confidence"]
    assert -2.0 < b.composite.threshold <= -0.05  # escalates exactly the unsure six
    assert b.measurement.quality == 1.0
    assert branch_shares(b.routed)["escalated: " + STRONG.label] == pytest.approx(0.3)
    higher = simulate(Composite("cascade", "confidence", (1, 9), (cheap.label, STRONG.label), threshold=0.0), {1: cheap, 9: STRONG}, IDS)
    assert branch_shares(higher)["escalated: " + STRONG.label] == 1.0  # a threshold above every answer escalates all


def test_disagreement_of_two_cheap_configs_escalates():
    a = member(1, {e: answer(e, i < 15, 1e-6, 0.1) for i, e in enumerate(IDS)})
    b = member(2, {e: answer(e, i < 12 or i >= 15, 2e-6, 0.1) for i, e in enumerate(IDS)})  # wrong on 12-14 where a is right
    [d] = [x for x in propose(METRIC, [a, b, STRONG], GOLDS) if x.composite.rule == "disagree"]
    assert d.composite.members == (1, 2, 9)
    assert d.measurement.quality == 1.0  # escalated where they disagree: every wrong answer of a
    assert branch_shares(d.routed) == {"cheap: " + a.label: 0.6, "escalated: " + STRONG.label: 0.4}  # they agree on 0-11
    assert d.measurement.cost_per_1k_usd == pytest.approx(1000 * (3e-6 + 0.4 * 1e-5))


def test_slice_router_routes_each_slice_to_its_best_member():
    values = {e: ("short" if i < 10 else "long") for i, e in enumerate(IDS)}
    cheap = member(1, {e: answer(e, values[e] == "short", 1e-6, 0.1) for e in IDS})  # right on short requests only
    [r] = [b for b in propose(METRIC, [cheap, STRONG], GOLDS, slices={"kind": values}) if b.composite.rule == "slice"]
    assert dict(r.composite.routes) == {"short": 1, "long": 9}
    assert r.measurement.quality == 1.0 and r.measurement.cost_per_1k_usd == pytest.approx(1000 * (0.5e-6 + 0.5e-5))
    assert branch_shares(r.routed) == {"route: " + cheap.label: 0.5, "route: " + STRONG.label: 0.5}


def test_slices_usable_at_request_time_are_inputs_not_the_gold_label(tmp_path):
    root = make_feature(tmp_path / "f", extra={
        "signature": {"inputs": [{"name": "text"}, {"name": "group"}], "outputs": [{"name": "label", "type": "label", "labels": ["alpha", "beta", "gamma"]}]},
        "data": {"files": [{"path": "data.csv"}], "id_column": "id", "columns": {"text": "text", "group": "group", "label": "label"},
                 "slices": ["group", "label"]},
    })
    feature = load_feature(root / "feature.yaml")
    usable = request_time_slices(feature.spec, feature.examples)
    assert list(usable) == ["group"] and set(usable["group"].values()) == {"g1", "g2"}
    plain = load_feature(make_feature(tmp_path / "g") / "feature.yaml")  # `group` is a slice column, not an input
    assert request_time_slices(plain.spec, plain.examples) == {}


def test_learned_router_is_cross_fitted_and_sends_easy_requests_to_the_cheap_config():
    ids = [f"e{i:02d}" for i in range(40)]
    golds = {e: "alpha" for e in ids}
    easy = {e: i % 2 == 0 for i, e in enumerate(ids)}
    texts = {e: ("short easy question about apples" if easy[e] else "long tricky complaint regarding invoices") + f" {i}"
             for i, e in enumerate(ids)}

    def ans(e: str, right: bool, cost: float) -> Answer:
        return Answer(score=float(right), prediction={"label": "alpha" if right else "beta"}, cost_usd=cost, latency_s=0.1)

    cheap = Member(1, "fake/cheap x", 0.5, 1e-3, 0.1, {e: ans(e, easy[e], 1e-6) for e in ids})
    strong = Member(9, "fake/strong x", 1.0, 1e-2, 0.1, {e: ans(e, True, 1e-5) for e in ids})
    seen: dict = {}

    def learned(c: Member, s: Member):
        y = router.cheap_is_enough([c.answers[e].score for e in ids], [s.answers[e].score for e in ids])
        assert router.trainable(y)
        probabilities = router.cross_fitted([texts[e] for e in ids], y, seed=0)
        seen["p"] = probabilities
        return router.fit_definition([texts[e] for e in ids], y, 0), dict(zip(ids, probabilities))

    [r] = [b for b in propose(METRIC, [cheap, strong], golds, learned=learned) if b.composite.rule == "learned"]
    assert r.measurement.quality == 1.0
    assert r.measurement.cost_per_1k_usd < strong.cost_per_1k_usd / 1.5  # most easy requests go to the cheap config
    assert len(seen["p"]) == 40 and min(seen["p"]) > 0.0 and max(seen["p"]) < 1.0
    new = router.predict(r.composite.router, ["short easy question about apples 99", "long tricky complaint regarding invoices 98"])
    assert new[0] >= r.composite.threshold > new[1]
    assert not router.trainable([1] * 40)  # nothing to learn when the cheap config is always enough


def test_a_composite_round_trips_through_its_stored_definition():
    c = Composite("router", "slice", (1, 9), ("a x", "b y"), slice_field="kind", routes=(("short", 1), ("long", 9)))
    assert Composite.from_dict(c.to_dict()) == c and Composite.from_dict(c.to_dict()).key() == c.key()


def test_a_router_that_sends_everything_to_one_member_is_not_a_composite():
    cheap = member(1, {e: answer(e, i % 2 == 0, 1e-6, 0.1) for i, e in enumerate(IDS)})
    flat = {e: 0.5 for e in IDS}  # a classifier that learned nothing: one probability for every request
    built = propose(METRIC, [cheap, STRONG], GOLDS, learned=lambda c, s: ({"texts": [], "labels": [], "seed": 0}, flat))
    assert [b for b in built if b.composite.kind == "router"] == []
