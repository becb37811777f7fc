from __future__ import annotations

import random

import numpy as np
import pytest

from offramp.search_spaces.schema import Config, Settings
from offramp.tasks.feature.evaluate import bootstrap_interval, evaluate_config
from offramp.tasks.feature.metrics import build_metric, json_field_f1, macro_f1
from offramp.tasks.feature.prompts import parse_answer
from offramp.tasks.feature.spec import load_feature, split_examples
from offramp.tasks.gateway.llm import Gateway
from offramp.tasks.gateway.prices import PriceBook
from offramp.tasks.search.pareto import Point, dominates, pareto_front
from offramp.warehouse import Warehouse
from tests import fake_provider as fp
from tests.helpers import make_feature, oracle


def test_macro_f1_known_case():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", None]
    # a: tp1 fp0 fn1 -> 2/3 ; b: tp2 fp1 fn0 -> 4/5 ; c: tp0 -> 0
    assert macro_f1(gold, pred, ["a", "b", "c"]) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)


def test_json_field_f1_known_cases():
    assert json_field_f1({"a": 1, "b": "x"}, {"a": 1, "b": "x"}) == 1.0
    assert json_field_f1({"a": 1, "b": "x"}, {"a": 1}) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert json_field_f1({"a": 1}, None) == 0.0
    assert json_field_f1({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == pytest.approx(0.5)


def test_bootstrap_interval_contains_mean_and_narrows_with_n():
    rng = random.Random(0)
    small = [float(rng.random() < 0.7) for _ in range(30)]
    large = [float(rng.random() < 0.7) for _ in range(3000)]
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s <= np.mean(small) <= hi_s and lo_l <= np.mean(large) <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5
    # normal approximation for a proportion: half-width ~ 1.96 sqrt(p(1-p)/n)
    p = np.mean(large)
    assert (hi_l - lo_l) / 2 == pytest.approx(1.96 * np.sqrt(p * (1 - p) / len(large)), rel=0.15)


def test_two_features_with_a_scoring_py_each_keep_their_own_metric(tmp_path):
    """Both built in one process (a `serve` running two features' studies): each scores with
    the function in its own folder. A bare-name import gave the second feature the first's."""
    first = make_feature(tmp_path / "first", extra={"metric": {"function": "scoring:score"}})
    second = make_feature(tmp_path / "second", extra={"metric": {"function": "scoring:score"}})
    (first / "scoring.py").write_text("def score(gold, prediction):\n    return 0.25\n")
    (second / "scoring.py").write_text("def score(gold, prediction):\n    return 0.75\n")
    metrics = [build_metric(load_feature(root)) for root in (first, second)]
    gold, prediction = {"label": "alpha"}, {"label": "alpha"}
    assert [m.score(gold, prediction) for m in metrics] == [0.25, 0.75]
    import sys

    for m in metrics:  # registered under a unique name (pickle and dataclasses look it up there)
        assert sys.modules[m.score_fn.__module__].score is m.score_fn


def test_a_dotted_user_metric_and_one_from_the_environment(tmp_path):
    root = make_feature(tmp_path / "dotted", extra={"metric": {"function": "metrics_pkg.exact:score"}})
    (root / "metrics_pkg").mkdir()
    (root / "metrics_pkg" / "exact.py").write_text(
        "def score(gold, prediction):\n    return float(gold['label'] == prediction['label'])\n"
    )
    metric = build_metric(load_feature(root))
    assert metric.score({"label": "alpha"}, {"label": "alpha"}) == 1.0
    assert metric.score({"label": "alpha"}, {"label": "beta"}) == 0.0
    from_env = make_feature(tmp_path / "env", extra={"metric": {"function": "operator:eq"}})
    assert build_metric(load_feature(from_env)).score({"label": "a"}, {"label": "a"}) == 1.0


def test_a_missing_user_metric_names_file_field_and_what_was_expected(tmp_path):
    from offramp.errors import UserError

    root = make_feature(tmp_path / "missing", extra={"metric": {"function": "nowhere_to_be_found:score"}})
    with pytest.raises(UserError, match=r"feature\.yaml: field `metric.function`: cannot import 'nowhere_to_be_found:score'.*expected"):
        build_metric(load_feature(root))


def test_parse_failures_and_errors_are_counted_and_scored_zero(tmp_path, home, fake):
    feature = load_feature(make_feature(tmp_path / "f"))
    metric = build_metric(feature)
    splits = split_examples(feature)
    answers = iter(["alpha", "no idea", "gamma"] * 100)
    fake.add("m", answer=lambda m: next(answers), failures=[fp.bad_request()])
    gw = Gateway(Warehouse(home / "w.duckdb"), PriceBook({"fake/m": fp.FAKE_PRICE}), home=home, concurrency=1, use_cache=False)
    config = Config(model="fake/m", instructions="Route.", settings=Settings(max_tokens=8))
    ev = evaluate_config(feature.spec, metric, config, splits.dev, gw)
    a = ev.measurement
    assert a.status == "completed" and a.n_examples == 20
    assert a.error_rate == pytest.approx(1 / 20)
    assert a.parse_failure_rate == pytest.approx(sum(1 for c in ev.calls if c.error is None and c.prediction is None) / 20)
    assert a.parse_failure_rate > 0
    assert a.quality == pytest.approx(np.mean(ev.scores))
    assert all(c.score == 0 for c in ev.calls if c.prediction is None)
    ok = [c for c in ev.calls if c.error is None]
    assert a.cost_per_1k_usd == pytest.approx(1000 * np.mean([c.orig_cost_usd for c in ok]))
    assert a.latency_p95_s == pytest.approx(np.percentile([c.orig_latency_s for c in ok], 95))
    assert a.quality_ci_low <= a.quality <= a.quality_ci_high


def test_all_calls_failing_marks_the_trial_failed(tmp_path, home, fake):
    feature = load_feature(make_feature(tmp_path / "f"))
    fake.add("m", failures=[fp.bad_request() for _ in range(100)])
    gw = Gateway(Warehouse(home / "w.duckdb"), PriceBook({"fake/m": fp.FAKE_PRICE}), home=home)
    ev = evaluate_config(feature.spec, build_metric(feature), Config(model="fake/m", instructions="x"), split_examples(feature).dev, gw)
    assert ev.measurement.status == "failed" and "BadRequestError" in ev.measurement.error


def test_demos_make_prompts_longer_and_dearer(tmp_path, home, fake):
    from offramp.tasks.feature.prompts import choose_demos

    feature = load_feature(make_feature(tmp_path / "f"))
    splits = split_examples(feature)
    fake.add("m", answer=oracle)
    gw = Gateway(Warehouse(home / "w.duckdb"), PriceBook({"fake/m": fp.FAKE_PRICE}), home=home)
    metric = build_metric(feature)
    zero = evaluate_config(feature.spec, metric, Config(model="fake/m", instructions="x"), splits.dev, gw)
    six = Config(model="fake/m", instructions="x", settings=Settings(demos=6))
    few = evaluate_config(feature.spec, metric, six, splits.dev, gw, demos=choose_demos(feature.spec, splits.train, 6, 0))
    assert few.measurement.prompt_tokens > 2 * zero.measurement.prompt_tokens
    assert few.measurement.cost_per_1k_usd > zero.measurement.cost_per_1k_usd


@pytest.mark.parametrize(
    ("text", "expected"),
    [("beta", "beta"), (" Beta.\n", "beta"), ("The answer is gamma", "gamma"), ("alpha or beta", None), ("", None), ("alphabet", None)],
)
def test_label_parsing(tmp_path, text, expected):
    feature = load_feature(make_feature(tmp_path / "f"))
    parsed = parse_answer(feature.spec, Config(model="m", instructions="x"), text)
    assert (parsed and parsed["label"]) == expected


def test_json_mode_parsing(tmp_path):
    feature = load_feature(make_feature(tmp_path / "f"))
    config = Config(model="m", instructions="x", settings=Settings(output_mode="json_schema"))
    assert parse_answer(feature.spec, config, '{\n "label": "gamma"\n}') == {"label": "gamma"}
    assert parse_answer(feature.spec, config, '{"label": "delta"}') is None
    assert parse_answer(feature.spec, config, '{"label": "gam') is None


def test_pareto_front_matches_brute_force():
    rng = random.Random(5)
    for _ in range(50):
        points = [Point(i, rng.choice([0.5, 0.6, 0.7, rng.random()]), rng.choice([1.0, 2.0, rng.random()]), rng.random()) for i in range(30)]
        front = {p.key for p in pareto_front(points)}
        brute = {p.key for p in points if not any(
            q.quality >= p.quality and q.cost <= p.cost and q.latency <= p.latency and (q.quality, q.cost, q.latency) != (p.quality, p.cost, p.latency)
            for q in points
        )}
        assert front == brute
        assert all(not dominates(a, b) for a in pareto_front(points) for b in pareto_front(points))


@pytest.mark.parametrize(
    ("gold", "pred", "labels", "expected"),
    [
        # a: tp1 fp0 fn1 -> 2/3; b: tp1 fp1 fn0 -> 2/3; c: tp0 -> 0; d occurs nowhere: not averaged
        (["a", "a", "b", "c"], ["a", "b", "b", None], ["a", "b", "c", "d"], (2 / 3 + 2 / 3 + 0) / 3),
        # b is only ever predicted: it counts (F1 0)
        (["a", "a"], ["a", "b"], ["a", "b"], (2 / 3 + 0) / 2),
        # a value outside the labels is a wrong answer of no label
        (["a", "b"], ["a", "zzz"], ["a", "b"], (1 + 0) / 2),
        (["a", "b"], ["a", "b"], ["a", "b"], 1.0),
        (["x"], [None], ["a"], 0.0),  # no label occurs
        ([], [], ["a"], 0.0),
    ],
)
def test_macro_f1_hand_computed_cases(gold, pred, labels, expected):
    from offramp.tasks.feature.metrics import macro_f1_statistic

    assert macro_f1(gold, pred, labels) == pytest.approx(expected)
    rows = np.arange(len(gold))
    assert macro_f1_statistic(gold, pred, labels)(rows) == macro_f1(gold, pred, labels)


def test_macro_f1_equals_the_per_label_definition_on_random_labels():
    def reference(gold, pred, labels):  # the definition, one label at a time (the former implementation)
        present = [label for label in labels if label in set(gold) or label in set(pred)]
        if not present:
            return 0.0
        f1 = []
        for label in present:
            tp = sum(1 for g, p in zip(gold, pred) if g == label and p == label)
            fp = sum(1 for g, p in zip(gold, pred) if g != label and p == label)
            fn = sum(1 for g, p in zip(gold, pred) if g == label and p != label)
            f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        return float(np.mean(f1))

    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d", "e"]
    for _ in range(200):
        n = int(rng.integers(1, 30))
        gold = [labels[i] for i in rng.integers(0, 4, n)]  # e never gold
        pred = [None if i == 5 else labels[i] for i in rng.integers(0, 6, n)]
        assert macro_f1(gold, pred, labels) == reference(gold, pred, labels)
    with pytest.raises(ValueError, match="one prediction per gold label"):
        macro_f1(["a", "b"], ["a"], labels)
