"""Declared models and endpoints (issue 10, part 1): a space names where each model is served and
which variable holds its key; the cache key includes the endpoint; prices are trusted only when
declared or real; a preflight call per endpoint leaves out what cannot work, in one line, with the fix.

Against `tests/fake_openai.py`: two endpoints (two accounts), real HTTP, distinct keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from offramp.errors import SpaceError, UserError
from offramp.search_spaces.schema import ModelEntry, Price, load_space
from offramp.tasks.gateway.llm import Gateway, LLMRequest
from offramp.tasks.gateway.prices import PriceBook
from offramp.warehouse import Warehouse
from tests.fake_openai import Endpoint, FakeOpenAI, Model
from tests.helpers import make_feature, oracle

KEY_A, KEY_B = "sk-acct-a-7f3e9d1c5b", "sk-acct-b-2a8c4e6f0d"
PRICE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


@pytest.fixture()
def server():
    """Two accounts: `a` serves old and m1; `b` serves m1 and m2. Each has its own key."""
    endpoints = [
        Endpoint("a", {"old": Model("old", answer=lambda m: "alpha"), "m1": Model("m1", answer=oracle)}, api_key=KEY_A),
        Endpoint("b", {"m1": Model("m1", answer=oracle), "m2": Model("m2", answer=oracle)}, api_key=KEY_B),
    ]
    with FakeOpenAI(endpoints) as fake:
        yield fake


@pytest.fixture()
def keys(monkeypatch):
    monkeypatch.setenv("KEY_A", KEY_A)
    monkeypatch.setenv("KEY_B", KEY_B)
    monkeypatch.setenv("KEY_WRONG", "sk-wrong-0000000000")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def entry(server: FakeOpenAI, endpoint: str, model: str, name: str, key_env: str = "", **extra) -> dict:
    e = {"id": f"openai/{model}", "name": name, "api_base": server.endpoints[endpoint].url, "price": PRICE, **extra}
    if key_env:
        e["api_key_env"] = key_env
    return e


def gateway(tmp_path: Path, endpoints: dict[str, ModelEntry], **kwargs) -> Gateway:
    prices = PriceBook({"openai/m1": Price(**PRICE)}, endpoints)  # for the undeclared `openai/m1`
    return Gateway(Warehouse(tmp_path / "wh.duckdb"), prices, home=tmp_path, backoff_s=0.01, **kwargs)


def requests_to(fake: FakeOpenAI, endpoint: str) -> int:
    """Every request an endpoint answered or refused (billed answers and error statuses)."""
    return sum(1 for e, _, what in fake.events if e == endpoint)


ASK = [{"role": "user", "content": "message about apple"}]


# ------------------------------------------------------------------------------ declaring models
def test_a_space_declares_models_by_name_and_bad_entries_name_file_and_field(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({"name": "s", "models": [
        "gpt-4o-mini",
        {"id": "openai/m1", "name": "m1-a", "api_base": "http://127.0.0.1:1/v1", "api_key_env": "KEY_A", "rpm": 5},
        {"id": "openai/m1", "name": "m1-b", "api_base": "http://127.0.0.1:2/v1", "max_concurrency": 2},
    ]}))
    loaded = load_space(space)
    assert loaded.models == ["gpt-4o-mini", "m1-a", "m1-b"]
    assert loaded.endpoints["m1-b"].id == "openai/m1" and loaded.endpoints["m1-a"].rpm == 5
    assert load_space(space).model_dump() == type(loaded).model_validate(loaded.model_dump(mode="json")).model_dump()

    space.write_text(yaml.safe_dump({"name": "s", "models": [{"id": "openai/m1", "api_base": "ftp://x", "rpm": 0}]}))
    with pytest.raises(SpaceError, match="invalid search space") as bad:
        load_space(space)
    assert str(space) in str(bad.value) and "models[0]" in str(bad.value)
    assert "`api_base`" in str(bad.value) and "`rpm`" in str(bad.value)

    same = {"id": "openai/m1", "api_base": "http://127.0.0.1:1/v1"}
    space.write_text(yaml.safe_dump({"name": "s", "models": [same, {**same, "api_base": "http://127.0.0.1:2/v1"}]}))
    with pytest.raises(SpaceError, match="give each entry its own `name`"):
        load_space(space)


# ------------------------------------------------------------------------------ the cache key
def test_two_endpoints_serving_one_model_are_two_cache_entries(tmp_path, server, keys):
    endpoints = {
        "m1-a": ModelEntry.model_validate(entry(server, "a", "m1", "m1-a", "KEY_A")),
        "m1-b": ModelEntry.model_validate(entry(server, "b", "m1", "m1-b", "KEY_B")),
    }
    gw = gateway(tmp_path, endpoints)
    requests = [LLMRequest(model=m, messages=ASK, settings={"max_tokens": 8}) for m in ("m1-a", "m1-b")]
    first = gw.complete_many(requests)
    assert [r.error for r in first] == [None, None] and not any(r.cache_hit for r in first)
    assert requests_to(server, "a") == 1 and requests_to(server, "b") == 1  # each account answered its own
    assert gw.stamp(requests[0]).cache_key != gw.stamp(requests[1]).cache_key
    again = gw.complete_many(requests)
    assert all(r.cache_hit for r in again) and requests_to(server, "a") + requests_to(server, "b") == 2


def test_an_endpoint_moved_to_a_dead_port_gets_no_cache_hits(tmp_path, server, keys):
    served = ModelEntry.model_validate(entry(server, "a", "m1", "m1", "KEY_A"))
    request = LLMRequest(model="m1", messages=ASK, settings={"max_tokens": 8})
    [paid] = gateway(tmp_path, {"m1": served}).complete_many([request])
    assert paid.error is None and not paid.cache_hit
    dead = served.model_copy(update={"api_base": "http://127.0.0.1:9/v1"})
    [moved] = gateway(tmp_path, {"m1": dead}, max_retries=0).complete_many([request])
    assert not moved.cache_hit and moved.error is not None  # the old answer is not replayed as the dead server's


def test_the_global_api_base_of_an_undeclared_model_is_part_of_its_cache_key(tmp_path, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    request = LLMRequest(model="openai/m1", messages=ASK, settings={"max_tokens": 8})
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    plain = gateway(tmp_path, {}).stamp(request)
    assert plain.served is None and plain.cache_key == request.cache_key  # no api_base: today's key, caches stay valid
    monkeypatch.setenv("OPENAI_API_BASE", server.endpoints["a"].url)
    [paid] = gateway(tmp_path, {}).complete_many([request])
    assert paid.error is None and requests_to(server, "a") == 1
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    [moved] = gateway(tmp_path, {}, max_retries=0).complete_many([request])
    assert not moved.cache_hit and moved.error is not None
    assert "sk-" not in str(gateway(tmp_path, {}).stamp(request).served)  # litellm's dynamic key is never keyed


# ------------------------------------------------------------------------------ prices
def test_an_unknown_id_is_not_priced_by_litellms_generic_zero_entry():
    import litellm

    assert litellm.get_model_info("openai/gpt-9-ultra")["input_cost_per_token"] == 0  # what litellm 1.106.2 does
    with pytest.raises(UserError, match="no trustworthy price"):
        PriceBook().check("openai/gpt-9-ultra")
    declared = PriceBook({"openai/gpt-9-ultra": Price(input_cost_per_token=0, output_cost_per_token=0)})
    declared.check("openai/gpt-9-ultra")  # a declared 0 is a price (self-hosted)
    PriceBook().check("gpt-4o-mini")  # a real entry of the map


def test_a_price_keyed_by_a_bare_id_applies_to_the_prefixed_id_and_the_reverse():
    bare = PriceBook({"gpt-9-ultra": Price(**PRICE), "gpt-4o-mini": Price(input_cost_per_token=1.0, output_cost_per_token=1.0)})
    bare.check("openai/gpt-9-ultra")
    assert bare.cost("openai/gpt-9-ultra", 1000, 1000) == pytest.approx(1000 * 1e-6 + 1000 * 2e-6)
    assert bare.cost("openai/gpt-4o-mini", 1, 1) == 2.0  # the declared price, never silently litellm's
    prefixed = PriceBook({"openai/gpt-4o-mini": Price(input_cost_per_token=1.0, output_cost_per_token=1.0)})
    assert prefixed.cost("gpt-4o-mini", 1, 1) == 2.0
    assert prefixed.source("gpt-4o-mini") == "declared" and PriceBook().source("gpt-4o-mini") == "litellm's price map"


def _space(tmp_path: Path, models: list, prices: dict | None = None) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "models": models, "prices": prices or {}}))
    return path


def test_preflight_refuses_an_unpriced_unknown_id_and_accepts_it_with_a_declared_price(tmp_path, keys):
    from offramp.tasks.study.prepare import StudyInputs, preflight

    feature = make_feature(tmp_path / "f", incumbent="gpt-4o-mini")
    with pytest.raises(UserError, match="'openai/gpt-9-ultra' has no trustworthy price"):
        preflight(StudyInputs(str(feature), space=str(_space(tmp_path, ["openai/gpt-9-ultra"]))))
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump({"gpt-9-ultra": PRICE}))  # keyed by the bare id
    prepared = preflight(StudyInputs(str(feature), space=str(_space(tmp_path, ["openai/gpt-9-ultra"])),
                                     prices_file=str(prices)))
    assert prepared.price_sources == {"gpt-4o-mini": "litellm's price map", "openai/gpt-9-ultra": f"--prices {prices}"}


def test_a_declared_key_variable_that_is_not_set_is_a_user_error_naming_file_model_and_variable(tmp_path, server, keys):
    from offramp.tasks.study.prepare import StudyInputs, preflight

    feature = make_feature(tmp_path / "f", incumbent="gpt-4o-mini")
    space = _space(tmp_path, [entry(server, "a", "m1", "m1-a", "NO_SUCH_KEY_VAR")])
    with pytest.raises(UserError, match="is not set") as refused:
        preflight(StudyInputs(str(feature), space=str(space)))
    assert str(space) in str(refused.value) and "m1-a" in str(refused.value) and "NO_SUCH_KEY_VAR" in str(refused.value)


def test_migrate_refuses_an_unpriced_unknown_id_with_exit_2(tmp_path, home):
    from tests.test_cli import offramp

    feature = make_feature(tmp_path / "f", incumbent="gpt-4o-mini")
    result = offramp("migrate", str(feature), "--space", str(_space(tmp_path, ["openai/gpt-9-ultra"])), home=home)
    assert result.returncode == 2, result.stderr
    assert "openai/gpt-9-ultra" in result.stderr and "no trustworthy price" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------ the preflight call
def test_preflight_calls_leave_out_a_wrong_key_and_an_unroutable_id_in_one_line_each(tmp_path, server, keys):
    from offramp.search_spaces.schema import Config
    from offramp.tasks.feature.spec import load_feature, split_examples
    from offramp.tasks.study.probe import check_endpoints
    from offramp.warehouse import records

    feature = load_feature(make_feature(tmp_path / "f"))
    declared = {
        "old": entry(server, "a", "old", "old", "KEY_A"),
        "m1-b": entry(server, "b", "m1", "m1-b", "KEY_B"),
        "m2-wrong-key": entry(server, "b", "m2", "m2-wrong-key", "KEY_WRONG"),
        "m2-nowhere": entry(server, "b", "m2", "m2-nowhere", "KEY_B", api_base="http://127.0.0.1:9/v1"),
        "claude-v2": {"id": "claude-v2", "name": "claude-v2", "price": PRICE},
    }
    endpoints = {k: ModelEntry.model_validate(v) for k, v in declared.items()}
    wh = Warehouse(tmp_path / "wh.duckdb")
    gw = gateway(tmp_path, endpoints, max_retries=0)
    inc = feature.spec.incumbent
    incumbent = Config(model="old", instructions=inc.instructions, settings=inc.settings)
    lines: list[str] = []

    class Log:
        def warning(self, message, *args):
            lines.append(message % args)

    left_out = check_endpoints(
        gw, wh, feature=feature, incumbent=incumbent, candidates=["m1-b", "m2-wrong-key", "m2-nowhere", "claude-v2"],
        optimizers=[], train=split_examples(feature, seed=3).train, seed=3, study_id="s1", price_sources={}, log=Log(),
    )
    assert set(left_out) == {"m2-wrong-key", "m2-nowhere", "claude-v2"}
    assert "check KEY_WRONG" in left_out["m2-wrong-key"]
    assert left_out["m2-nowhere"] == "check api_base http://127.0.0.1:9/v1: connection refused"
    assert "litellm cannot route 'claude-v2'" in left_out["claude-v2"] and "anthropic/claude-2" in left_out["claude-v2"]
    assert sum(1 for e, _, what in server.events if e == "b" and what == "401") == 1  # the wrong key: one request, no retries
    assert len([x for x in lines if "left out" in x]) == 3  # once each
    rows = {r["model"]: r for r in records.study_models(wh, "s1")}
    assert rows["m1-b"]["preflight"] == "ok" and rows["m2-wrong-key"]["preflight"] == "left_out"
    with wh.reader() as con:
        purposes = con.execute("select model, purpose, error is null from calls where study_id = 's1' order by model").fetchall()
    assert ("m1-b", "preflight", True) in purposes and ("old", "preflight", True) in purposes
    assert ("claude-v2", "preflight", True) not in purposes  # left out for free: no call

    wrong_incumbent = incumbent.model_copy(update={"model": "m2-wrong-key"})
    with pytest.raises(UserError, match="the incumbent 'm2-wrong-key' failed its preflight call: check KEY_WRONG"):
        check_endpoints(gw, wh, feature=feature, incumbent=wrong_incumbent, candidates=["m1-b"], optimizers=[],
                        train=split_examples(feature, seed=3).train, seed=3, study_id="s2", price_sources={}, log=Log())
    with pytest.raises(UserError, match="every candidate model failed its preflight call"):
        check_endpoints(gw, wh, feature=feature, incumbent=incumbent, candidates=["m2-wrong-key", "claude-v2"],
                        optimizers=[], train=split_examples(feature, seed=3).train, seed=3, study_id="s3",
                        price_sources={}, log=Log())


def test_a_missing_provider_key_is_left_out_without_a_call(tmp_path, keys):
    from offramp.tasks.study.probe import free_check

    assert free_check("openai/gpt-4o-mini", None) == "set OPENAI_API_KEY (the key of 'openai/gpt-4o-mini', read from the environment)"


# ------------------------------------------------------------------------------ a whole study
@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_a_study_on_two_accounts_completes_without_the_models_left_out_and_never_records_a_key(
    harness, home, server, keys, tmp_path, capsys, caplog
):
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from offramp.warehouse import records, warehouse_path

    incumbent = entry(server, "a", "old", "old", "KEY_A")
    feature = make_feature(tmp_path / "f", extra={"incumbent": {"model": incumbent, "instructions": "Route it.",
                                                                "settings": {"max_tokens": 8}}})
    space = _space(tmp_path, [
        entry(server, "a", "m1", "m1-a", "KEY_A"),
        entry(server, "b", "m1", "m1-b", "KEY_B"),
        entry(server, "b", "m2", "m2-wrong-key", "KEY_WRONG"),
        {"id": "claude-v2", "price": PRICE},
    ])
    summary = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", max_trials=4))
    assert summary.status == "completed"
    wh = Warehouse(warehouse_path())
    with wh.reader() as con:
        trial_models = {r[0] for r in con.execute("select distinct model from trials where study_id = ?", [summary.study_id]).fetchall()}
        cached = {r[0] for r in con.execute("select distinct model from llm_cache").fetchall()}
    assert trial_models == {"old", "m1-a", "m1-b"}  # both accounts searched, under their names; the left out never
    assert {"m1-a", "m1-b"} <= cached
    assert sum(1 for e, _, what in server.events if e == "b" and what == "401") == 1
    rows = {r["model"]: r for r in records.study_models(wh, summary.study_id)}
    assert {m for m, r in rows.items() if r["preflight"] == "left_out"} == {"m2-wrong-key", "claude-v2"}
    assert rows["m1-a"]["price_source"] == "declared with the model" and rows["old"]["role"] == "incumbent"
    assert summary.selection["left_out"].keys() == {"m2-wrong-key", "claude-v2"}
    text = markdown(load_report(wh, summary.study_id))
    assert "left out by the preflight call" in text and "check KEY_WRONG" in text and "litellm cannot route" in text
    assert "price from declared with the model" in text

    out = capsys.readouterr()
    logs = caplog.text
    files = [warehouse_path(), *Path(home).rglob("*.db"), *Path(home).rglob("*.html"), *Path(home).rglob("*.md"),
             *Path(home).rglob("*.log")]
    for key in (KEY_A, KEY_B):
        assert key not in out.out + out.err + logs
        for path in files:
            assert key.encode() not in path.read_bytes(), path
    assert json.dumps(summary.selection).find("sk-") == -1


def test_a_declared_incumbent_is_watched_and_migrated_under_its_litellm_id(tmp_path, keys):
    from offramp.tasks.study.prepare import StudyInputs, preflight
    from offramp.tasks.watch.registry import discover

    declared = {"id": "gpt-4o-mini", "name": "router-prod", "api_key_env": "KEY_A"}
    root = tmp_path / "features"
    make_feature(root / "f", extra={"incumbent": {"model": declared, "instructions": "Route it."}})
    [registered], problems = discover(root, releases=tmp_path / "releases")
    assert not problems and registered.incumbent_model == "gpt-4o-mini"
    space = _space(tmp_path, ["openai/gpt-4o"])
    prepared = preflight(StudyInputs(str(root / "f"), space=str(space), deprecated_model="openai/gpt-4o-mini"))
    assert prepared.endpoints["router-prod"].api_key_env == "KEY_A"
    assert KEY_A not in json.dumps({k: v.model_dump() for k, v in prepared.endpoints.items()})  # the name travels, not the key
    with pytest.raises(UserError, match="does not use it"):
        preflight(StudyInputs(str(root / "f"), space=str(space), deprecated_model="openai/gpt-4o"))


# ------------------------------------------------------------------------------ limits
def test_max_concurrency_bounds_the_calls_in_flight_on_an_endpoint(tmp_path, keys):
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def slow_answer(messages):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return "alpha"

    with FakeOpenAI([Endpoint("a", {"m1": Model("m1", answer=slow_answer)}, api_key=KEY_A)]) as fake:
        limited = ModelEntry.model_validate({**entry(fake, "a", "m1", "m1", "KEY_A"), "max_concurrency": 1})
        requests = [LLMRequest(model="m1", messages=[{"role": "user", "content": f"q{i}"}], settings={}) for i in range(6)]
        results = gateway(tmp_path, {"m1": limited}, concurrency=6, use_cache=False).complete_many(requests)
    assert all(r.error is None for r in results) and state["max"] == 1


def test_rpm_and_tpm_hold_a_request_until_the_minute_has_room(monkeypatch):
    from offramp.tasks.gateway import limits

    clock = {"t": 1000.0}
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(limits.time, "sleep", lambda s: clock.__setitem__("t", clock["t"] + s))
    window = limits._Window(ModelEntry(id="openai/m", rpm=2, tpm=100))
    window.admit(10)
    window.admit(10)
    window.admit(10)  # the third request of the minute waits for the first to leave it
    assert clock["t"] == pytest.approx(1060.0, abs=1.0)
    window = limits._Window(ModelEntry(id="openai/m", tpm=100))
    clock["t"] = 2000.0
    window.admit(80)
    window.admit(30)  # 110 tokens > 100 per minute: waits
    assert clock["t"] == pytest.approx(2060.0, abs=1.0)


# ------------------------------------------------------------------------------ as a user runs it
def test_offramp_migrate_reports_a_left_out_model_once_in_one_line_and_never_prints_a_key(tmp_path, server):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    feature = make_feature(tmp_path / "f", extra={"incumbent": {
        "model": entry(server, "a", "old", "old", "KEY_A"), "instructions": "Route it.", "settings": {"max_tokens": 8}}})
    space = _space(tmp_path, [entry(server, "b", "m1", "m1-b", "KEY_B"), entry(server, "b", "m2", "m2-wrong-key", "KEY_WRONG")])
    env = {**os.environ, "OFFRAMP_HOME": str(tmp_path / "home"), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "KEY_A": KEY_A, "KEY_B": KEY_B, "KEY_WRONG": "sk-wrong-0000000000"}
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run([sys.executable, "-m", "offramp.flows.cli", "migrate", str(feature), "--space", str(space),
                             "--max-trials", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    [line] = [x for x in output.splitlines() if "m2-wrong-key left out" in x]
    assert "check KEY_WRONG" in line and "refused the key" in line
    assert "Traceback" not in output
    for key in (KEY_A, KEY_B, "sk-wrong-0000000000"):
        assert key not in output
        for path in (tmp_path / "home").rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path

    # the incumbent's key revoked, on a fresh state dir (a cached preflight answer proves the endpoint, not the key)
    env.update(KEY_A="sk-revoked-00000000", OFFRAMP_HOME=str(tmp_path / "home2"))
    result = subprocess.run([sys.executable, "-m", "offramp.flows.cli", "migrate", str(feature), "--space", str(space),
                             "--max-trials", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    [error] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "the incumbent 'old' failed its preflight call: check KEY_A" in error
    assert "Traceback" not in result.stderr
