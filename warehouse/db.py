"""The warehouse: one DuckDB file, written by one process through short-lived connections.

DuckDB lets one process hold a file open for writing, and while it does, every other process's
open fails, read-only ones included. offramp therefore never keeps the file open: the writer opens,
writes a batch (a trial's calls, a cache fill) and closes, and readers (`offramp sql`, a notebook)
open read-only between those batches. Both sides retry on the lock error for a bounded time.
Within the writing process a lock serialises connections, so threads may share a `Warehouse`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential, wait_random_exponential

from offramp.errors import NoWarehouse, WarehouseBusy
from offramp.warehouse import migrate

QUERIES = Path(__file__).parent / "queries"
_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()
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


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


def _process_lock(path: Path) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.RLock())


def _open(path: Path, read_only: bool, wait_s: float, locked_down: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to `path`, retrying DuckDB's lock error for `wait_s` seconds (then
    WarehouseBusy) after 5 ms, 10 ms, ... up to 200 ms, each x (0.5 + random()); other errors at once.
    `locked_down`: read-only, and no access to anything but this file (`LOCKED_DOWN`)."""
    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, duckdb.IOException) and _is_lock_error(exc)),
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(multiplier=0.0025, max=0.1) + wait_random_exponential(multiplier=0.005, max=0.2),
        reraise=True,
    )
    try:
        if locked_down:
            return retrying(duckdb.connect, str(path), read_only=True, config=dict(LOCKED_DOWN))
        return retrying(duckdb.connect, str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            raise WarehouseBusy(
                f"{path}: still locked by another process after {wait_s:.0f} s "
                "(a study writing, or a client holding it open): retry, or close that client"
            ) from exc
        raise


class Warehouse:
    """Handle on the DuckDB file. Cheap to create; holds no open connection.

    `read_only=True` is a reader's handle (a task in another process than the study's writer,
    `offramp sql`): it never opens the file for writing and never migrates it, and its connections
    are locked down (`LOCKED_DOWN`): a query can neither write a file nor read any other."""

    def __init__(self, path: Path | str, *, wait_s: float = 60.0, read_only: bool = False) -> None:
        self.path = Path(path).expanduser().resolve()
        self.wait_s = wait_s
        self.read_only = read_only
        self._lock = _process_lock(self.path)

    def ensure_schema(self) -> None:
        """Create/upgrade the schema and (re)apply the views, once per process and file."""
        if self.path in _READY or self.read_only:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            con = _open(self.path, read_only=False, wait_s=self.wait_s)
            try:
                migrate.apply_migrations(con)
                migrate.apply_views(con)
            finally:
                con.close()
            _READY.add(self.path)

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: all of the block lands, or none of it."""
        if self.read_only:
            raise RuntimeError(f"{self.path}: a read-only warehouse handle cannot write")
        self.ensure_schema()
        with self._lock:
            con = _open(self.path, read_only=False, wait_s=self.wait_s)
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

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read connection. From the writing process it shares the writer's lock; from any other
        process it opens the file read-only, so the file must exist: a missing one is `NoWarehouse`
        (a user error with what to do), never a FileNotFoundError a caller would have to tell
        apart from a missing file of offramp's own."""
        if not self.path.exists():
            raise NoWarehouse(f"{self.path}: no warehouse yet (run a study first, e.g. `offramp demo`)")
        with self._lock:
            read_only = self.read_only or self.path not in _READY
            con = _open(self.path, read_only=read_only, wait_s=self.wait_s, locked_down=self.read_only)
            try:
                yield con
            finally:
                con.close()

    def fetch(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run one read query; return (column names, rows)."""
        with self.reader() as con:
            cursor = con.execute(sql, params) if params is not None else con.execute(sql)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            return columns, cursor.fetchall()


def insert_rows(con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[dict[str, Any]]) -> int:
    """Bulk-insert rows with the columnar query `queries/<name>.sql` (it UNNESTs one list per
    column, which is ~100x faster than executemany). Every row must have the same keys."""
    if not rows:
        return 0
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    con.execute(query(name), columns)
    return len(rows)
