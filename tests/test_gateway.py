from __future__ import annotations

import threading
import time

import pytest

from offramp.tasks.gateway.llm import Gateway, LLMRequest, redact
from offramp.tasks.gateway.prices import PriceBook
from offramp.warehouse import Warehouse
from tests import fake_provider as fp

PRICES = PriceBook({"fake/x": fp.FAKE_PRICE, "fake/slow": fp.FAKE_PRICE})


def gateway(home, **kwargs) -> Gateway:
    kwargs.setdefault("backoff_s", 0.001)
    return Gateway(Warehouse(home / "w.duckdb"), PRICES, home=home, **kwargs)


def req(text: str, model: str = "fake/x") -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": text}], settings={"temperature": 0.0, "max_tokens": 8})


def test_retryable_errors_are_retried_then_succeed(home, fake):
    fake.add("x", answer=lambda m: "ok", failures=[fp.rate_limit(), fp.server_error(), fp.connection_error()])
    [result] = gateway(home, max_retries=3).complete_many([req("a")])
    assert result.error is None and result.text == "ok"
    assert result.attempts == 4
    assert fake.models["x"].calls == 4


def test_latency_of_a_retried_call_is_the_wall_time_retries_included(home, fake):
    """A request answered on its second try after a 0.3 s backoff made its caller wait that long:
    the latency the trial's p95 is computed from (orig_latency_s) counts it, and the cache keeps it."""
    fake.add("x", answer=lambda m: "ok", failures=[fp.rate_limit()])
    gw = gateway(home, max_retries=1, backoff_s=0.4)  # the first backoff: 0.4 * (0.5 + random()) >= 0.2 s
    [result] = gw.complete_many([req("a")])
    assert result.error is None and result.attempts == 2
    assert result.orig_latency_s == pytest.approx(result.latency_s) and result.orig_latency_s >= 0.2
    [again] = gw.complete_many([req("a")])
    assert again.cache_hit and again.orig_latency_s == pytest.approx(result.orig_latency_s, rel=1e-6)


def test_non_retryable_error_is_not_retried(home, fake):
    fake.add("x", failures=[fp.bad_request()])
    [result] = gateway(home).complete_many([req("a")])
    assert result.attempts == 1
    assert result.error is not None and "BadRequestError" in result.error
    assert result.cost_usd == 0.0 and result.text is None


def test_retries_are_bounded(home, fake):
    fake.add("x", failures=[fp.timeout() for _ in range(10)])
    [result] = gateway(home, max_retries=2).complete_many([req("a")])
    assert result.attempts == 3 and "Timeout" in result.error
    assert fake.models["x"].calls == 3


