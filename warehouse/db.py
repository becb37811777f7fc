"""The warehouse: one DuckDB file, written by one process through short-lived connections, that a
reader (`offramp sql`, a notebook, the DuckDB CLI) may hold open for as long as it likes.

DuckDB lets one process hold a file open for writing, and while it does, every other process's
open fails, read-only ones included; a process holding it read-only (any number may) blocks the
writer just as long. So offramp never keeps the file open: the writer opens, writes a batch (a
trial's calls, a cache fill) and closes, and readers open read-only between those batches.

A reader may hold the file for minutes; the study must not die of it. Options measured by
`bench/readers.py` (numbers in the README's "Reading while a study writes"): (a) writes that never
give up, (b) a reader snapshot, (c) fewer, larger write windows, (d) DuckLake (no extension for
DuckDB 2.0). offramp does (a) and (b):
- A study's writes never give up. `Warehouse.defer` writes at once when the file is free (the
  normal case: durable before it returns); when another process holds it past `QUEUE_AFTER_S`, the
  write is kept in memory, in order behind any earlier one, and the study goes on; a background
  thread writes the queue, in order, as soon as the file frees, with no deadline. Lookups of what
  is queued (the response cache, compiled programs) are answered from the queue meanwhile; reads
  open read-only, which coexists with other readers.
- A read of what this process wrote (a trial's rows, the front, the selection, the report) first
  waits for the queue to land: with no deadline, saying once, in one line, which process holds
  the file. `writer()` (a synchronous write) waits the same way, after the queue. A handle given
  an explicit `wait_s` gives up after that long instead (`WarehouseBusy`).
- A read-only handle (`Warehouse(read_only=True)`, `offramp sql`) waits up to
  `OFFRAMP_WAREHOUSE_WAIT_S` (default 60 s) for a process that holds the file for writing.
- After its writes the process refreshes the reader snapshot (`snapshot.py`), the file a notebook
  should open: nobody writes it in place, so its readers never contend with a writer.
(c) is left out: it cut the share of failed plain opens little, and a write kept longer is a paid
answer that a kill loses. What the queue holds when the process is killed (SIGKILL) is lost, as an
unwritten stage always was; the process writes it before a normal exit (`atexit`).
Within a process one lock serialises connections, so threads may share a `Warehouse`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential, wait_random_exponential

from offramp.errors import NoWarehouse, WarehouseBusy
from offramp.warehouse import migrate, snapshot
from offramp.warehouse.home import OfframpSettings

log = logging.getLogger(__name__)
QUERIES = Path(__file__).parent / "queries"
QUEUE_AFTER_S = 0.5  # how long a deferred write waits for a busy file before it is queued and the study goes on
_READY: set[Path] = set()
# A reader's handle (`Warehouse(read_only=True)`, which `offramp sql` uses) opens the file with these
# settings: a read-only connection still lets a query write files (`COPY ... TO`, `EXPORT DATABASE`),
# read any file (`read_csv('/etc/passwd')`), attach other databases or install extensions; with
# external access off it can only read this database file. The lock stops a query from `SET`ting it back.
LOCKED_DOWN = {"enable_external_access": False, "lock_configuration": True}


@functools.lru_cache(maxsize=None)
def query(name: str) -> str:
    """The text of `queries/<name>.sql` (one statement, named `$parameters`)."""
    return (QUERIES / f"{name}.sql").read_text()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) and ("lock" in text or "conflicting" in text)


def holder(exc: BaseException) -> str:
    """Who holds the file, as DuckDB's lock error names it: "another process (pid 1234)"."""
    found = re.search(r"\(PID (\d+)\)", str(exc))
    return f"another process (pid {found.group(1)})" if found else "another process"


