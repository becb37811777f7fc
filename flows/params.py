"""Parameters of the flows: one pydantic model per flow (the Prefect UI renders it as a form)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from offramp.tasks.evidence.policy import SelectionPolicy
from offramp.util import url_password


class GatewayParams(BaseModel):
    """How the study calls models."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(default=4, ge=1, le=256, description="calls in flight at once")
    timeout_s: float = Field(default=60.0, gt=0, description="per call")
    max_retries: int = Field(default=3, ge=0, le=10, description="for timeouts, 429, 5xx, connection errors only")
    backoff_s: float = Field(default=0.5, gt=0, le=60, description="first retry's backoff (doubling, with jitter)")
    use_cache: bool = Field(default=True, description="serve repeated requests from the warehouse's response cache")


class MigrateParams(BaseModel):
    """Migrate one feature away from a retiring model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature_dir: str = Field(description="folder holding feature.yaml")
    deprecated_model: str | None = Field(
        default=None, description="the retiring model; must be the incumbent's (default: the incumbent's model)"
    )
    space: str | None = Field(
        default=None,
        description="search space: a YAML path, or a name under search_spaces/ (default: the feature's `search_space`, else local-zoo)",
    )
    replacement_model: str | None = Field(
        default=None, description="the successor the provider suggests: searched as a candidate too"
    )
    prices_file: str | None = Field(default=None, description="YAML of model prices overriding litellm's map")
    max_examples: int | None = Field(default=None, ge=1, description="cap dev and test sizes (a quick run)")
    seed: int | None = Field(default=None, description="split/demo seed (default: the feature's splits.seed)")
    max_spend_usd: float | None = Field(
        default=None, gt=0,
        description="spend cap for the whole study, across resumes (evaluation + optimization), USD; none = no cap",
    )
    raise_cap: bool = Field(
        default=False, description="allow max_spend_usd above the cap a resumed study recorded (the report records the raise)"
    )
    max_trials: int = Field(default=16, ge=1, le=10_000, description="search trials (naive swaps included)")
    max_wall_s: float | None = Field(default=None, gt=0, description="stop asking for new trials after this many seconds")
    sampler: Literal["tpe", "nsga2", "random"] = Field(default="tpe", description="Optuna sampler (multi-objective)")
    racing: bool = Field(default=True, description="stop hopeless trials early (20% -> 50% -> 100% of dev)")
    parallel: int = Field(default=1, ge=1, le=64, description="trials evaluated at once")
    max_error_rate: float = Field(default=0.2, ge=0, le=1, description="hard limit: a config failing more often is infeasible")
    max_latency_p95_s: float | None = Field(default=None, gt=0, description="hard limit on p95 latency, seconds")
    optuna_storage: str | None = Field(
        default=None,
        description="Optuna RDB storage URL without a password (default: sqlite file in the state dir; postgresql://... "
        "works, its password from PGPASSWORD in the environment)",
    )
    new_study: bool = Field(default=False, description="start a new study even if an identical one was interrupted")
    policy: SelectionPolicy = Field(default_factory=SelectionPolicy, description="how the release is chosen among the front")
    policy_file: str | None = Field(
        default=None, description="a YAML file of the policy's fields, applied instead of `policy` (the report names it)"
    )
    start_local_models: bool = Field(default=True, description="start the local model servers the study needs")
    trigger: Literal["cli", "demo", "event", "ui"] = "ui"
    event_id: str | None = Field(default=None, description="the deprecation event that started this run, if any")
    gateway: GatewayParams = GatewayParams()

    @field_validator("optuna_storage")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        """Prefect stores a run's parameters (its UI shows them): a password there would leak."""
        if url is not None and url_password(url) is not None:
            raise ValueError(
                "a storage URL with a password: Prefect would keep it with the run's parameters; give the URL "
                "without it and the password in the environment (PostgreSQL: PGPASSWORD; `offramp migrate "
                "--storage` moves it there for you)"
            )
        return url


class WatchParams(BaseModel):
    """Find features whose model retires soon and emit one `offramp.model.deprecation` event each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features_root: str = Field(default="features", description="folder whose subfolders hold feature.yaml files")
    releases_dir: str | None = Field(default=None, description="release files (default: $OFFRAMP_RELEASES or ./releases)")
    notices_file: str | None = Field(default=None, description="YAML of your own retirement notices (`notices:` list)")
    price_map: str | None = Field(
        default=None, description="a litellm price map JSON to read instead of the bundled one (offline by default)"
    )
    horizon_days: int = Field(default=120, ge=0, le=3650, description="act on retirements this many days ahead")
    provider_horizon_days: dict[str, int] = Field(
        default_factory=dict, description="per provider (litellm's name, e.g. openai): its own horizon in days"
    )
    provider_apis: list[Literal["openai"]] = Field(
        default_factory=list, description="also read shutdown dates from these providers' models APIs (online; key from the environment)"
    )
    emit: bool = Field(default=True, description="emit events (off: only record and report what would be emitted)")
