"""A process-wide stop request: SIGINT/SIGTERM ask the study to stop, and the work stops at its
next safe point instead of being torn down at a random bytecode.

The CLI's signal handler calls `request(signum)`. Then:
- the gateway refuses every new model call (a DSPy compile, an evaluation ends within one call's
  time; a call in flight is abandoned, its answer journaled by the cache if it arrives);
- the flow raises `Interrupted` at its next check (`check()`, after a stage's calls are stored),
  records the study and its running trials as interrupted, and unwinds.

`Interrupted` is a BaseException, like KeyboardInterrupt: an `except Exception` in a library (DSPy's
per-example handlers) or in offramp (a failed trial) must not swallow it.

This module imports nothing of offramp, so every layer can use it.
"""

from __future__ import annotations

import concurrent.futures
import signal
import threading
from collections.abc import Iterable, Iterator

_STOP = threading.Event()
_SIGNAL: list[int] = []  # the first signal received (a list: set once, read anywhere)


class Interrupted(BaseException):
    """The study was asked to stop (SIGINT/SIGTERM): the same command resumes it."""

    def __init__(self, signum: int | None = None, *, resumable: bool = False) -> None:
        self.signum = signum if signum is not None else signal_number()
        self.resumable = resumable  # a study was stopped and recorded: the same command resumes it
        super().__init__(f"stopped by {signal_name(self.signum)}")


def request(signum: int = signal.SIGINT) -> None:
    """Ask everything in this process to stop (thread-safe; the first signal is the one kept)."""
    if not _SIGNAL:
        _SIGNAL.append(signum)
    _STOP.set()


def requested() -> bool:
    return _STOP.is_set()


def check() -> None:
    """Raise `Interrupted` if a stop was requested: call where stopping leaves a clean record."""
    if _STOP.is_set():
        raise Interrupted()


def as_completed(futures: Iterable[concurrent.futures.Future]) -> Iterator[concurrent.futures.Future]:
    """`concurrent.futures.as_completed`, that also ends (leaving the rest unfinished) once a stop
    is requested: the caller abandons what is still in flight instead of waiting for it."""
    waiting = set(futures)
    while waiting and not _STOP.is_set():
        done, waiting = concurrent.futures.wait(waiting, timeout=0.25, return_when=concurrent.futures.FIRST_COMPLETED)
        yield from done


def signal_number() -> int:
    return _SIGNAL[0] if _SIGNAL else signal.SIGINT


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int | None = None) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + (signum if signum is not None else signal_number())


def reset() -> None:
    """Forget a stop request (a process that runs a study again, e.g. a test)."""
    _SIGNAL.clear()
    _STOP.clear()
