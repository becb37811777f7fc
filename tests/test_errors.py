"""How offramp fails: one line and exit 2 for what the user can fix (an OfframpError, a usage
mistake), a traceback and exit 1 for a bug, the spend cap as a typed refusal, and no module
named like the standard library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT

OFFRAMP = [sys.executable, "-m", "offramp.flows.cli"]


def offramp(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([*OFFRAMP, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


FUTURE = 1000  # a schema version no offramp has yet (not the next number: migrations keep being added)


@pytest.fixture()
def newer_warehouse(home: Path) -> Path:
    """A warehouse written by a newer offramp: schema_migrations holds a version this one lacks."""
    from offramp.warehouse import Warehouse

    wh = Warehouse(home / "warehouse.duckdb")
    wh.ensure_schema()
    with duckdb.connect(str(wh.path)) as con:
        con.execute("insert into schema_migrations (version, name) values ($v, 'from_the_future.sql')", {"v": FUTURE})
    return wh.path


def test_an_offramp_error_is_one_line_and_exit_2(home, newer_warehouse):
    result = offramp("notify", "gpt-4o", "--withdraw", home=home)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the warehouse has schema versions [{FUTURE}] that this offramp does not know")


def test_debug_shows_the_traceback_of_an_offramp_error(home, newer_warehouse):
    result = offramp("--debug", "notify", "gpt-4o", "--withdraw", home=home)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert f"offramp.errors.SchemaError: the warehouse has schema versions [{FUTURE}]" in result.stderr


BUG = """
import sys
from pathlib import Path

from offramp.flows import cli
from offramp.warehouse import db

db.QUERIES = Path(sys.argv[1])  # offramp's own query files gone missing: a bug, not the user's input
sys.argv = ["offramp", *sys.argv[2:]]
cli.main()
"""


def test_anything_else_is_a_bug_with_a_traceback_and_exit_1(home, tmp_path):
    """A FileNotFoundError of an internal .sql file is not the user's to fix: it must not be
    printed as `error: ...` with exit 2 (it was, while main() caught every FileNotFoundError)."""
    from offramp.warehouse import Warehouse

    Warehouse(home / "warehouse.duckdb").ensure_schema()
    env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run([sys.executable, "-c", BUG, str(tmp_path / "no-queries"), "report", "some-study"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "FileNotFoundError" in result.stderr and "no-queries" in result.stderr
    assert not result.stderr.startswith("error:")


def test_a_bad_option_value_names_the_option_not_a_pydantic_model(home, tmp_path):
    from tests.helpers import make_feature

    root = make_feature(tmp_path / "feature")
    result = offramp("migrate", str(root), "--concurrency", "1000", home=home)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: offramp migrate: option --concurrency (field `concurrency`): Input should be less than or equal to 256"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["sql"], "Missing argument 'query'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        ([], None),
    ],
    ids=["unknown-option", "missing-argument", "unknown-command", "bare"],
)
def test_usage_mistakes_exit_2_with_clicks_short_message(home, args, named):
    result = offramp(*args, home=home)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    if named is None:  # bare `offramp`: the help on stdout, as click does standalone (exit 2)
        assert result.stderr == ""
        assert result.stdout.lstrip().startswith("Usage:") and "migrate" in result.stdout
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, result.stderr  # usage, `Try ... --help`, the error
    assert lines[0].startswith("Usage:") and "--help" in lines[1]
    assert lines[2].startswith(f"Error: {named}")


# -- the spend cap: a typed refusal ----------------------------------------------------------

def _bridge_call(gateway) -> None:
    """One call as DSPy makes it: through the `offramp` litellm provider into the gateway."""
    from offramp.tasks.gateway import dspy_bridge

    with dspy_bridge.session(gateway, study_id=None, trial_id=None, purpose="optimize") as current:
        dspy_bridge._GatewayProvider().completion(model=f"{current.id}/fake/x", messages=[{"role": "user", "content": "hi"}])


def _gateway(home, **kwargs):
    from offramp.tasks.gateway.llm import Gateway
    from offramp.tasks.gateway.prices import PriceBook
    from tests import fake_provider as fp

    return Gateway(None, PriceBook({"fake/x": fp.FAKE_PRICE}), home=home, **kwargs)


def test_the_spend_caps_refusal_is_flagged_and_raised_as_budget_exceeded(home, fake):
    from offramp.errors import BudgetExceeded
    from offramp.tasks.gateway.llm import Budget, LLMRequest

    fake.add("x", answer=lambda messages: "ok")
    gateway = _gateway(home, budget=Budget(max_usd=1e-9))
    [result] = gateway.complete_many([LLMRequest(model="fake/x", messages=[{"role": "user", "content": "hi"}], settings={})])
    assert result.refused and result.cost_usd == 0.0
    assert result.error.startswith("BudgetExceeded: spend cap")  # the text kept for calls.error
    with pytest.raises(BudgetExceeded, match="spend cap"):
        _bridge_call(gateway)
    assert fake.models["x"].calls == 0


def test_a_provider_error_named_like_a_budget_is_a_failed_call_not_our_cap(home, fake, monkeypatch):
    """litellm's own global budget (`litellm.max_budget`, set by an application) fails a call with
    `BudgetExceededError: ...`. offramp's cap did not refuse it: the call failed. Matching the
    error's text took it for offramp's spend cap."""
    import litellm

    from offramp.errors import ProviderCallFailed

    fake.add("x", answer=lambda messages: "ok")
    monkeypatch.setattr(litellm, "max_budget", 0.5)
    monkeypatch.setattr(litellm, "_current_cost", 1.0)
    gateway = _gateway(home)
    with pytest.raises(ProviderCallFailed, match="^BudgetExceededError: Budget has been exceeded"):
        _bridge_call(gateway)


# -- module names ----------------------------------------------------------------------------

LAYERS = ("flows", "tasks", "search_spaces", "warehouse", "offramp")


def stdlib_shadows(paths: list[str]) -> list[str]:
    """The .py files (repository-relative paths) named like a standard-library module, or inside
    a package folder so named: with their folder on sys.path (`python tasks/compare.py`) they
    shadow it, e.g. tasks/select.py and `select`, which asyncio imports."""
    def names(path: str) -> list[str]:
        parts = Path(path).parts
        return [*parts[1:-1], Path(path).stem]  # below the layer folder: packages, then the module

    return sorted(
        p for p in paths
        if p.endswith(".py") and p.split("/")[0] in LAYERS and any(n in sys.stdlib_module_names for n in names(p))
    )


def test_no_module_is_named_like_a_standard_library_module():
    paths = [str(p.relative_to(ROOT)) for layer in LAYERS for p in (ROOT / layer).rglob("*.py")]
    assert len(paths) > 20  # the walk found the package
    assert stdlib_shadows(paths) == []


def test_the_stdlib_name_check_catches_a_shadowing_module():
    assert stdlib_shadows(["tasks/select.py", "tasks/evidence/policy.py", "warehouse/__init__.py"]) == ["tasks/select.py"]
    assert stdlib_shadows(["tasks/email/__init__.py", "tests/select.py"]) == ["tasks/email/__init__.py"]
