"""The reader snapshot: `<warehouse>.snapshot.duckdb` beside the warehouse, a copy that no process
ever opens for writing. A reader that opens it (a notebook, the DuckDB CLI, a dashboard) never
contends with a study for DuckDB's file lock, however long it holds it and however often it opens
it; the study never waits for its readers. It lags the warehouse by a few seconds (`due`).

The writing process takes it after its writes, at most every `MIN_INTERVAL_S` and never more often
than `COST_FACTOR` times what the last copy took (so copying costs the study at most ~5% of its
time, whatever the warehouse's size; `bench/readers.py` measures the copy), and once more a moment
after its last write. A copy is consistent: it is taken with a read-only connection open on the
warehouse (no writer can change the file meanwhile) and only when no write-ahead log is pending,
into a temporary file that is then renamed over the snapshot (atomic: a reader opening it gets the
old copy or the new one, and one holding the old copy keeps it).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)
MIN_INTERVAL_S = 2.0
COST_FACTOR = 20.0


def snapshot_path(warehouse: Path) -> Path:
    """`warehouse.duckdb` -> `warehouse.snapshot.duckdb` (the same folder)."""
    return warehouse.with_name(f"{warehouse.stem}.snapshot{warehouse.suffix or '.duckdb'}")


def due(last_taken: float, last_cost_s: float, now: float | None = None) -> float:
    """Seconds until the next snapshot may be taken (0: now)."""
    wait = max(MIN_INTERVAL_S, COST_FACTOR * last_cost_s)
    return max(0.0, last_taken + wait - (time.monotonic() if now is None else now))


def take(warehouse: Path) -> float | None:
    """Copy the warehouse to its snapshot, atomically; the seconds it took, or None when it could
    not be taken now (a writer of another process holds the file, or a write-ahead log is pending).
    Call from the writing process with no connection of its own open on the file."""
    try:
        reader = duckdb.connect(str(warehouse), read_only=True)  # keeps any writer out while copying
    except duckdb.IOException:
        return None
    started = time.perf_counter()
    target = snapshot_path(warehouse)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        if Path(f"{warehouse}.wal").exists():
            return None
        shutil.copyfile(warehouse, partial)
        os.replace(partial, target)
    except OSError as exc:  # a full disk, say: the study goes on; readers keep the last snapshot
        log.warning("%s: no new reader snapshot: %s", target, exc)
        partial.unlink(missing_ok=True)
        return None
    finally:
        reader.close()
    return time.perf_counter() - started
