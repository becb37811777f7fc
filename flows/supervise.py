"""How the CLI runs a study so that SIGINT/SIGTERM stop it cleanly, and a killed one is not left
RUNNING in Prefect.

The order on a signal is: stop the work, record it, set Prefect's states, then let the server go.
- The temporary Prefect server runs in a session of its own (Ctrl-C in a terminal and `timeout`
  signal the whole process group: the server died first, and nothing could be recorded after),
  and dies with offramp (Linux PR_SET_PDEATHSIG), so a SIGKILL of offramp does not orphan it.
- The flow runs in a worker thread; the main thread keeps offramp's signal handlers (Prefect
  installs its own SIGTERM handler only when the flow runs in the main thread) and, on the first
  signal, asks every thread to stop (`offramp.stopping`): the gateway makes no new call, the flow
  records the study and its running trials as interrupted at its next check, and the main thread
  waits for that (at most `GRACE_S`), sets the flow run CANCELLED and exits 130/143 with one line
  saying that the same command resumes. A second signal exits at once.
- Each flow run is tagged with the process that runs it (host, pid, start time): before the next
  study the CLI marks CRASHED the runs still RUNNING whose process is gone (a SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from offramp import stopping

T = TypeVar("T")
GRACE_S = 20.0  # how long the main thread waits for the work to record its stop before it exits anyway
TAG_PREFIX = "offramp-process:"
FLOW_NAME = "migrate-feature"
DUPLICATE_S = 1.0  # a second signal sooner than this after the first is the same stop, not a second one
_first_signal_at = [0.0]
_supervising = threading.Event()  # a flow runs in a worker thread: the first signal only asks it to stop


# --------------------------------------------------------------------------------------- signals
def install_signal_handlers() -> None:
    """SIGINT and SIGTERM: the first asks everything to stop (and, with no study running, unwinds
    at once); the second exits at once."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def _on_signal(signum: int, frame: object) -> None:
    now = time.monotonic()
    if stopping.requested() and now - _first_signal_at[0] < DUPLICATE_S:
        return  # the same stop delivered twice: `timeout` signals its child, then the child's process group
    if stopping.requested():
        sys.stderr.write(f"\n{stopping.signal_name(signum)} again: exiting now\n")
        sys.stderr.flush()
        os._exit(stopping.exit_code(signum))  # the Prefect server goes with us (PR_SET_PDEATHSIG)
    _first_signal_at[0] = now
    stopping.request(signum)
    if not _supervising.is_set():
        raise stopping.Interrupted(signum)


def exit_interrupted(exc: stopping.Interrupted, message: str) -> None:
    """After a stop is recorded: say how to resume, stop the temporary Prefect server, and exit
    with 128 + the signal's number, without waiting for abandoned model calls' threads (nor running
    native libraries' exit-time destructors under them)."""
    sys.stderr.write(message + "\n")
    stop_prefect_server()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(stopping.exit_code(exc.signum))


# -------------------------------------------------------------------------- the temporary server
def start_prefect_server() -> None:
    """Start Prefect's temporary server (when no PREFECT_API_URL is set) in a session of its own,
    from the main thread, so that it outlives a group signal and dies with this process."""
    from prefect.server.api import server as prefect_server
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    server = prefect_server.SubprocessASGIServer()  # Prefect's client reuses this instance
    if server.running:
        return
    prefect_server.subprocess = _OwnSession()  # Prefect's Popen of the server, only during start()
    try:
        server.start()
    finally:
        prefect_server.subprocess = subprocess


def stop_prefect_server() -> None:
    from prefect.server.api import server as prefect_server

    server = prefect_server.SubprocessASGIServer._instances.get(None)
    if server is not None and server.running:
        with contextlib.suppress(Exception):
            server.stop()


class _OwnSession:
    """`subprocess`, whose Popen starts a new session and asks the kernel to SIGTERM the child when
    this (main) thread's process dies."""

    def __getattr__(self, name: str) -> object:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: object, **kwargs: object) -> subprocess.Popen:  # noqa: N802 - subprocess's name
        prctl = _prctl()
        kwargs["start_new_session"] = True
        if prctl is not None:
            kwargs["preexec_fn"] = lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        return subprocess.Popen(*args, **kwargs)


def _prctl() -> Callable | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# ------------------------------------------------------------------------------- flow run states
def process_tag(pid: int | None = None) -> str:
    """`offramp-process:<host>:<pid>:<start time>`: who runs a flow run (the start time tells a
    reused pid apart)."""
    pid = os.getpid() if pid is None else pid
    return f"{TAG_PREFIX}{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat, after the command name in parentheses
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _process_gone(tag: str) -> bool:
    """Whether the process a tag names, on this host, no longer runs (another host's: unknown, False)."""
    host, _, rest = tag[len(TAG_PREFIX):].partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    return started != "?" and _start_time(pid) not in (started, "?")


def _runs(client, *, tags: list[str] | None = None, states: list | None = None) -> list:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )

    run_filter = FlowRunFilter(
        tags=FlowRunFilterTags(all_=tags) if tags else None,
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)) if states else None,
    )
    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])), flow_run_filter=run_filter)


def mark_dead_runs_crashed() -> list[str]:
    """Flow runs left RUNNING (or PENDING) by an offramp process of this host that is gone (a
    SIGKILL, a power cut) become CRASHED. Returns their names."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    marked = []
    with get_client(sync_client=True) as client:
        for run in _runs(client, states=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]):
            tag = next((t for t in run.tags if t.startswith(TAG_PREFIX)), None)
            if tag is not None and _process_gone(tag):
                client.set_flow_run_state(run.id, Crashed(message=f"its process ({tag[len(TAG_PREFIX):]}) was killed"), force=True)
                marked.append(run.name)
    return marked


def _set_own_runs(state_factory: Callable[[], object]) -> None:
    """Set the state of this process's flow runs that are not CANCELLED already."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType

    try:
        with get_client(sync_client=True) as client:
            for run in _runs(client, tags=[process_tag()]):
                if run.state_type != StateType.CANCELLED:
                    client.set_flow_run_state(run.id, state_factory(), force=True)
    except Exception as exc:  # noqa: BLE001 - the stop is recorded in the warehouse; say what Prefect lacks
        sys.stderr.write(f"warning: could not record the stop in Prefect ({type(exc).__name__}: {exc})\n")


# ---------------------------------------------------------------------------------- the flow run
def run_flow(call: Callable[[], T]) -> T:
    """Run `call` (a flow) in a worker thread under this process's tag; return its result. On a
    signal: wait until it has recorded the stop (at most GRACE_S), set its flow run CANCELLED
    (CRASHED if it did not stop in time), and raise `Interrupted`."""
    from prefect import tags
    from prefect.states import Cancelled, Crashed

    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            with tags(process_tag()):
                outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="offramp-flow", daemon=True)
    _supervising.set()
    try:
        thread.start()
        while thread.is_alive() and not stopping.requested():
            thread.join(0.2)
        if stopping.requested():
            thread.join(GRACE_S)
            why = f"stopped by {stopping.signal_name(stopping.signal_number())}; the same command resumes the study"
            if thread.is_alive() or "value" not in outcome:
                late = thread.is_alive()
                _set_own_runs(lambda: Crashed(message=f"{why} (it did not stop within {GRACE_S:.0f} s)") if late
                              else Cancelled(message=why))
                raise stopping.Interrupted(resumable=True)
    finally:
        _supervising.clear()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
