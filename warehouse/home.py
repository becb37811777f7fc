"""Where offramp keeps its state: one directory, never scattered in the user's home.

`OFFRAMP_HOME` names it; the default is `.offramp/` in the current working directory. Inside:
`warehouse.duckdb` (unless `OFFRAMP_WAREHOUSE` points elsewhere), `models/` (assembled model files,
server state and logs), `prefect/` (PREFECT_HOME), `dspy-cache/`, `reports/`.

offramp's environment, read by `OfframpSettings` (pydantic-settings) afresh at each use. An unset
or empty variable means the default; a command-line option, where there is one, wins over both.
Relative paths are resolved against the current working directory.

| variable | default | what it is for |
|---|---|---|
| `OFFRAMP_HOME` | `./.offramp` | the state directory (`--home`) |
| `OFFRAMP_WAREHOUSE` | `<OFFRAMP_HOME>/warehouse.duckdb` | the DuckDB warehouse file |
| `OFFRAMP_FEATURES` | `./features` | the folder whose subfolders hold `feature.yaml` files (`--features`) |
| `OFFRAMP_RELEASES` | `./releases` | the folder of release files, `<feature>.json` (`--releases-dir`) |
| `OFFRAMP_NOTICES` | none | a YAML file of your own retirement notices (`--notices`) |
| `OFFRAMP_PLUGINS` | none | comma-separated `module:function` or `module` run in every process that calls models |
| `OFFRAMP_WAREHOUSE_SNAPSHOT` | `true` | keep `<warehouse>.snapshot.duckdb`, a copy for readers that never blocks a study (`warehouse/snapshot.py`) |
| `OFFRAMP_WAREHOUSE_WAIT_S` | `60` | how long `offramp sql` waits for a process holding the warehouse for writing; a study never gives up |
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OfframpSettings(BaseSettings):
    """offramp's `OFFRAMP_*` environment variables (the table above). Not cached: create one
    where a value is needed, so a changed variable (a test's, `--home`) is seen at once."""

    model_config = SettingsConfigDict(env_prefix="OFFRAMP_", env_ignore_empty=True)

    home: Path = Field(Path(".offramp"), description="OFFRAMP_HOME: the state directory; default ./.offramp")
    warehouse: Path | None = Field(
        None, description="OFFRAMP_WAREHOUSE: the DuckDB file; default <home>/warehouse.duckdb")
    features: Path = Field(
        Path("features"), description="OFFRAMP_FEATURES: the root of the feature folders; default ./features")
    releases: Path = Field(
        Path("releases"), description="OFFRAMP_RELEASES: the folder of release files; default ./releases")
    notices: Path | None = Field(
        None, description="OFFRAMP_NOTICES: a YAML file of the user's own retirement notices; default none")
    plugins: str = Field(
        "", description="OFFRAMP_PLUGINS: comma-separated module:function or module to load; default none")
    warehouse_snapshot: bool = Field(
        True, description="OFFRAMP_WAREHOUSE_SNAPSHOT: keep the reader snapshot beside the warehouse; default true")
    warehouse_wait_s: float = Field(
        60.0, ge=0, description="OFFRAMP_WAREHOUSE_WAIT_S: how long a reader waits for a busy warehouse; default 60")


def state_dir() -> Path:
    """The state directory (created if missing)."""
    home = OfframpSettings().home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def warehouse_path() -> Path:
    """The DuckDB file: `OFFRAMP_WAREHOUSE`, else `<state dir>/warehouse.duckdb`."""
    explicit = OfframpSettings().warehouse
    return explicit.expanduser().resolve() if explicit else state_dir() / "warehouse.duckdb"


def configure_environment() -> Path:
    """Point the libraries' own state into the state dir and keep them offline. Call before
    importing prefect/litellm/dspy. Existing values win (a user's PREFECT_API_URL, say)."""
    home = state_dir()
    defaults = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Prefect waits 20 s for its temporary server; a busy machine sometimes needs longer
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "DSPY_CACHEDIR": str(home / "dspy-cache"),
        "TQDM_DISABLE": "1",  # DSPy's optimizers draw tqdm bars; offramp reports progress itself
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return home