@pytest.fixture()
def http_stub():
    """A slow OpenAI-compatible HTTP endpoint on loopback (the network edge, faked)."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"delay": 0.0, "status": 200, "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            state["hits"] += 1
            self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(state["delay"])
            body = json.dumps({
                "id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }).encode()
            self.send_response(state["status"])
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    server.shutdown()
    server.server_close()


def _stub_gateway(home, api_base, **kwargs):
    gw = gateway(home, **kwargs)
    gw._routes["stub/m"] = {"model": "openai/stub", "api_base": api_base, "api_key": "sk-test"}
    gw.prices.prices["stub/m"] = fp.FAKE_PRICE
    return gw


def test_timeout_over_real_http_is_retried_then_reported(home, http_stub):
    api_base, state = http_stub
    state["delay"] = 30.0  # an answer that would come far later than any machine's slowness
    [result] = _stub_gateway(home, api_base, timeout_s=0.3, max_retries=1).complete_many([req("a", "stub/m")])
    assert result.error is not None and "Timeout" in result.error
    assert result.attempts == 2 and state["hits"] == 2
    assert result.latency_s < 30  # neither attempt waited for the slow answer


def test_http_5xx_is_retried_and_4xx_is_not(home, http_stub):
    api_base, state = http_stub
    state["status"] = 503
    [result] = _stub_gateway(home, api_base, max_retries=2).complete_many([req("a", "stub/m")])
    assert result.error is not None and result.attempts == 3
    state["status"], state["hits"] = 400, 0
    [result] = _stub_gateway(home, api_base, max_retries=2).complete_many([req("b", "stub/m")])
    assert result.error is not None and result.attempts == 1 and state["hits"] == 1


def test_connection_refused_is_retried(home):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    [result] = _stub_gateway(home, f"http://127.0.0.1:{port}/v1", max_retries=2).complete_many([req("a", "stub/m")])
    assert result.error is not None and result.attempts == 3


def test_cache_hit_costs_nothing_and_keeps_original_figures(home, fake):
    fake.add("x", answer=lambda m: "cached answer", latency_s=0.05)
    gw = gateway(home)
    [first] = gw.complete_many([req("same")])
    [second] = gateway(home).complete_many([req("same")])  # a new gateway: the cache is persistent
    assert not first.cache_hit and first.cost_usd > 0
    assert second.cache_hit and second.cost_usd == 0.0 and second.attempts == 0
    assert second.text == "cached answer"
    assert second.orig_cost_usd == pytest.approx(first.cost_usd)
    assert second.orig_latency_s == pytest.approx(first.orig_latency_s)
    assert second.prompt_tokens == first.prompt_tokens
    assert fake.models["x"].calls == 1


def test_cache_key_includes_settings_and_model(home, fake):
    fake.add("x", answer=lambda m: "a")
    gw = gateway(home)
    base = req("same")
    other_settings = LLMRequest(model=base.model, messages=base.messages, settings={**base.settings, "temperature": 0.5})
    results = gw.complete_many([base, other_settings])
    assert [r.cache_hit for r in results] == [False, False]
    assert fake.models["x"].calls == 2


def test_identical_requests_in_one_batch_are_called_once(home, fake):
    fake.add("x", answer=lambda m: "a")
    results = gateway(home).complete_many([req("same"), req("same"), req("other")])
    assert fake.models["x"].calls == 2
    assert [r.cache_hit for r in results] == [False, True, False]
    assert results[1].cost_usd == 0 and results[1].orig_cost_usd == results[0].cost_usd


def test_failed_calls_are_not_cached(home, fake):
    fake.add("x", answer=lambda m: "fine", failures=[fp.bad_request()])
    gw = gateway(home)
    assert gw.complete_many([req("a")])[0].error is not None
    second = gw.complete_many([req("a")])[0]
    assert second.error is None and not second.cache_hit


def test_concurrency_is_bounded(home, fake):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def answer(messages):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return "a"

    fake.add("x", answer=answer)
    gateway(home, concurrency=3, use_cache=False).complete_many([req(str(i)) for i in range(12)])
    assert peak[0] == 3


def test_cost_uses_declared_price(home, fake):
    fake.add("x", answer=lambda m: "abc")
    [r] = gateway(home).complete_many([req("hello world")])
    expected = r.prompt_tokens * 1e-6 + r.completion_tokens * 2e-6
    assert r.cost_usd == pytest.approx(expected)


def test_secrets_are_redacted(monkeypatch):
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "sk-very-secret-123")
    monkeypatch.setenv("SOME_PROVIDER_REGION", "eu-west-long-enough")  # not a secret's name: kept
    out = redact("auth failed for key sk-very-secret-123 in eu-west-long-enough")
    assert "sk-very-secret-123" not in out
    assert out == "auth failed for key <SOME_PROVIDER_API_KEY> in eu-west-long-enough"


def test_the_cache_key_of_a_local_model_follows_its_weights(monkeypatch):
    """Swapping the weights (or the chat template) behind `local/<alias>` must not serve old answers."""
    from offramp.tasks.gateway import local_models
    from offramp.tasks.gateway.llm import LLMRequest

    def key(model="local/smollm2-135m"):
        return LLMRequest(model, [{"role": "user", "content": "hi"}], {"max_tokens": 4}).cache_key

    before, remote = key(), key("fake/x")
    spec = local_models.zoo()["smollm2-135m"]
    swapped = {**local_models.zoo(), "smollm2-135m": spec.model_copy(update={"sha256": "0" * 64})}
    local_models.served_identity.cache_clear()
    monkeypatch.setattr(local_models, "zoo", lambda: swapped)
    try:
        assert key() != before and key("fake/x") == remote
    finally:
        local_models.served_identity.cache_clear()


QUIET_SCRIPT = """
import sys
from pathlib import Path
from tests import fake_provider as fp
from offramp.search_spaces.schema import Price
from offramp.tasks.gateway.llm import Gateway, LLMRequest
from offramp.tasks.gateway.prices import PriceBook

provider = fp.install()
provider.add("bad", failures=[fp.bad_request("fake/bad")])
prices = PriceBook({"fake/bad": fp.FAKE_PRICE, "openai/x": Price(input_cost_per_token=1e-6, output_cost_per_token=1e-6)})
gateway = Gateway(None, prices, home=Path(sys.argv[1]), max_retries=0, timeout_s=5)
results = gateway.complete_many([
    LLMRequest("fake/bad", [{"role": "user", "content": "hi"}], {}),
    # a real HTTP client call to a closed port: connection refused
    LLMRequest("openai/x", [{"role": "user", "content": "hi"}], {"api_base": "http://127.0.0.1:1", "api_key": "sk-test",
                                                                   "max_retries": 0}),
])
for result in results:
    print("ERROR", (result.error or "none").splitlines()[0][:60])
"""


def test_a_failed_call_prints_nothing_from_litellm_on_stdout(tmp_path):
    """litellm prints a "Give Feedback / Get Help" banner to stdout on every provider error; the
    gateway turns it off, so a failed call shows only as its recorded error."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    run = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ERROR BadRequestError") and lines[1] != "ERROR none", run.stdout
    assert "Give Feedback" not in run.stdout + run.stderr and "LiteLLM.Info" not in run.stdout + run.stderr
