"""A declared endpoint's limits, enforced by the gateway: at most `max_concurrency` calls in
flight, `rpm` requests and `tpm` tokens in any 60 s window.

The limits are per process: a study whose trials run in several processes (Dask workers) gives
each process the whole limit, so N processes may reach N times it. Declare a per-process share
(the limit divided by the flow's `--parallel`) when the provider enforces the limit strictly; a
429 that slips through is retried with its Retry-After anyway.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

from offramp.search_spaces.schema import ModelEntry
from offramp.tasks.gateway.prices import prompt_chars

WINDOW_S = 60.0


class _Request(Protocol):
    model: str
    messages: list[dict[str, str]]
    settings: dict


class _Window:
    """What one endpoint did in the last minute: (time, tokens) per request."""

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.slots = threading.BoundedSemaphore(entry.max_concurrency) if entry.max_concurrency else None
        self.events: collections.deque[list[float]] = collections.deque()  # [started, tokens]
        self.lock = threading.Lock()

    def _trim(self, now: float) -> None:
        while self.events and now - self.events[0][0] >= WINDOW_S:
            self.events.popleft()

    def admit(self, estimate: int) -> list[float]:
        """Wait until one more request of about `estimate` tokens fits the minute; count it."""
        while True:
            with self.lock:
                now = time.monotonic()
                self._trim(now)
                requests_ok = self.entry.rpm is None or len(self.events) < self.entry.rpm
                used = sum(tokens for _, tokens in self.events)
                tokens_ok = self.entry.tpm is None or not self.events or used + estimate <= self.entry.tpm
                if requests_ok and tokens_ok:
                    event = [now, float(estimate)]
                    self.events.append(event)
                    return event
                wait = max(0.01, WINDOW_S - (now - self.events[0][0]))
            time.sleep(min(wait, 1.0))


class EndpointLimits:
    """The limits of every declared endpoint of a gateway; undeclared models are not limited."""

    def __init__(self, endpoints: Mapping[str, ModelEntry]) -> None:
        self.windows = {
            name: _Window(entry) for name, entry in endpoints.items() if entry.max_concurrency or entry.rpm or entry.tpm
        }
        self._last: dict[int, list[float]] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, request: _Request) -> Iterator[None]:
        """Hold one of the endpoint's slots for a call, once the minute has room for it."""
        window = self.windows.get(request.model)
        if window is None:
            yield
            return
        estimate = prompt_chars(request.messages) // 4 + int(request.settings.get("max_tokens") or 0)
        if window.slots is not None:
            window.slots.acquire()
        try:
            event = window.admit(estimate)
            with self._lock:
                self._last[threading.get_ident()] = event
            yield
        finally:
            if window.slots is not None:
                window.slots.release()

    def used(self, model: str, tokens: int) -> None:
        """Replace this thread's last estimate by the tokens the provider reported."""
        if model not in self.windows:
            return
        with self._lock:
            event = self._last.pop(threading.get_ident(), None)
        if event is not None:
            with self.windows[model].lock:
                event[1] = float(tokens)
