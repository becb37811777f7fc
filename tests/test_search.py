"""The search: every shipped space through Optuna's FixedTrial (contract), racing, limits, bad input."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from offramp.search_spaces.optuna_space import all_params, naive_swap_params, search_distributions, suggest_config
from offramp.search_spaces.schema import HERE, Config, Settings, load_space
from offramp.tasks.search.ask_tell import Limits, TrialOutcome, hopeless, run_search
from offramp.warehouse.records import TrialMeasurement

SHIPPED = sorted(HERE.glob("*.yaml"))


def measured(quality, ci_high, cost, p95, error_rate, n) -> TrialMeasurement:
    return TrialMeasurement(quality=quality, quality_ci_high=ci_high, cost_per_1k_usd=cost, latency_p95_s=p95,
                            error_rate=error_rate, n_examples=n)
INCUMBENT = Config(model="local/smollm2-135m", instructions="Route it.", settings=Settings(max_tokens=16, demos=14))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_space_yields_valid_configs_for_every_choice(path: Path):
    space = load_space(path)
    models = [m for m in space.models if m != INCUMBENT.model]
    seen = set()
    for params in all_params(space, INCUMBENT, models):
        config = suggest_config(optuna.trial.FixedTrial(params), space, INCUMBENT, models)
        own = config.strategy.kind.own_model  # a model of offramp's own: one config, whatever model it is paired with
        assert config.model == (own or params["model"]) and config.strategy.name == params["strategy"]
        seen.add(config.config_hash())
    assert len(seen) == len(all_params(space, INCUMBENT, models))  # every point is a distinct config
    assert len(seen) >= len(models)
    # the naive swap is a point of every space
    for model in models:
        naive = suggest_config(optuna.trial.FixedTrial(naive_swap_params(INCUMBENT, model)), space, INCUMBENT, models)
        assert naive.settings == INCUMBENT.settings and naive.strategy.name == "incumbent"


def test_hopeless_uses_the_optimistic_bound():
    front = [TrialOutcome(0, None, "complete", measured(0.8, 0.85, 1.0, 1.0, 0.0, 100), True, 1.0)]
    assert hopeless(measured(0.5, 0.7, 2.0, 2.0, 0.0, 20), front)  # even 0.7 loses, dearer and slower
    assert not hopeless(measured(0.5, 0.9, 2.0, 2.0, 0.0, 20), front)  # might still beat it on quality
    assert not hopeless(measured(0.5, 0.7, 0.5, 2.0, 0.0, 20), front)  # cheaper: a front member maybe


def _universe():
    """A tiny known universe: quality by model, cost by strategy."""
    space = load_space(HERE / "local-zoo.yaml")
    models = [m for m in space.models if m != INCUMBENT.model]
    quality = {"local/qwen2.5-0.5b": 0.8, "local/gemma3-270m": 0.3, "tuned/tfidf-char-logreg": 0.6}
    calls = []

    def evaluate(config: Config, number: int, fraction: float) -> TrialMeasurement:
        calls.append((number, fraction))
        q = quality[config.model] - (0.2 if config.strategy.name == "zero_shot" else 0.0)
        cost = 1.0 + (0.5 if config.strategy.name == "few_shot" else 0.0) + (0.1 if config.settings.output_mode == "json_schema" else 0)
        error = 0.5 if config.settings.max_tokens == 16 and config.strategy.name != "incumbent" else 0.0
        return measured(q, q + 0.05 / fraction, cost, 0.1 * cost, error, int(100 * fraction))

    return space, models, evaluate, calls


def test_search_races_limits_and_matches_best_trials():
    space, models, evaluate, calls = _universe()
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    result = run_search(study, space, INCUMBENT, models, evaluate, seed=1, max_trials=12, limits=Limits(max_error_rate=0.2))
    assert len(result.outcomes) == 12 or result.stopped_by == "space_exhausted"
    first_two = [o.config for o in sorted(result.outcomes, key=lambda o: o.number)[:2]]
    assert all(c.strategy.name == "incumbent" and c.settings == INCUMBENT.settings for c in first_two)  # naive swaps first
    pruned = [o for o in result.outcomes if o.state == "pruned"]
    assert pruned and all(o.stage < 1.0 for o in pruned)
    assert any(o.state == "complete" and not o.feasible for o in result.outcomes)  # error-rate limit
    feasible = {o.number for o in result.outcomes if o.state == "complete" and o.feasible}
    assert {t.number for t in study.best_trials} <= feasible
    stages_of = {}
    for number, fraction in calls:
        stages_of.setdefault(number, []).append(fraction)
    assert all(s == sorted(s) for s in stages_of.values())


def test_repeats_are_not_counted_and_the_space_is_covered():
    space, models, evaluate, _ = _universe()
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    size = len(all_params(space, INCUMBENT, models))
    result = run_search(study, space, INCUMBENT, models, evaluate, seed=2, max_trials=size + 5, stages=(1.0,))
    hashes = [o.config.config_hash() for o in result.outcomes]
    assert len(hashes) == len(set(hashes)) == size and result.stopped_by == "space_exhausted"


def test_same_seed_same_search():
    space, models, evaluate, _ = _universe()
    runs = []
    for _ in range(2):
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
        result = run_search(study, space, INCUMBENT, models, evaluate, seed=7, max_trials=10)
        runs.append([(o.number, o.config.config_hash(), o.state) for o in sorted(result.outcomes, key=lambda o: o.number)])
    assert runs[0] == runs[1]


def test_parallel_trials_run_concurrently_and_all_land():
    import threading
    import time

    space, models, evaluate, _ = _universe()
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(config, number, fraction):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return evaluate(config, number, fraction)

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    result = run_search(study, space, INCUMBENT, models, slow, seed=3, max_trials=8, parallel=4, stages=(1.0,))
    assert peak[0] >= 2
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == len(result.outcomes) == 8


def test_a_crash_while_parameters_were_being_suggested_is_recovered():
    """SIGKILL can land between two `suggest_*` calls: the trial is RUNNING with only some params."""
    space, models, evaluate, _ = _universe()
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    half = study.ask()
    choices = search_distributions(space, INCUMBENT, models)
    half.suggest_categorical("model", choices["model"])
    half.suggest_categorical("strategy", choices["strategy"])  # ... and the process died here
    recovered = []
    result = run_search(study, space, INCUMBENT, models, evaluate, seed=4, max_trials=6, stages=(1.0,),
                        recover=lambda number, config: recovered.append(number))
    assert recovered == []  # nothing to look up: the trial had no config yet
    assert study.trials[half.number].state == optuna.trial.TrialState.FAIL
    assert len(result.outcomes) == 6 and all(o.config is not None for o in result.outcomes)


def test_a_naive_swap_killed_before_its_first_suggest_is_asked_again():
    space, models, evaluate, _ = _universe()
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for model in models:
        study.enqueue_trial(naive_swap_params(INCUMBENT, model))
    popped = study.ask()  # the first naive swap, popped from the queue: no params yet, then the kill
    assert popped.params == {}
    result = run_search(study, space, INCUMBENT, models, evaluate, seed=4, max_trials=len(models), stages=(1.0,))
    naive = {o.config.model for o in result.outcomes if o.config.strategy.name == "incumbent" and o.config.settings == INCUMBENT.settings}
    assert naive == set(models)  # both naive swaps measured, the interrupted one included
