"""Where offramp keeps its state: one directory, never scattered in the user's home.

`OFFRAMP_HOME` names it; the default is `.offramp/` in the current working directory. Inside:
`warehouse.duckdb` (unless `OFFRAMP_WAREHOUSE` points elsewhere), `models/` (assembled model files,
server state and logs), `prefect/` (PREFECT_HOME), `dspy-cache/`, `reports/`.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """The state directory (created if missing)."""
    home = Path(os.environ.get("OFFRAMP_HOME") or ".offramp").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def warehouse_path() -> Path:
    """The DuckDB file: `OFFRAMP_WAREHOUSE`, else `<state dir>/warehouse.duckdb`."""
    explicit = os.environ.get("OFFRAMP_WAREHOUSE")
    return Path(explicit).expanduser().resolve() if explicit else state_dir() / "warehouse.duckdb"


def configure_environment() -> Path:
    """Point the libraries' own state into the state dir and keep them offline. Call before
    importing prefect/litellm/dspy. Existing values win (a user's PREFECT_API_URL, say)."""
    home = state_dir()
    defaults = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DSPY_CACHEDIR": str(home / "dspy-cache"),
        "TQDM_DISABLE": "1",  # DSPy's optimizers draw tqdm bars; offramp reports progress itself
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return home
