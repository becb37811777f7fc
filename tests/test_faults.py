"""Errors by kind, Retry-After and the circuit breaker, against the fake OpenAI-compatible server
over real HTTP (litellm's real client: `openai/<name>` with the endpoint's `api_base`)."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest

from offramp.search_spaces.schema import Price
from offramp.tasks.gateway.faults import CircuitBreaker, retry_after_s
from offramp.tasks.gateway.llm import Gateway, LLMRequest
from offramp.tasks.gateway.prices import PriceBook
from tests.fake_openai import Endpoint, FakeOpenAI, Model

KEY = "sk-fake-faults-0123456789"
PRICE = Price(input_cost_per_token=1e-6, output_cost_per_token=2e-6)


@pytest.fixture()
def server():
    endpoint = Endpoint("a", {"m": Model("m")}, api_key=KEY, retry_after_s=0.6)
    with FakeOpenAI([endpoint]) as fake:
        yield fake, endpoint


def gateway(tmp_path: Path, **kwargs) -> Gateway:
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("max_retries", 3)
    return Gateway(None, PriceBook({"openai/m": PRICE}), home=tmp_path, **kwargs)


def request(endpoint: Endpoint, text: str = "hi") -> LLMRequest:
    return LLMRequest("openai/m", [{"role": "user", "content": text}],
                      {"max_tokens": 8, "api_base": endpoint.url, "api_key": KEY})


@pytest.mark.parametrize("fault", ["400", "401", "404"])
def test_a_request_that_cannot_succeed_is_sent_once(server, tmp_path, fault):
    """A bad request, a refused key, an unknown model: one request at the server, no retries."""
    fake, endpoint = server
    endpoint.script = [fault] * 5
    result = gateway(tmp_path)._call(request(endpoint))
    assert result.error is not None and result.text is None and result.attempts == 1
    assert len(fake.requests) == 1, fake.requests


def test_a_429_waits_what_retry_after_asks_then_succeeds(server, tmp_path):
    """The server says Retry-After: 0.6 s; the backoff alone would wait ~0.01 s."""
    fake, endpoint = server
    endpoint.script = ["429"]
    result = gateway(tmp_path)._call(request(endpoint))
    assert result.error is None and result.text == "hi" and result.attempts == 2
    (first, *_), (second, *_) = fake.requests
    assert second - first >= 0.6, second - first


def test_a_retry_after_beyond_the_cap_fails_the_call_at_once(server, tmp_path):
    fake, endpoint = server
    endpoint.script = ["429"] * 5
    started = time.monotonic()
    result = gateway(tmp_path, max_retry_after_s=0.3)._call(request(endpoint))
    assert result.error is not None and result.error.startswith("RateLimitError") and result.attempts == 1
    assert len(fake.requests) == 1 and time.monotonic() - started < 0.6


def test_retry_after_as_seconds_or_an_http_date():
    class Exc(Exception):
        def __init__(self, value):
            self.litellm_response_headers = {"retry-after": value}

    assert retry_after_s(Exc("2.5")) == 2.5
    now = time.time()
    assert retry_after_s(Exc(email.utils.formatdate(now + 30, usegmt=True)), now=now) == pytest.approx(30, abs=1)
    assert retry_after_s(Exc("soon")) is None and retry_after_s(ValueError()) is None


@pytest.mark.parametrize("fault", ["malformed", "drop", "empty"])
def test_a_broken_answer_is_an_error_never_an_answer(server, tmp_path, fault):
    """A body that is not JSON, a dropped connection, an empty 200: retried, and if it never heals,
    an error (nothing for the metric to score)."""
    fake, endpoint = server
    endpoint.script = [fault] * 4
    result = gateway(tmp_path)._call(request(endpoint))
    assert result.text is None and result.error is not None and result.attempts == 4
    assert len(fake.requests) == 4


def test_the_breaker_stops_hammering_an_endpoint_that_is_down(server, tmp_path):
    """30 calls to a down endpoint, 3 attempts each, would be 90 requests; the breaker opens after
    K=3 calls failed and the rest fail at once, without a request, as EndpointDown."""
    fake, endpoint = server
    endpoint.down = True
    gw = gateway(tmp_path, concurrency=4, max_retries=2, breaker=CircuitBreaker(failures=3, cooldown_s=60))
    results = gw.complete_many([request(endpoint, f"q{i}") for i in range(30)])
    attempts = 2 + 1
    assert len(fake.requests) <= (3 + 4 - 1) * attempts, len(fake.requests)  # K calls, plus those already in flight
    down = [r for r in results if r.error and r.error.startswith("EndpointDown")]
    assert len(down) >= 30 - (3 + 4 - 1)
    assert all(r.attempts == 0 and r.cost_usd == 0 and endpoint.url in r.error for r in down if r.attempts == 0)
    assert set(gw.breaker.down()) == {endpoint.url}


def test_a_probe_after_the_cooldown_closes_the_breaker(server, tmp_path):
    fake, endpoint = server
    endpoint.down = True
    gw = gateway(tmp_path, concurrency=1, max_retries=0, breaker=CircuitBreaker(failures=2, cooldown_s=0.3))
    gw.complete_many([request(endpoint, f"q{i}") for i in range(5)])
    assert len(fake.requests) == 2 and gw.breaker.down()
    endpoint.down = False
    time.sleep(0.35)
    results = gw.complete_many([request(endpoint, f"r{i}") for i in range(3)])
    assert [r.error for r in results] == [None, None, None] and not gw.breaker.down()
