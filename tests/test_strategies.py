"""Contract test: every registered prompt strategy passes the same checks (the way optuna's
StorageTestCase runs every storage): its space options, its Optuna suggestions, its label, its
runner, and its compile step for real (DSPy on the fake provider)."""

from __future__ import annotations

import dspy
import optuna
import pytest

from offramp.search_spaces.schema import Config, SearchSpace, Settings, Strategy, StrategyOptions
from offramp.search_spaces.strategies import OPTIONS, strategy_class, strategy_names

NAMES = strategy_names()


def options_for(name: str) -> StrategyOptions:
    """The smallest options a space can give this strategy: everything it takes."""
    kind = strategy_class(name)
    return StrategyOptions(
        k=[2, 3] if "k" in kind.takes else [],
        optimizer_models=["fake/reflect"] if "optimizer_models" in kind.takes else [],
        budget=40 if "budget" in kind.takes else None,  # calls: enough for a MIPRO trial or a GEPA iteration
    )


def test_the_registry_holds_the_five_strategies():
    assert NAMES[:5] == ["incumbent", "zero_shot", "few_shot", "mipro", "gepa"]
    with pytest.raises(ValueError, match="unknown prompt strategy 'beam'.*known: incumbent"):
        strategy_class("beam")


@pytest.mark.parametrize("name", NAMES)
def test_options_are_checked(name):
    kind = strategy_class(name)
    assert kind.name == name and kind.summary
    kind.check_options(options_for(name))
    for option in sorted(set(OPTIONS) - kind.takes):  # an option it does not take is refused, by name
        bad = options_for(name).model_copy(update={option: [1] if option != "budget" else 5})
        with pytest.raises(ValueError, match=f"{name} takes no"):
            kind.check_options(bad)
    for option in sorted(kind.needs):  # an option it needs is required
        empty = options_for(name).model_copy(update={option: [] if option != "budget" else None})
        with pytest.raises(ValueError, match=f"{name} needs `{option}`"):
            kind.check_options(empty)


@pytest.mark.parametrize("name", NAMES)
def test_every_variant_round_trips_through_optuna(name):
    kind = strategy_class(name)
    options = options_for(name)
    variants = kind.variants(options)
    assert variants, "a strategy has at least one point"
    labels = set()
    for strategy in variants:
        assert strategy.name == name and strategy.kind is kind
        kind.check(strategy)
        params = kind.optuna_params(strategy)
        assert params["strategy"] == name
        assert kind.suggest(optuna.trial.FixedTrial(params), options) == strategy
        assert strategy.label().startswith(name)
        labels.add(strategy.label())
    assert len(labels) == len(variants), "labels tell variants apart"


@pytest.mark.parametrize("name", NAMES)
def test_a_space_with_the_strategy_validates_and_grids(name):
    space = SearchSpace(name="s", models=["fake/good"], strategies={name: options_for(name)})
    incumbent = Config(model="fake/old", instructions="Route it.", settings=Settings(demos=2))
    grid = space.grid(incumbent)
    assert {c.strategy.name for c in grid} == {name}
    assert len(grid) == len(strategy_class(name).variants(options_for(name)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["text", "json_schema"])
def test_the_runner_is_the_shipped_prompt_or_a_dspy_adapter(name, mode):
    kind = strategy_class(name)
    adapter = kind.adapter(mode)
    if kind.shipped_prompt or kind.own_model:  # the shipped prompt, or a model of offramp's own (tuned/<hash>)
        assert adapter is None
    else:
        assert isinstance(adapter, dspy.JSONAdapter if mode == "json_schema" else dspy.ChatAdapter)


def compilable() -> list[Strategy]:
    """One variant of every strategy that is a DSPy program (the compile step's contract)."""
    return [strategy_class(n).variants(options_for(n))[0] for n in NAMES
            if not strategy_class(n).shipped_prompt and not strategy_class(n).own_model]