def _open(path: Path, read_only: bool, wait_s: float | None, locked_down: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to `path`, retrying DuckDB's lock error for `wait_s` seconds (None: no deadline;
    then WarehouseBusy) after 5 ms, 10 ms, ... up to 200 ms, each x (0.5 + random()); other errors at once.
    `locked_down`: read-only, and no access to anything but this file (`LOCKED_DOWN`)."""
    retrying = Retrying(
        retry=retry_if_exception(_is_lock_error),
        stop=stop_after_delay(float("inf") if wait_s is None else wait_s),
        wait=wait_exponential(multiplier=0.0025, max=0.1) + wait_random_exponential(multiplier=0.005, max=0.2),
        reraise=True,
    )
    config = dict(LOCKED_DOWN) if locked_down else {}
    try:
        return retrying(duckdb.connect, str(path), read_only=read_only or locked_down, config=config)
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            raise WarehouseBusy(
                f"{path}: still locked by {holder(exc)} after {wait_s:.0f} s "
                "(a study writing, or a client holding it open): retry, or close that client"
            ) from exc
        raise


@dataclasses.dataclass
class _Write:
    """A held-back write: `apply(con)` inside a transaction, and what lookups should find meanwhile."""

    apply: Callable[[duckdb.DuckDBPyConnection], None]
    lookups: dict[str, Any]


@dataclasses.dataclass
class _FileState:
    """What the handles of one file share in this process."""

    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)  # one connection at a time
    queue: collections.deque[_Write] = dataclasses.field(default_factory=collections.deque)
    lookups: dict[str, Any] = dataclasses.field(default_factory=dict)  # of the queued writes
    flusher: threading.Thread | None = None
    failure: BaseException | None = None  # a queued write that failed for another reason than the lock
    waiting_since: float | None = None  # when the file was first found busy (reported once per episode)
    snapshot_taken: float = float("-inf")  # time.monotonic() of the last reader snapshot
    snapshot_cost_s: float = 0.0  # what it took to copy
    snapshot_timer: threading.Timer | None = None  # the snapshot due after the last write


_STATES: dict[Path, _FileState] = {}
_STATES_GUARD = threading.Lock()


def _state(path: Path) -> _FileState:
    with _STATES_GUARD:
        return _STATES.setdefault(path, _FileState())


def _wait_message(path: Path, exc: BaseException, what: str) -> str:
    return (f"{path} is held open by {holder(exc)} (a DuckDB client?): {what}; "
            "it continues by itself when that client closes")


class Warehouse:
    """Handle on the DuckDB file. Cheap to create; holds no open connection.

    `read_only=True` is a reader's handle (a task in another process than the study's writer,
    `offramp sql`): it never opens the file for writing and never migrates it, and its connections
    are locked down (`LOCKED_DOWN`): a query can neither write a file nor read any other.
    `wait_s`: how long to wait for a busy file before `WarehouseBusy`. Default: no deadline for a
    writing handle (a study never dies of a reader), `OFFRAMP_WAREHOUSE_WAIT_S` for a read-only one."""

    def __init__(self, path: Path | str, *, wait_s: float | None = None, read_only: bool = False) -> None:
        self.path = Path(path).expanduser().resolve()
        self.read_only = read_only
        self.wait_s = OfframpSettings().warehouse_wait_s if wait_s is None and read_only else wait_s
        self._state = _state(self.path)

    def ensure_schema(self) -> None:
        """Create/upgrade the schema and (re)apply the views, once per process and file."""
        if self.path in _READY or self.read_only:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._state.lock:
            con = self._open_for_writing(self.wait_s, "offramp waits to prepare the warehouse")
            try:
                migrate.apply_migrations(con)
                migrate.apply_views(con)
            finally:
                con.close()
            _READY.add(self.path)

    # -------------------------------------------------------------------------------- writing
    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: all of the block lands, or none of it. It
        lands after any held-back write (`defer`), waiting for a busy file (see the class)."""
        if self.read_only:
            raise RuntimeError(f"{self.path}: a read-only warehouse handle cannot write")
        self.ensure_schema()
        with self._state.lock:
            self.flush()
            con = self._open_for_writing(self.wait_s, "offramp waits to write")
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()
            self._after_write()

    def defer(self, apply: Callable[[duckdb.DuckDBPyConnection], None], lookups: dict[str, Any] | None = None) -> None:
        """Write `apply(con)` in one transaction now if the file is free within `QUEUE_AFTER_S`, else
        keep it, in order, and write it when the file frees (a background thread; no deadline).
        `lookups`: key -> value that `pending()` answers until the write has landed."""
        if self.read_only:
            raise RuntimeError(f"{self.path}: a read-only warehouse handle cannot write")
        self.ensure_schema()
        state = self._state
        with state.lock:
            self._raise_failure()
            busy = bool(state.queue)  # a busy spell already: queue behind it, do not wait again
            state.queue.append(_Write(apply, dict(lookups or {})))
            state.lookups.update(lookups or {})
            if busy or not self._drain(QUEUE_AFTER_S):
                self._start_flusher()

    def flush(self) -> None:
        """Write every held-back write now, waiting for a busy file (`wait_s`: no deadline by default)."""
        with self._state.lock:
            if self._state.queue and not self._drain(self.wait_s, "offramp waits to write what it kept"):
                raise WarehouseBusy(f"{self.path}: still locked after {self.wait_s:.0f} s; "
                                    f"{len(self._state.queue)} writes are kept in memory")
            self._raise_failure()

    def holding(self) -> bool:
        """Whether writes are kept in memory, not yet in the file (another process holds it)."""
        with self._state.lock:
            return bool(self._state.queue)

    def pending(self, keys: Iterable[str]) -> dict[str, Any]:
        """What queued writes will store under these lookup keys (empty when nothing is held back)."""
        lookups = self._state.lookups
        return {key: lookups[key] for key in keys if key in lookups} if lookups else {}

    def _open_for_writing(self, wait_s: float | None, what: str) -> duckdb.DuckDBPyConnection:
        """Open for writing: a quick try, then (saying once who holds the file) up to `wait_s`."""
        try:
            return _open(self.path, read_only=False, wait_s=min(QUEUE_AFTER_S, wait_s if wait_s is not None else QUEUE_AFTER_S))
        except WarehouseBusy as exc:
            if wait_s is not None and wait_s <= QUEUE_AFTER_S:
                raise
            self._announce(exc.__cause__ or exc, what)
        return _open(self.path, read_only=False, wait_s=wait_s)

    def _drain(self, wait_s: float | None, what: str | None = None) -> bool:
        """Write the queue, in order, one transaction per write. False: the file stayed busy."""
        state = self._state
        with state.lock:
            if not state.queue:
                return True
            try:
                con = self._open_for_writing(wait_s, what) if what else _open(self.path, read_only=False, wait_s=wait_s)
            except WarehouseBusy as exc:
                if what is None:
                    self._announce(exc.__cause__ or exc, "offramp keeps its writes and goes on")
                return False
            try:
                while state.queue:
                    write = state.queue[0]
                    con.execute("BEGIN TRANSACTION")
                    try:
                        write.apply(con)
                    except BaseException:
                        con.execute("ROLLBACK")
                        self._forget(state.queue.popleft())
                        raise
                    con.execute("COMMIT")
                    self._forget(state.queue.popleft())
            finally:
                con.close()
            self._after_write()
            if state.waiting_since is not None:
                log.warning("%s: written what was kept (%.0f s after the file was found busy)",
                            self.path, time.monotonic() - state.waiting_since)
                state.waiting_since = None
            return True

    def _after_write(self) -> None:
        """Take the reader snapshot if it is due, else once it is (`snapshot`; with the lock held)."""
        state = self._state
        if state.snapshot_timer is not None or not OfframpSettings().warehouse_snapshot:
            return
        wait = snapshot.due(state.snapshot_taken, state.snapshot_cost_s)
        if wait > 0 or state.queue:
            state.snapshot_timer = threading.Timer(max(wait, snapshot.MIN_INTERVAL_S / 4), self._snapshot_later)
            state.snapshot_timer.daemon = True
            state.snapshot_timer.start()
            _flush_at_exit(self)
            return
        cost = snapshot.take(self.path)
        state.snapshot_taken = time.monotonic()
        state.snapshot_cost_s = cost if cost is not None else state.snapshot_cost_s

    def _snapshot_later(self) -> None:
        with self._state.lock:
            self._state.snapshot_timer = None
            if not self._state.queue:  # else the queue's writer takes it when it lands
                self._after_write()

    def _forget(self, write: _Write) -> None:
        for key in write.lookups:
            self._state.lookups.pop(key, None)

    def _announce(self, exc: BaseException, what: str) -> None:
        """Say once per busy spell, in one line, that the file is held and by whom."""
        if self._state.waiting_since is None:
            self._state.waiting_since = time.monotonic()
            log.warning(_wait_message(self.path, exc, what))

    def _start_flusher(self) -> None:
        """Start the background writer of the queue (call with the state's lock held)."""
        state = self._state
        if state.flusher is not None:
            return
        state.flusher = threading.Thread(target=self._flush_in_background, name=f"offramp-flush {self.path.name}", daemon=True)
        state.flusher.start()
        _flush_at_exit(self)

    def _flush_in_background(self) -> None:
        """Try the queue every 50-500 ms until it has landed; keep a write's failure for the next caller."""
        state, delay = self._state, 0.05
        while True:
            time.sleep(delay)
            with state.lock:
                try:
                    if self._drain(0):  # one try: the study's threads must not wait on this lock
                        state.flusher = None
                        return
                except Exception as exc:  # noqa: BLE001 - handed to the next caller (defer, flush, writer)
                    state.failure, state.flusher = exc, None
                    return
            delay = min(delay * 2, 0.5)

    def _raise_failure(self) -> None:
        failure, self._state.failure = self._state.failure, None
        if failure is not None:
            raise failure

    # -------------------------------------------------------------------------------- reading
    @contextlib.contextmanager
    def reader(self, *, own_writes: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection (it coexists with other processes' readers). From the writing
        process it first lands what `defer` kept (`own_writes`; a lookup that also checks
        `pending()` may pass False and not wait). The file must exist: a missing one is
        `NoWarehouse` (a user error with what to do), never a FileNotFoundError a caller would have
        to tell apart from a missing file of offramp's own."""
        if not self.path.exists():
            raise NoWarehouse(f"{self.path}: no warehouse yet (run a study first, e.g. `offramp demo`)")
        with self._state.lock:
            if own_writes and not self.read_only:
                self.flush()
            con = self._open_for_reading()
            try:
                yield con
            finally:
                con.close()

    def _open_for_reading(self) -> duckdb.DuckDBPyConnection:
        if self.read_only or self.wait_s is not None:
            return _open(self.path, read_only=True, wait_s=self.wait_s, locked_down=self.read_only)
        try:
            return _open(self.path, read_only=True, wait_s=QUEUE_AFTER_S)
        except WarehouseBusy as exc:
            self._announce(exc.__cause__ or exc, "offramp waits to read")
        return _open(self.path, read_only=True, wait_s=None)

    def fetch(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run one read query; return (column names, rows)."""
        with self.reader() as con:
            cursor = con.execute(sql, params) if params is not None else con.execute(sql)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            return columns, cursor.fetchall()

    def fetch_typed(self, sql: str) -> tuple[list[str], list[str], list[tuple]]:
        """Run one read query; return (column names, their DuckDB types as text, e.g. 'JSON', rows)."""
        with self.reader() as con:
            cursor = con.execute(sql)
            described = cursor.description or []
            return [d[0] for d in described], [str(d[1]) for d in described], cursor.fetchall()


_AT_EXIT: dict[Path, Warehouse] = {}


def _flush_at_exit(wh: Warehouse) -> None:
    """Before a normal exit, write what is still kept (waiting for the file: a kept paid answer is
    money), and take the reader snapshot that was due after the last write."""
    if not _AT_EXIT:
        atexit.register(_at_exit)
    _AT_EXIT.setdefault(wh.path, Warehouse(wh.path))


def _at_exit() -> None:
    for wh in list(_AT_EXIT.values()):
        wh.flush()
        with wh._state.lock:
            timer, wh._state.snapshot_timer = wh._state.snapshot_timer, None
            if timer is not None:
                timer.cancel()
                snapshot.take(wh.path)


def insert_rows(con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[dict[str, Any]]) -> int:
    """Bulk-insert rows with the columnar query `queries/<name>.sql` (it UNNESTs one list per
    column, which is ~100x faster than executemany). Every row must have the same keys."""
    if not rows:
        return 0
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    con.execute(query(name), columns)
    return len(rows)
