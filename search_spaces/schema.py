"""Search spaces (one YAML file each) and the configs they contain.

A config is what runs a feature: a model (a litellm id, or `local/<alias>` for the bundled local
models), the instructions, and settings. A search space names the candidate models and the values
each setting may take; for now offramp evaluates its full grid (Optuna's search arrives later).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

HERE = Path(__file__).parent


class SpaceError(ValueError):
    """A search space file is missing or invalid (the message names file and field)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Settings(_Frozen):
    """Decoding and prompting settings of a config."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=64, ge=1, le=32768)
    output_mode: Literal["text", "json_schema"] = Field(
        default="text", description="text: parse the answer from free text; json_schema: ask the provider for JSON matching the outputs"
    )
    demos: int = Field(default=0, ge=0, le=200, description="labelled train examples shown as chat turns before the input")


class Config(_Frozen):
    """One point of a search space."""

    model: str = Field(min_length=1)
    instructions: str = Field(min_length=1)
    settings: Settings = Settings()

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]

    def label(self) -> str:
        s = self.settings
        mode = "json" if s.output_mode == "json_schema" else "text"
        return f"{self.model} k={s.demos} {mode} t={s.temperature:g} max={s.max_tokens}"


class Price(_Frozen):
    """USD per token; overrides litellm's price map (and the bundled local-model prices)."""

    input_cost_per_token: float = Field(ge=0)
    output_cost_per_token: float = Field(ge=0)
    basis: str = ""


class SettingsGrid(_Frozen):
    temperature: list[float] = Field(default=[0.0], min_length=1)
    max_tokens: list[int] = Field(default=[64], min_length=1)
    output_mode: list[Literal["text", "json_schema"]] = Field(default=["text"], min_length=1)
    demos: list[int] = Field(default=[0], min_length=1)

    @field_validator("*")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError(f"values repeat: {values}")
        return values


class SearchSpace(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    models: list[str] = Field(min_length=1)
    settings: SettingsGrid = SettingsGrid()
    prices: dict[str, Price] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError(f"models repeat: {models}")
        return models

    def grid(self, instructions: str, exclude_models: set[str] = frozenset()) -> list[Config]:
        """Every config of the space (models x settings), minus the excluded models."""
        g = self.settings
        configs = []
        for model, temperature, max_tokens, mode, demos in itertools.product(
            self.models, g.temperature, g.max_tokens, g.output_mode, g.demos
        ):
            if model in exclude_models:
                continue
            settings = Settings(temperature=temperature, max_tokens=max_tokens, output_mode=mode, demos=demos)
            configs.append(Config(model=model, instructions=instructions, settings=settings))
        return configs


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_space(path: Path | str) -> SearchSpace:
    """Read and validate a search space file. A bare name means `search_spaces/<name>.yaml`."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = HERE / f"{path}.yaml"
    if not path.exists():
        shipped = sorted(p.stem for p in HERE.glob("*.yaml"))
        raise SpaceError(f"{path}: no such search space file (shipped spaces: {shipped})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping with name, models, settings, prices")
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"field `{_field_path(e['loc'])}`: {e['msg']}" for e in exc.errors())
        raise SpaceError(f"{path}: invalid search space: {problems}") from None
