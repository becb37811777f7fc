"""Search spaces (one YAML file each) and the configs they contain.

A config is what runs a feature: a model (a litellm id, or `local/<alias>` for the bundled local
models), the instructions, a prompt strategy and decoding settings. A search space names the
candidate models, the prompt strategies (`search_spaces.strategies`, one class each) with the
values of their parameters, and the values each setting may take. How an Optuna trial becomes a
config is `search_spaces.optuna_space`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from offramp.errors import SpaceError
from offramp.search_spaces.strategies import strategy_class, strategy_names
from offramp.search_spaces.validation import load_model, problems
from offramp.util import content_hash

HERE = Path(__file__).parent


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Settings(_Frozen):
    """Decoding and prompting settings of a config."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=64, ge=1, le=32768)
    output_mode: Literal["text", "json_schema"] = Field(
        default="text", description="text: parse the answer from free text; json_schema: ask the provider for JSON matching the outputs"
    )
    demos: int = Field(
        default=0, ge=0, le=200,
        description="strategy `incumbent` only: labelled train examples shown as chat turns before the input (the shipped prompt's demos)",
    )


def _registered(name: str) -> str:
    strategy_class(name)  # ValueError naming the known strategies
    return name


StrategyName = Annotated[str, AfterValidator(_registered)]


class Strategy(_Frozen):
    """How one config's prompt is made: a registered prompt strategy (`search_spaces.strategies`:
    incumbent, zero_shot, few_shot, mipro, gepa) and its parameters (`k` demos, the
    `optimizer_model` that proposes or reflects, a `budget`)."""

    name: StrategyName = "incumbent"
    k: int = Field(default=0, ge=0, le=64)
    optimizer_model: str | None = None
    budget: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _parameters_fit(self) -> Strategy:
        strategy_class(self.name).check(self)
        return self

    @property
    def kind(self):  # noqa: ANN201 - a PromptStrategy (imported lazily by callers' type checkers)
        """The registered strategy class behind this config's strategy."""
        return strategy_class(self.name)

    @property
    def compiles(self) -> bool:
        return self.kind.compiles

    def label(self) -> str:
        return self.kind.label(self)


class Config(_Frozen):
    """One point of a search space: model x prompt strategy x decoding settings."""

    model: str = Field(min_length=1)
    instructions: str = Field(min_length=1)
    strategy: Strategy = Strategy()
    settings: Settings = Settings()

    @model_validator(mode="before")
    @classmethod
    def _own_model(cls, data: Any) -> Any:
        """A strategy that trains a model of offramp's own (`tuned`) names the model and takes no
        decoding settings: every pairing Optuna or a grid makes with it is one config."""
        if not isinstance(data, dict):
            return data
        strategy = data.get("strategy")
        name = strategy.name if isinstance(strategy, Strategy) else strategy.get("name") if isinstance(strategy, dict) else None
        own = strategy_class(name).own_model if isinstance(name, str) and name in strategy_names() else None
        return {**data, "model": own, "settings": Settings()} if own else data

    def config_hash(self) -> str:
        return content_hash(self.model_dump(mode="json"), length=16, compact=False)

    def label(self) -> str:
        if self.strategy.kind.own_model:
            return f"{self.model} (tuned on train)"
        s = self.settings
        mode = "json" if s.output_mode == "json_schema" else "text"
        prompt = f"{self.strategy.name} k={s.demos}" if self.strategy.kind.shipped_prompt else self.strategy.label()
        return f"{self.model} {prompt} {mode} t={s.temperature:g} max={s.max_tokens}"


class Price(_Frozen):
    """USD per token; overrides litellm's price map (and the bundled local-model prices)."""

    input_cost_per_token: float = Field(ge=0)
    output_cost_per_token: float = Field(ge=0)
    basis: str = ""


class ModelEntry(_Frozen):
    """A declared model: where it is served and how (a search space's `models:` mapping entry,
    or `feature.yaml`'s `incumbent.model`). Its `name` is what configs, trials, calls and reports
    use, so several entries may serve one `id` (two accounts, a vLLM box and a gateway). The key
    itself never appears here: only the name of the environment variable that holds it."""

    id: str = Field(min_length=1, description="the litellm id, e.g. openai/gpt-4o-mini, hosted_vllm/llama-3")
    name: str | None = Field(default=None, min_length=1, description="a unique label; default: the id")
    api_base: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", description="the endpoint's URL")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    description="the environment variable holding the key (never the key)")
    max_concurrency: int | None = Field(default=None, ge=1, le=1024)
    rpm: int | None = Field(default=None, ge=1, description="requests per minute, per process")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute, per process")
    price: Price | None = None

    @property
    def label(self) -> str:
        return self.name or self.id


