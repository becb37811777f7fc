from __future__ import annotations

import os
from pathlib import Path

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# as the CLI sets it (configure_environment), for the tests' own study processes too: on a loaded
# machine Prefect's temporary server can take longer than its 20 s default to start
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BANK = ROOT / "features" / "bank-support-routing"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state dir (and warehouse) per test."""
    monkeypatch.setenv("OFFRAMP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OFFRAMP_WAREHOUSE", raising=False)
    return tmp_path / "home"


@pytest.fixture()
def fake():
    from tests import fake_provider

    provider = fake_provider.install()
    provider.models.clear()
    return provider
