"""A search space as Optuna sees it: categorical parameters, and the config of a trial.

Every parameter is categorical (`model`, `strategy`, `temperature`, `max_tokens`,
`output_mode`); a strategy adds its own conditional parameters (`few_shot.k` exists only when the
strategy is few_shot: `search_spaces.strategies`). The choices are widened with the incumbent's
settings and strategy, so the naive swap (the shipped prompt on a new model) is a point of every
space. `suggest_config` works on a real `optuna.Trial` and on a `FixedTrial` (rebuilding a
recorded trial's config from its params).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from offramp.search_spaces.schema import Config, SearchSpace, Settings, StrategyOptions
from offramp.search_spaces.strategies import Incumbent, strategy_class

if TYPE_CHECKING:
    import optuna


def search_distributions(space: SearchSpace, incumbent: Config, candidate_models: Sequence[str]) -> dict[str, list]:
    """The categorical choices of every parameter, widened so the naive swap is representable."""
    g = space.settings
    return {
        "model": list(candidate_models),
        "strategy": list(dict.fromkeys([Incumbent.name, *space.strategies])),
        "temperature": sorted(set(g.temperature) | {incumbent.settings.temperature}),
        "max_tokens": sorted(set(g.max_tokens) | {incumbent.settings.max_tokens}),
        "output_mode": list(dict.fromkeys([*g.output_mode, incumbent.settings.output_mode])),
    }


def suggest_config(trial: optuna.trial.BaseTrial, space: SearchSpace, incumbent: Config, candidate_models: Sequence[str]) -> Config:
    """One config from an Optuna trial (a real Trial or a FixedTrial)."""
    choices = search_distributions(space, incumbent, candidate_models)
    model = trial.suggest_categorical("model", choices["model"])
    kind = strategy_class(trial.suggest_categorical("strategy", choices["strategy"]))
    strategy = kind.suggest(trial, space.strategies.get(kind.name))
    settings = Settings(
        temperature=trial.suggest_categorical("temperature", choices["temperature"]),
        max_tokens=trial.suggest_categorical("max_tokens", choices["max_tokens"]),
        output_mode=trial.suggest_categorical("output_mode", choices["output_mode"]),
        demos=incumbent.settings.demos if kind.shipped_prompt else 0,
    )
    return Config(model=model, instructions=incumbent.instructions, strategy=strategy, settings=settings)


def config_from_params(params: dict[str, Any], space: SearchSpace, incumbent: Config, candidate_models: Sequence[str]) -> Config:
    """The config of recorded Optuna params; ValueError when they are incomplete (a trial killed
    while its parameters were being suggested)."""
    import optuna

    return suggest_config(optuna.trial.FixedTrial(params), space, incumbent, candidate_models)


def naive_swap_params(incumbent: Config, model: str) -> dict[str, Any]:
    """The Optuna params of the naive swap onto `model`: the shipped prompt and settings."""
    s = incumbent.settings
    return {"model": model, "strategy": Incumbent.name, "temperature": s.temperature, "max_tokens": s.max_tokens,
            "output_mode": s.output_mode}


def all_params(space: SearchSpace, incumbent: Config, models: Sequence[str]) -> list[dict[str, Any]]:
    """Every point of the space as Optuna params (conditional parameters included)."""
    choices = search_distributions(space, incumbent, models)
    points, own = [], set()
    for model, name, temperature, max_tokens, mode in itertools.product(*choices.values()):
        base = {"model": model, "temperature": temperature, "max_tokens": max_tokens, "output_mode": mode}
        kind = strategy_class(name)
        for variant in kind.variants(space.strategies.get(name) or StrategyOptions()):
            params = kind.optuna_params(variant)
            if kind.own_model:  # one point, whatever model and settings it is paired with (Config._own_model)
                if tuple(sorted(params.items())) in own:
                    continue
                own.add(tuple(sorted(params.items())))
            points.append({**base, **params})
    return points
