"""How the gateway treats a failed call, by kind, and a circuit breaker per endpoint.

- Fail fast: a refused key (401/403), an unknown model or route (404), a bad request (400,
  context too long...) cannot succeed on retry: one attempt.
- Retry: timeouts, broken connections, 5xx, a malformed or empty answer (the provider's fault, not
  the request's), and 429. A 429's `Retry-After` (seconds or an HTTP date) is honoured: the next
  attempt waits max(Retry-After, backoff); a Retry-After above `max_retry_after_s` fails the call
  at once instead (waiting minutes per example would stall a study silently).
- The breaker: after `failures` consecutive calls to one endpoint failed (after their retries)
  with a connection error, a 5xx or a timeout, the endpoint is open: calls to it fail at once,
  without a request, as `EndpointDown`. After `cooldown_s`, one call goes through as a probe: an
  answer closes the breaker, a failure opens it again. A study whose endpoint is open at the end
  of a stage stops (`provider_down`), keeping what it measured.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time

from tenacity import RetryCallState, wait_exponential, wait_random_exponential

from offramp.errors import EndpointDown

__all__ = [
    "CircuitBreaker", "EmptyAnswer", "EndpointDown", "RetryPolicy", "is_endpoint_failure", "is_retryable", "retry_after_s",
    "shared_breaker",
]


class EmptyAnswer(Exception):
    """A 200 response with no answer in it (no choices, no content): the provider's fault, retried."""


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def is_endpoint_failure(exc: BaseException) -> bool:
    """The endpoint itself failed (down, broken, overloaded): a timeout, a connection error, a 5xx,
    an answer that is no answer. What the breaker counts; a 429 (the endpoint works, we are too
    fast) and the request's own faults (4xx) do not count."""
    import litellm

    if isinstance(exc, EmptyAnswer | litellm.Timeout | litellm.APIConnectionError | litellm.InternalServerError
                  | litellm.ServiceUnavailableError | litellm.BadGatewayError):
        return True
    status = _status(exc)
    return status is not None and (status == 408 or status >= 500)


def is_retryable(exc: BaseException) -> bool:
    """Timeouts, rate limits, server errors, broken connections and malformed answers can succeed
    on retry; a bad request, a refused key or an unknown model cannot."""
    import litellm

    if isinstance(exc, EndpointDown):
        return False
    if isinstance(exc, litellm.RateLimitError) or _status(exc) == 429:
        return True
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError | litellm.NotFoundError
                  | litellm.BadRequestError):
        return False
    return is_endpoint_failure(exc)


def retry_after_s(exc: BaseException, now: float | None = None) -> float | None:
    """The wait a 429 (or 503) asks for, in seconds, from its `Retry-After` header (delta seconds or
    an HTTP date), or None. litellm 1.106 keeps the provider's headers on
    `exc.litellm_response_headers`; `exc.response.headers` is a placeholder without them."""
    value = None
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(getattr(exc, "response", None), "headers", None)):
        if headers:
            try:
                value = headers.get("retry-after") or headers.get("Retry-After")
            except AttributeError:
                continue
            if value:
                break
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryPolicy:
    """tenacity's wait and stop for one gateway: at most `max_retries` retries, after
    backoff_s * 2**(attempt-1) * (0.5 + random()) seconds (the fixed half plus a uniform jitter), or
    the 429's Retry-After if longer; a Retry-After above `max_retry_after_s` stops at once."""

    def __init__(self, max_retries: int, backoff_s: float, max_retry_after_s: float) -> None:
        self.max_retries = max_retries
        self.max_retry_after_s = max_retry_after_s
        self._backoff = wait_exponential(multiplier=backoff_s / 2) + wait_random_exponential(multiplier=backoff_s)

    @staticmethod
    def _asked(state: RetryCallState) -> float | None:
        exc = state.outcome.exception() if state.outcome else None
        return retry_after_s(exc) if exc is not None else None

    def wait(self, state: RetryCallState) -> float:
        asked = self._asked(state)
        backoff = self._backoff(state)
        return backoff if asked is None else max(backoff, asked)

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.max_retries + 1:
            return True
        asked = self._asked(state)
        return asked is not None and asked > self.max_retry_after_s


class _State:
    __slots__ = ("consecutive", "opened_at", "probing", "last_error", "opened")

    def __init__(self) -> None:
        self.consecutive = 0
        self.opened_at: float | None = None
        self.probing = False
        self.last_error = ""
        self.opened = 0  # times it opened


class CircuitBreaker:
    """Per endpoint: closed (calls go through), open (calls fail at once), half-open (one probe)."""

    def __init__(self, failures: int = 5, cooldown_s: float = 30.0) -> None:
        if failures < 1:
            raise ValueError("a breaker needs failures >= 1")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def _state(self, endpoint: str) -> _State:
        return self._states.setdefault(endpoint, _State())

    def admit(self, endpoint: str) -> str | None:
        """None: call it. Otherwise why not (the endpoint is open and no probe is due)."""
        with self._lock:
            s = self._state(endpoint)
            if s.opened_at is None:
                return None
            if not s.probing and time.monotonic() - s.opened_at >= self.cooldown_s:
                s.probing = True  # this call is the probe; the others keep failing fast
                return None
            return self.reason(endpoint, s)

    def is_open(self, endpoint: str) -> bool:
        with self._lock:
            return self._state(endpoint).opened_at is not None

    def reason(self, endpoint: str, s: _State | None = None) -> str:
        s = s or self._state(endpoint)
        return (f"endpoint {endpoint} is down: {s.consecutive} calls in a row failed after their retries "
                f"(last: {s.last_error[:200]}); not called")

    def succeeded(self, endpoint: str) -> None:
        with self._lock:
            s = self._state(endpoint)
            s.consecutive, s.opened_at, s.probing = 0, None, False

    def failed(self, endpoint: str, error: str, endpoint_failure: bool) -> None:
        """A call failed after its retries; only the endpoint's own failures count towards opening."""
        with self._lock:
            s = self._state(endpoint)
            s.probing = False
            if not endpoint_failure:
                return
            s.consecutive += 1
            s.last_error = error
            if s.consecutive >= self.failures:
                if s.opened_at is None:
                    s.opened += 1
                s.opened_at = time.monotonic()

    def down(self) -> dict[str, str]:
        """The endpoints open now, with why."""
        with self._lock:
            return {e: self.reason(e, s) for e, s in self._states.items() if s.opened_at is not None}


_SHARED: dict[tuple[str, int, float], CircuitBreaker] = {}
_SHARED_LOCK = threading.Lock()


def shared_breaker(scope: str, failures: int, cooldown_s: float) -> CircuitBreaker:
    """One breaker per scope (a study) in this process: the gateways of its tasks (one per trial
    stage) share what they learnt, so a down endpoint is not rediscovered by every stage (a raced
    trial's first stage may have fewer examples than `failures`)."""
    key = (scope, failures, cooldown_s)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = CircuitBreaker(failures, cooldown_s)
        return _SHARED[key]