def split_model_entries(raw: object, where: str, *, indexed: bool = True) -> tuple[object, dict[str, dict]]:
    """A `models:` list as names, and the declared mappings by name: configs carry names only,
    the gateway gets the declarations. Entries that are not mappings are left for pydantic."""
    if not isinstance(raw, list):
        return raw, {}
    names, declared = [], {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            names.append(item)
            continue
        at = f"{where}[{i}]" if indexed else where
        try:
            entry = ModelEntry.model_validate(item)
        except ValidationError as exc:
            raise ValueError(f"{at}: {problems(exc)}; expected a litellm id or a mapping "
                             "{id, name, api_base, api_key_env, max_concurrency, rpm, tpm, price}") from None
        if entry.label in declared:
            raise ValueError(f"{at}: name {entry.label!r} is used twice; give each entry its own `name`")
        names.append(entry.label)
        declared[entry.label] = entry.model_dump(mode="json")
    return names, declared


class SettingsGrid(_Frozen):
    """The values each setting may take; every value in the range `Settings` accepts."""

    temperature: list[Annotated[float, Field(ge=0.0, le=2.0)]] = Field(default=[0.0], min_length=1)
    max_tokens: list[Annotated[int, Field(ge=1, le=32768)]] = Field(default=[64], min_length=1)
    output_mode: list[Literal["text", "json_schema"]] = Field(default=["text"], min_length=1)

    @field_validator("*")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError(f"values repeat: {values}")
        return values


class StrategyOptions(_Frozen):
    """The values a strategy's parameters may take in a space."""

    k: list[int] = Field(default_factory=list)
    optimizer_models: list[str] = Field(default_factory=list)
    budget: int | None = Field(default=None, ge=1)


class SearchSpace(_Frozen):
    """Candidate models x prompt strategies x decoding settings.

    `strategies` maps a strategy name to the values of its parameters, e.g.
    `{incumbent: {}, zero_shot: {}, few_shot: {k: [4, 8]}, gepa: {optimizer_models: [m], budget: 40}}`;
    when omitted, only the incumbent's prompt is tried on each model.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    models: list[str] = Field(min_length=1, description="model names: litellm ids, or the names of `endpoints`")
    endpoints: dict[str, ModelEntry] = Field(default_factory=dict, description="declared models (mappings in `models:`) by name")
    strategies: dict[StrategyName, StrategyOptions] = Field(default_factory=lambda: {"incumbent": StrategyOptions()})
    settings: SettingsGrid = SettingsGrid()
    prices: dict[str, Price] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _declared_models(cls, raw: object) -> object:
        """`models:` entries may be mappings (`ModelEntry`): their names stay in `models`, the
        declarations move to `endpoints`."""
        if isinstance(raw, dict) and "models" in raw:
            names, declared = split_model_entries(raw["models"], "models")
            if declared:
                raw = {**raw, "models": names, "endpoints": {**(raw.get("endpoints") or {}), **declared}}
        return raw

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError(f"models repeat: {models}; two entries serving one id need different `name`s")
        return models

    @model_validator(mode="after")
    def _declared_are_listed(self) -> SearchSpace:
        unknown = sorted(set(self.endpoints) - set(self.models))
        if unknown:
            raise ValueError(f"endpoints {unknown} are not among `models`")
        return self

    @field_validator("strategies")
    @classmethod
    def _strategies_complete(cls, strategies: dict[str, StrategyOptions]) -> dict[str, StrategyOptions]:
        if not strategies:
            raise ValueError("at least one strategy is needed (e.g. `incumbent: {}`)")
        for name, options in strategies.items():
            strategy_class(name).check_options(options)
        return strategies

    def strategy_variants(self) -> list[Strategy]:
        return [v for name, options in self.strategies.items() for v in strategy_class(name).variants(options)]

    def optimizer_models(self) -> list[str]:
        return sorted({m for options in self.strategies.values() for m in options.optimizer_models})

    def grid(self, incumbent: Config, exclude_models: set[str] = frozenset()) -> list[Config]:
        """Every config of the space (models x strategies x settings), minus the excluded models.
        The `incumbent` strategy keeps the incumbent's instructions and shipped demos."""
        g = self.settings
        configs = []
        for model, strategy, temperature, max_tokens, mode in itertools.product(
            self.models, self.strategy_variants(), g.temperature, g.max_tokens, g.output_mode
        ):
            if model in exclude_models:
                continue
            demos = incumbent.settings.demos if strategy.kind.shipped_prompt else 0
            settings = Settings(temperature=temperature, max_tokens=max_tokens, output_mode=mode, demos=demos)
            configs.append(Config(model=model, instructions=incumbent.instructions, strategy=strategy, settings=settings))
        return list({c.config_hash(): c for c in configs}.values())  # a model of offramp's own is one config


def load_space(path: Path | str) -> SearchSpace:
    """Read and validate a search space file. A bare name means `search_spaces/<name>.yaml`."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = HERE / f"{path}.yaml"
    if not path.exists():
        shipped = sorted(p.stem for p in HERE.glob("*.yaml"))
        raise SpaceError(f"{path}: no such search space file (shipped spaces: {shipped})")
    return load_model(path, SearchSpace, what="search space", expected="name, models, strategies, settings, prices",
                      error=SpaceError)
