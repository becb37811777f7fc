"""Issue 11, item 5: the naive swaps' order does not depend on the file; a latency difference
within its measurement noise does not put a config on the front (Python, the warehouse's view,
racing); every trial records the machine's load while it ran. Fast: no LLM, no Prefect."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from offramp.search_spaces.schema import HERE, Config, Settings, load_space
from offramp.tasks.evidence.confirm import confirmation_order, settled
from offramp.tasks.evidence.latency import latency_note, load_slowdown
from offramp.tasks.evidence.policy import SelectionPolicy
from offramp.tasks.feature.evaluate import aggregate
from offramp.tasks.feature.metrics import Metric
from offramp.tasks.feature.spec import Example
from offramp.tasks.gateway.llm import LLMResult
from offramp.tasks.search.ask_tell import TrialOutcome, hopeless, naive_order, run_search
from offramp.tasks.search.pareto import Point, dominates, pareto_front
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import Trial, TrialMeasurement

INCUMBENT = Config(model="legacy/retired", instructions="Route it.", settings=Settings(max_tokens=16, demos=2))
PRICE = {"p/cheap": 0.001, "p/mid": 0.004, "p/dear": 0.02, "p/free": 0.0}  # USD per naive-swap request


def _evaluate(config: Config, number: int, fraction: float) -> TrialMeasurement:
    """A deterministic universe: quality by model and strategy, cost by model price."""
    q = {"p/cheap": 0.5, "p/mid": 0.7, "p/dear": 0.85, "p/free": 0.3, "tuned/tfidf-char-logreg": 0.6}[config.model]
    q -= 0.1 * (config.strategy.name == "zero_shot")
    return TrialMeasurement(quality=q, quality_ci_high=q + 0.1 / fraction, cost_per_1k_usd=1000 * PRICE.get(config.model, 0.0),
                            latency_p95_s=1.0, error_rate=0.0, n_examples=int(100 * fraction))


def _trial_order(models: list[str], naive_cost, max_trials: int = 8) -> list[str]:
    space = load_space(HERE / "local-zoo.yaml").model_copy(update={"models": models})
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    result = run_search(study, space, INCUMBENT, models, _evaluate, seed=4, max_trials=max_trials, naive_cost=naive_cost)
    return [o.config.label() for o in sorted(result.outcomes, key=lambda o: o.number)]


@pytest.mark.parametrize("naive_cost", [PRICE, None], ids=["priced", "unpriced"])
def test_two_listings_of_the_same_models_give_the_same_trials(naive_cost):
    """The old code enqueued the swaps (and listed Optuna's model choices) in the file's order."""
    listed = ["p/dear", "p/free", "p/mid", "p/cheap"]
    orders = [_trial_order(models, naive_cost) for models in (listed, listed[::-1], sorted(listed, key=len))]
    assert orders[0] == orders[1] == orders[2]
    expected = ["p/free", "p/cheap", "p/mid", "p/dear"] if naive_cost else sorted(listed)
    assert [label.split()[0] for label in orders[0][:4]] == expected  # the naive swaps come first, in that order
    assert all("incumbent" in label for label in orders[0][:4])


def test_a_small_budget_runs_the_cheapest_swaps_whatever_the_file_says():
    assert [label.split()[0] for label in _trial_order(["p/dear", "p/mid", "p/cheap"], PRICE, max_trials=2)] == ["p/cheap", "p/mid"]


def test_naive_order_puts_unpriced_models_last_and_breaks_ties_by_id():
    assert naive_order(["b", "z", "a", "c"], {"z": 0.1, "a": 0.1, "b": None}) == ["a", "z", "b", "c"]


def test_a_latency_difference_within_noise_is_a_tie():
    good = Point(0, 0.80, 1.0, 1.00, latency_noise=0.3)  # better and cheaper
    noisy = Point(1, 0.70, 2.0, 0.90, latency_noise=0.3)  # "faster" by 0.1 s, noise 0.3 s each
    assert dominates(good, noisy)
    assert [p.key for p in pareto_front([good, noisy])] == [0]
    exact = [Point(0, 0.80, 1.0, 1.00), Point(1, 0.70, 2.0, 0.90)]  # no noise known: compared as measured (old rule)
    assert [p.key for p in pareto_front(exact)] == [0, 1]
    fast = Point(1, 0.70, 2.0, 0.20, latency_noise=0.1)  # faster by 0.8 s, beyond sqrt(0.3^2 + 0.1^2)
    assert [p.key for p in pareto_front([good, fast])] == [0, 1]
    same = Point(1, 0.80, 1.0, 0.95, latency_noise=0.3)  # equal quality and cost, faster within noise: both kept
    assert not dominates(same, good) and not dominates(good, same)


def test_racing_is_optimistic_on_latency_too():
    front = [TrialOutcome(0, None, "complete", TrialMeasurement(quality=0.8, quality_ci_high=0.85, cost_per_1k_usd=1.0,
                                                                latency_p95_s=1.0), True, 1.0)]
    slow = TrialMeasurement(quality=0.5, quality_ci_high=0.7, cost_per_1k_usd=2.0, latency_p95_s=1.5)
    assert hopeless(slow, front)
    # its p95 of 1.5 s on a few calls could be 0.5 s: it may still be the fastest config
    assert not hopeless(dataclasses.replace(slow, latency_p95_ci_low=0.5, latency_p95_ci_high=2.5), front)


def test_a_trial_measures_its_p95_with_an_interval():
    examples = [Example(id=f"e{i}", inputs={"x": i}, outputs={"y": "a"}) for i in range(40)]
    latencies = [0.1 + 0.01 * i for i in range(39)] + [3.0]
    results = [LLMResult("a", 10, 2, 0.001, s, 0.001, s, None, False, 1) for s in latencies]
    metric = Metric(name="exact", field="y", score_fn=lambda gold, pred: float(gold["y"] == pred["y"]))
    m = aggregate(metric, examples, results, [{"y": "a"}] * 40, [1.0] * 40, seed=3)
    assert m.latency_p95_ci_low < m.latency_p95_s < m.latency_p95_ci_high  # one 3 s outlier: p95 is uncertain
    assert m.latency_p95_ci_high - m.latency_p95_ci_low > 0.1


def _trial(wh, trial_id, quality, cost, p95, noise):
    records.start_trial(wh, study_id="s", trial_id=trial_id, role="candidate", split="dev", source_trial_id=None,
                        config_hash=f"h{trial_id}", model=f"m/{trial_id}", settings={})
    m = TrialMeasurement(quality=quality, quality_ci_low=quality, quality_ci_high=quality, cost_per_1k_usd=cost,
                         latency_p95_s=p95, latency_p95_ci_low=p95 - noise, latency_p95_ci_high=p95 + noise,
                         load_avg_min=0.5, load_avg_max=1.5, error_rate=0.0, n_examples=20)
    records.finish_trial(wh, study_id="s", trial_id=trial_id, measurement=m, calls=[], feasible=True, stage=1.0)


def test_the_warehouse_front_ties_latencies_within_noise_like_python(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="legacy/retired",
                        trigger="manual", space_name="x", space={}, params={}, seed=0)
    rows = [(0, 0.80, 1.0, 1.00, 0.3), (1, 0.70, 2.0, 0.90, 0.3), (2, 0.70, 2.0, 0.20, 0.1), (3, 0.5, 3.0, 1.2, 0.0)]
    for row in rows:
        _trial(wh, *row)
    _, front = wh.fetch("SELECT trial_id FROM v_pareto_front WHERE study_id = 's' ORDER BY trial_id")
    assert [r[0] for r in front] == [p.key for p in pareto_front([Point(*r) for r in rows])] == [0, 2]
    _, loads = wh.fetch("SELECT load_avg_min, load_avg_max FROM v_trials WHERE study_id = 's' AND trial_id = 0")
    assert loads == [(0.5, 1.5)]


def _measured(p95, noise, low, high):
    m = TrialMeasurement(quality=0.5, latency_p95_s=p95, latency_p95_ci_low=p95 - noise, latency_p95_ci_high=p95 + noise,
                         load_avg_min=low, load_avg_max=high)
    return Trial(trial_id=0, role="candidate", split="dev", label="x", model="local/x", measurement=m)


def test_the_report_says_how_much_load_could_have_swung_latency():
    trials = [_measured(1.0, 0.2, 1.5, 2.0), _measured(5.0, 1.0, 7.0, 8.0)]
    note = " ".join(latency_note(trials, trials[:1], cores=2))
    assert "±0.200 to ±0.200 s" in note and "1.5 to 8.0 on 2 cores" in note and "up to 4.0x slower" in note
    assert "not enough" in " ".join(latency_note(trials[:1], trials[:1], cores=4))  # load below the cores: no slowdown
    assert load_slowdown(8.0, 2) == 4.0 and load_slowdown(1.0, 2) == 1.0


def _m(quality, high, cost):
    return TrialMeasurement(quality=quality, quality_ci_high=high, cost_per_1k_usd=cost)


def test_only_what_can_still_win_is_confirmed():
    """The old flow confirmed every front config on test."""
    front = {1: _m(0.9, 0.95, 3.0), 2: _m(0.6, 0.70, 0.5), 3: _m(0.85, 0.9, 1.0), 4: _m(0.88, 0.93, 2.0)}
    order, skipped = confirmation_order(front, _m(0.86, 0.9, 5.0), SelectionPolicy())
    assert order == [3, 4, 1] and list(skipped) == [2]  # cheapest first; 0.70 < 0.86 - 0.05: cannot be non-inferior
    assert "cannot be shown non-inferior" in skipped[2]
    lenient = SelectionPolicy(quality_rule="not_worse")
    assert confirmation_order(front, _m(0.86, 0.9, 5.0), lenient) == ([2, 3, 4, 1], {})  # no evidence needed: all of it
    accepted = _m(0.85, 0.9, 1.02)  # trial 3 on test
    assert settled(accepted, [front[4], front[1]], SelectionPolicy())  # both cost more than 1.02 x 1.05 on dev
    assert not settled(accepted, [_m(0.9, 0.95, 1.05)], SelectionPolicy())  # within the cost slack: it could be cheaper on test
    assert not settled(accepted, [front[4]], SelectionPolicy(prefer="quality"))  # another preference needs every candidate
    assert not settled(None, [front[4]], SelectionPolicy())  # nothing accepted yet


def test_a_front_that_cannot_be_non_inferior_is_not_confirmed_and_the_best_on_dev_is_named(tmp_path):
    from offramp.tasks.evidence.judge import confirm_front

    wh = Warehouse(tmp_path / "w.duckdb")

    def trial(trial_id, quality, high, role="candidate", split="dev"):
        return Trial(trial_id=trial_id, role=role, split=split, label=f"config {trial_id}", model="m/x",
                     measurement=TrialMeasurement(quality=quality, quality_ci_high=high, cost_per_1k_usd=1.0 + trial_id))

    dev = {1: trial(1, 0.5, 0.6), 2: trial(2, 0.6, 0.7)}
    confirmed = []
    selection, tests, skipped = confirm_front(
        wh, "s", None, (), trial(0, 0.9, 0.95, "incumbent"), trial(9, 0.9, 0.95, "incumbent", "test"), [1, 2], dev,
        lambda dev_id: confirmed.append(dev_id), SelectionPolicy(), 0)
    assert confirmed == [] and tests == {} and set(skipped) == {1, 2}  # no test call for what cannot win
    assert selection.trial_id is None and selection.recommended_trial_id == 2 and "non-inferior" in selection.reason
