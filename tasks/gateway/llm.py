"""The LLM gateway: every model call of offramp goes through here.

litellm makes the call (any provider; `local/<alias>` resolves to the bundled local model server),
with a timeout, bounded concurrency (a thread pool), and retries with exponential backoff and
jitter for retryable errors only (timeouts, 429 after its Retry-After, 5xx, connection errors,
malformed answers) and a circuit breaker per endpoint (`faults.py`). A persistent response
cache in the warehouse is keyed by (model, messages, settings): a repeated request costs nothing,
is reported as a cache hit, and keeps the original call's cost and latency so that a config's
objectives do not depend on what happened to be cached. A study's gateway journals every request
(its worst case, before it is sent) and every paid answer (before it is used) in the write-ahead
ledger (`journal.py`), so a kill at any moment loses no billed money from the record.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from tenacity import Retrying, retry_if_exception, stop_any

from offramp import stopping
from offramp.errors import BudgetExceeded, EndpointDown
from offramp.search_spaces.schema import ModelEntry, Price
from offramp.tasks.gateway import faults, local_models, tuned
from offramp.tasks.gateway.budget import Budget
from offramp.tasks.gateway.faults import is_retryable
from offramp.tasks.gateway.journal import Journal
from offramp.tasks.gateway.limits import EndpointLimits
from offramp.tasks.gateway.models import LOCAL_PREFIX, route, served_identity
from offramp.tasks.gateway.prices import PriceBook, prompt_chars
from offramp.util import content_hash
from offramp.warehouse import Warehouse
from offramp.warehouse.records import CacheEntry, CallRecord, cache_lookup, cache_store

__all__ = ["Budget", "Gateway", "GatewayConfig", "LLMRequest", "LLMResult", "call_record", "is_retryable", "route"]

log = logging.getLogger(__name__)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class LLMRequest:
    """One request: model id (litellm form or `local/<alias>`), chat messages, call settings
    (temperature, max_tokens, response_format, ...)."""

    model: str
    messages: list[dict[str, str]]
    settings: dict[str, Any]
    cache_salt: str | None = None  # tells apart deliberate repeats (DSPy rollouts); keyed, not sent
    served: str | None = None  # where it is served (`models.served_identity`, set by `Gateway.stamp`); keyed, not sent
    purpose: str | None = None  # journaled as this call's purpose (e.g. `judge`) instead of the gateway's; not keyed

    @functools.cached_property
    def cache_key(self) -> str:
        key = {"model": self.model, "messages": self.messages, "settings": self.settings}
        if self.served is not None:
            key["endpoint"] = self.served
        if self.model.startswith(LOCAL_PREFIX):
            key["served"] = local_models.served_identity(self.model[len(LOCAL_PREFIX) :])
        if self.cache_salt is not None:
            key["salt"] = self.cache_salt
        return content_hash(key)

    @functools.cached_property
    def prompt_hash(self) -> str:
        return content_hash(self.messages)


@dataclasses.dataclass(frozen=True)
class LLMResult:
    """What came back. Latency is what the caller waited for the answer, retries and their backoff
    included (a request answered on its third try took all three). On a cache hit cost_usd and
    latency_s are 0 and orig_* carry the original call's figures.
    `refused`: the spend cap refused the call before it was made (`error` says so for the
    warehouse's `calls.error`); callers test this flag, never the error's wording."""

    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float
    latency_s: float
    orig_cost_usd: float | None
    orig_latency_s: float | None
    error: str | None
    cache_hit: bool
    attempts: int
    refused: bool = False
    confidence: float | None = None  # log-probability of the answer, where the model gives one (tuned/<hash>)


def call_record(
    request: LLMRequest, result: LLMResult, *, study_id: str | None, trial_id: int | None, example_id: str | None,
    settings: str, purpose: str, prediction: str | None = None, score: float | None = None,
) -> CallRecord:
    """The warehouse's row of one answered request (`calls`)."""
    return CallRecord(
        study_id=study_id, trial_id=trial_id, example_id=example_id, model=request.model, settings=settings,
        prompt_hash=request.prompt_hash, cache_key=request.cache_key, output_text=result.text, prediction=prediction,
        score=score, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        cost_usd=result.cost_usd, latency_s=result.latency_s, orig_cost_usd=result.orig_cost_usd,
        orig_latency_s=result.orig_latency_s, error=result.error, cache_hit=result.cache_hit, attempts=result.attempts,
        purpose=purpose, created_at=dt.datetime.now(), confidence=result.confidence,
    )


_WARM = threading.Event()
_WARM_LOCK = threading.Lock()


def quiet_litellm() -> None:
    """Stop litellm printing to stdout: on every provider error it prints "Give Feedback / Get Help:
    https://github.com/BerriAI/litellm/issues/new" and "LiteLLM.Info: If you need to debug this
    error, ..." with `print` (no logger, no environment variable), over the CLI's progress bars and
    into the logs; a failed call is recorded with its error anyway. Idempotent, cheap; called before
    offramp's first litellm call in a process (the gateway's warm-up, the DSPy provider's install)."""
    import litellm

    litellm.suppress_debug_info = True


def warm_up_litellm() -> None:
    """Run litellm's call path once per process, untimed and offline (a mocked answer): its first
    real call would otherwise carry ~0.4 s of lazy set-up, and a fresh process's first trial
    (a Dask worker's, a deployment run's) would measure it as the model's latency."""
    if _WARM.is_set():
        return
    with _WARM_LOCK:
        if not _WARM.is_set():
            import litellm

            quiet_litellm()
            try:
                litellm.completion(model="openai/offramp-warm-up", messages=[{"role": "user", "content": "-"}],
                                   mock_response="-", num_retries=0)
            except Exception as exc:  # noqa: BLE001 - a warm-up must never fail a call (e.g. litellm.max_budget set)
                log.debug("litellm warm-up failed: %s", exc)
            _WARM.set()


def redact(text: str) -> str:
    """Remove the values of secret-looking environment variables from a message."""
    for name, value in os.environ.items():
        if value and len(value) >= 8 and _SECRET_ENV.search(name) and value in text:
            text = text.replace(value, f"<{name}>")
    return text




class GatewayConfig(BaseModel):
    """Everything a gateway is built from, as values: a task builds its own gateway from it, so
    it can run in any process (a thread, a Dask worker). With `write_cache=False` the gateway
    only reads the response cache and hands the paid answers back (`Gateway.paid`) for the
    flow process, the warehouse's one writer, to store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    warehouse: Path | None = None  # the response cache; None: no cache
    prices: dict[str, Price] = {}  # declared prices (the space's, a --prices file), over the bundled and litellm's
    endpoints: dict[str, ModelEntry] = {}  # declared models by name: where they are served, their limits; no keys
    concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5  # the first retry's backoff: backoff_s * 2**(attempt-1) * (0.5 + random())
    max_retry_after_s: float = 60.0  # a 429 asking to wait longer fails the call instead
    breaker_failures: int = 5  # consecutive failed calls (down, 5xx, timeout) that open an endpoint's breaker
    breaker_cooldown_s: float = 30.0  # then one probe call may close it
    breaker_scope: str | None = None  # gateways of one scope (a study) in a process share their breaker
    use_cache: bool = True
    write_cache: bool = True
    allowance_usd: float | None = None  # what this gateway may spend (a grant of the study's cap); None: no cap
    study_id: str | None = None  # journal every paid call of this study (the write-ahead ledger); None: none
    trial_id: int | None = None
    purpose: str = "eval"

    def open(self) -> Gateway:
        warehouse = Warehouse(self.warehouse, read_only=not self.write_cache) if self.warehouse else None
        journal = Journal(self.home, self.study_id, self.trial_id, self.purpose) if self.study_id else None
        return Gateway(
            warehouse, PriceBook(self.prices, self.endpoints), home=self.home, concurrency=self.concurrency, timeout_s=self.timeout_s,
            max_retries=self.max_retries, use_cache=self.use_cache, write_cache=self.write_cache, backoff_s=self.backoff_s,
            max_retry_after_s=self.max_retry_after_s,
            breaker=faults.shared_breaker(self.breaker_scope, self.breaker_failures, self.breaker_cooldown_s)
            if self.breaker_scope else faults.CircuitBreaker(self.breaker_failures, self.breaker_cooldown_s),
            budget=Budget(self.allowance_usd), journal=journal,
        )


class Gateway:
    """Calls models for one process. Thread-safe; holds no open warehouse connection."""

    def __init__(
        self,
        warehouse: Warehouse | None,
        prices: PriceBook,
        *,
        home: Path,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        use_cache: bool = True,
        cache_flush_s: float = 1.0,
        budget: Budget | None = None,
        write_cache: bool = True,
        max_retry_after_s: float = 60.0,
        breaker: faults.CircuitBreaker | None = None,
        journal: Journal | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.warehouse = warehouse
        self.prices = prices
        self.home = home
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.use_cache = use_cache and warehouse is not None
        self.cache_flush_s = cache_flush_s
        self.budget = budget
        self.write_cache = write_cache
        self.retry_policy = faults.RetryPolicy(max_retries, backoff_s, max_retry_after_s)
        self.breaker = breaker or faults.CircuitBreaker()
        self.journal = journal
        self.paid: list[CacheEntry] = []  # paid answers not written (write_cache=False): the caller stores them
        self._paid_lock = threading.Lock()
        self._routes: dict[str, dict[str, Any]] = {}
        self._routes_lock = threading.Lock()
        self.limits = EndpointLimits(prices.endpoints)
        self._served: dict[str, str | None] = {}

    def route(self, model: str) -> dict[str, Any]:
        """litellm arguments for a model id (see `route`), looked up once per gateway."""
        with self._routes_lock:
            if model not in self._routes:
                self._routes[model] = route(model, self.home, self.prices.endpoints)
            return self._routes[model]

    def stamp(self, request: LLMRequest) -> LLMRequest:
        """The request with where it is served (`served_identity`), which its cache key includes."""
        with self._routes_lock:
            if request.model not in self._served:
                self._served[request.model] = served_identity(request.model, self.prices.endpoints)
            served = self._served[request.model]
        return request if request.served == served else dataclasses.replace(request, served=served)

    def endpoint(self, request: LLMRequest) -> str:
        """Where a request is served, for the breaker: its `api_base` (the route's or the request's),
        else its provider, with litellm's global base for it (`OPENAI_API_BASE`) if one is set."""
        args = {**self.route(request.model), **request.settings}
        if args.get("api_base"):
            return str(args["api_base"])
        provider = request.model.split("/", 1)[0] if "/" in request.model else None
        if provider is None:
            try:
                import litellm

                provider = litellm.get_llm_provider(request.model)[1]
            except Exception:  # noqa: BLE001 - an id litellm cannot route is its own endpoint
                return request.model
        base = os.environ.get(f"{provider.upper()}_API_BASE") or os.environ.get(f"{provider.upper()}_BASE_URL")
        return f"{provider} at {base}" if base else provider

    def worst_case_usd(self, request: LLMRequest) -> float:
        """An upper bound on a call's cost: one token per prompt character, all max_tokens generated."""
        max_tokens = int(request.settings.get("max_tokens") or 4096)
        return self.prices.cost(request.model, prompt_chars(request.messages), max_tokens)

    def _call(self, request: LLMRequest) -> LLMResult:
        """One request: its worst case reserved on the budget and journaled (intent) before it is
        sent; its outcome journaled before it is returned."""
        if stopping.requested():  # the study is stopping: no new call (a DSPy compile ends at its next call)
            return _interrupted_result()
        if self.budget is None and self.journal is None:
            return self._call_unbudgeted(request)
        worst = self.worst_case_usd(request)
        if self.budget is not None:
            self.budget.reserve(worst)
        result = None
        try:
            intent = (self.journal.intent(model=request.model, cache_key=request.cache_key, worst_usd=worst, purpose=request.purpose)
                      if self.journal else 0)
            result = self._call_unbudgeted(request)
            if self.journal is not None:
                self._journal_outcome(intent, request, result)
            return result
        finally:
            if self.budget is not None:
                self.budget.settle(worst, result.cost_usd if result is not None else 0.0)

    def _journal_outcome(self, intent: int, request: LLMRequest, result: LLMResult) -> None:
        assert self.journal is not None
        if result.error is not None:
            self.journal.failed(intent)
            return
        self.journal.answer(
            intent, model=request.model, cache_key=request.cache_key,
            request={"model": request.model, "messages": request.messages, "settings": request.settings},
            text=result.text or "", prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd, latency_s=result.orig_latency_s or result.latency_s, purpose=request.purpose,
        )

    def _call_unbudgeted(self, request: LLMRequest) -> LLMResult:
        if tuned.is_tuned(request.model):
            return self._call_tuned(request)
        import litellm

        args = self.route(request.model)
        endpoint = self.endpoint(request)
        warm_up_litellm()
        started = time.perf_counter()
        down = self.breaker.admit(endpoint)
        if down is not None:  # the breaker is open: fail now, without a request
            return self._failed(f"EndpointDown: {down}", started, 0)
        attempts = 0
        # Retry only what can succeed on retry, with backoff or a 429's Retry-After (faults.RetryPolicy).
        retrying = Retrying(
            retry=retry_if_exception(is_retryable), wait=self.retry_policy.wait,
            stop=stop_any(self.retry_policy.stop, lambda _: stopping.requested()),  # no retry once a stop is asked
            before_sleep=lambda state: log.info(
                "retrying %s after %s (attempt %d, %.2f s)", request.model, type(state.outcome.exception()).__name__,
                state.attempt_number, state.upcoming_sleep,
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1 and self.breaker.is_open(endpoint):  # other calls found it down meanwhile
                        raise EndpointDown(self.breaker.reason(endpoint))
                    with self.limits.slot(request):
                        response = litellm.completion(
                            messages=request.messages, timeout=self.timeout_s, num_retries=0, **{**args, **request.settings}
                        )
                    choices = getattr(response, "choices", None) or []
                    text = choices[0].message.content if choices else None
                    if text is None:  # no answer is not an empty answer: never scored
                        raise faults.EmptyAnswer(f"{endpoint} answered 200 without a message content")
                    usage = getattr(response, "usage", None)
                    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                    self.limits.used(request.model, prompt_tokens + completion_tokens)
                    cost = self.prices.cost(request.model, prompt_tokens, completion_tokens, response)
                    waited = time.perf_counter() - started  # what the caller waited: every attempt and backoff
                    self.breaker.succeeded(endpoint)
                    return LLMResult(
                        text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                        cost_usd=cost, latency_s=waited, orig_cost_usd=cost, orig_latency_s=waited, error=None,
                        cache_hit=False, attempts=attempts,
                    )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded, scored error
            message = redact(f"{type(exc).__name__}: {exc}")[:2000]
            if not isinstance(exc, EndpointDown):
                self.breaker.failed(endpoint, message, faults.is_endpoint_failure(exc))
            return self._failed(message, started, attempts)
        raise AssertionError("unreachable: tenacity either returned an attempt's result or re-raised its error")

    def _call_tuned(self, request: LLMRequest) -> LLMResult:
        """A model offramp tuned (`tuned/<hash>`), answered in this process at machine-time cost."""
        started = time.perf_counter()
        try:
            label, probability, words, _ = tuned.answer(request.model, request.messages)
        except LookupError as exc:
            return self._failed(f"{type(exc).__name__}: {exc}", started, 1)
        cost = self.prices.cost(request.model, words, 1)
        waited = time.perf_counter() - started
        return LLMResult(text=label, prompt_tokens=words, completion_tokens=1, cost_usd=cost, latency_s=waited,
                         orig_cost_usd=cost, orig_latency_s=waited, error=None, cache_hit=False, attempts=1,
                         confidence=math.log(max(probability, 1e-12)))

    @staticmethod
    def _failed(message: str, started: float, attempts: int) -> LLMResult:
        return LLMResult(text=None, prompt_tokens=None, completion_tokens=None, cost_usd=0.0, orig_cost_usd=None,
                         latency_s=time.perf_counter() - started, orig_latency_s=None, error=message, cache_hit=False,
                         attempts=attempts)

    def _store(self, pending: list[tuple[LLMRequest, LLMResult]]) -> None:
        if not self.use_cache or not pending:
            return
        now = dt.datetime.now()
        entries = [
            CacheEntry(
                cache_key=req.cache_key, model=req.model,
                request=json.dumps({"model": req.model, "messages": req.messages, "settings": req.settings}, sort_keys=True),
                output_text=res.text or "", prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                cost_usd=res.cost_usd, latency_s=res.orig_latency_s or res.latency_s, created_at=now,
            )
            for req, res in pending
        ]
        if not self.write_cache:
            with self._paid_lock:
                self.paid.extend(entries)
            return
        cache_store(self.warehouse, entries)

    def complete_many(
        self, requests: list[LLMRequest], on_result: Callable[[int, LLMResult], None] | None = None
    ) -> list[LLMResult]:
        """Answer every request, in order: cache hits first, the rest through the thread pool.
        Identical requests in one batch are called once. Paid answers reach the cache at least every
        `cache_flush_s` seconds (one DuckDB transaction each, ~30 ms, so not per answer): a crash
        loses at most that much of the cache. A call the spend cap refuses
        comes back as an unpaid error with `refused` set (and `budget.exhausted`). The journal (when the
        gateway has one) holds each paid answer on disk before it is returned, for the flow to ingest
        after a crash.
        Requests are keyed where they are served: callers that record them `stamp` them first."""
        requests = [self.stamp(r) for r in requests]
        keys = [r.cache_key for r in requests]
        # offramp's own models answer in process for next to nothing, with their confidence: never from the cache
        lookup = sorted({r.cache_key for r in requests if not tuned.is_tuned(r.model)})
        cached = cache_lookup(self.warehouse, lookup) if self.use_cache else {}
        results: list[LLMResult | None] = [None] * len(requests)
        first_index: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in cached:
                text, prompt_tokens, completion_tokens, cost, latency = cached[key]
                results[i] = LLMResult(
                    text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=0.0,
                    latency_s=0.0, orig_cost_usd=cost, orig_latency_s=latency, error=None, cache_hit=True, attempts=0,
                )
                if on_result:
                    on_result(i, results[i])
            elif key not in first_index:
                first_index[key] = i
        pending: list[tuple[LLMRequest, LLMResult]] = []
        flushed = time.monotonic()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency)
        with contextlib.ExitStack() as stack:
            # on a stop request the calls still in flight are abandoned, not waited for (their
            # threads end with their HTTP call's timeout; the process does not wait for them)
            stack.callback(lambda: pool.shutdown(wait=not stopping.requested(), cancel_futures=True))
            futures = {pool.submit(self._call, requests[i]): i for i in first_index.values()}
            try:
                for future in stopping.as_completed(futures):
                    i = futures[future]
                    try:
                        result = future.result()
                    except BudgetExceeded as exc:
                        # refused before it was made: recorded as an unpaid error; later calls are refused too
                        result = LLMResult(
                            text=None, prompt_tokens=None, completion_tokens=None, cost_usd=0.0, latency_s=0.0,
                            orig_cost_usd=None, orig_latency_s=None, error=f"BudgetExceeded: {exc}", cache_hit=False,
                            attempts=0, refused=True,
                        )
                    results[i] = result
                    if on_result:
                        on_result(i, result)
                    if result.error is None:
                        pending.append((requests[i], result))
                        if time.monotonic() - flushed >= self.cache_flush_s:
                            self._store(pending)
                            pending, flushed = [], time.monotonic()
            finally:
                self._store(pending)
        for i in first_index.values():
            if results[i] is None:  # abandoned in flight: the study is stopping
                results[i] = _interrupted_result()
                if on_result:
                    on_result(i, results[i])
        for i, key in enumerate(keys):
            if results[i] is None:
                first = results[first_index[key]]
                assert first is not None
                results[i] = (
                    dataclasses.replace(first, cost_usd=0.0, latency_s=0.0, cache_hit=True, attempts=0)
                    if first.error is None
                    else first
                )
                if on_result:
                    on_result(i, results[i])
        return [r for r in results if r is not None]


def _interrupted_result() -> LLMResult:
    """A call not made (or not waited for) because the study is stopping: unpaid, recorded as such."""
    return LLMResult(
        text=None, prompt_tokens=None, completion_tokens=None, cost_usd=0.0, latency_s=0.0, orig_cost_usd=None,
        orig_latency_s=None, error="Interrupted: the study is stopping (SIGINT/SIGTERM); call not made, or its answer not awaited", cache_hit=False,
        attempts=0,
    )
