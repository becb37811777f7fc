"""Benchmark: readers beside a writing study (issue 10, "Build 5"). Not a test; nothing asserts.

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.readers [--modes today,a,a+c] [--hold-s 70]`.
Each row runs the same real study (tests/run_fake_study.py: the fake provider, 8 search trials,
~45 s alone on 2 cores) in its own process, three times:
  alone                -> wall time (s);
  beside looping readers: a plain `duckdb.connect(path, read_only=True)`, one query, close, every
                          10 ms for the whole study, of the warehouse and (another reader) of its
                          reader snapshot -> the share of those opens that fail, and the study's
                          wall time over `alone`;
  beside a held reader: a plain read-only connection opened once the search has begun and held
                          `--hold-s` seconds (default 70: longer than the 60 s after which the
                          study used to give up) -> whether the study completed.
Modes (the same code, the warehouse's write path set as named, in the study's process):
  today  the writes before issue 10: synchronous, retried on the lock error for 60 s, then the
         study fails (`WarehouseBusy`);
  a      what offramp does (`Warehouse.defer`): a write waits 0.5 s, then is kept in order and
         written by a background thread when the file frees, no deadline; reads of what the study
         wrote wait, with no deadline;
  a+c    (a), and every write batched: kept and written together at most once a second (fewer,
         larger write windows).
Then (b), a reader snapshot: the cost of copying the warehouse atomically (copy, then rename over
the snapshot) against its size, while holding a read-only connection on it so no writer changes it
mid-copy (the study's writes wait that long). A reader of the snapshot never contends with a
writer: no process ever opens it for writing.
(d) DuckLake is not measured: its extension ships on PyPI only for DuckDB <= 1.5.5 (offramp pins
2.0.0) and cannot be installed from DuckDB's own repository here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_TRIALS = 8
LOOPER = """
import os, sys, time, duckdb
path, stop = sys.argv[1], sys.argv[2]
opened = failed = 0
while not os.path.exists(stop):
    if os.path.exists(path):  # the snapshot appears after the study's first writes
        try:
            con = duckdb.connect(path, read_only=True)
            con.execute("select count(*) from calls").fetchall()
            con.close()
            opened += 1
        except duckdb.Error:
            failed += 1
    time.sleep(0.01)
print(opened, failed, flush=True)
"""
HOLDER = """
import sys, time, duckdb
while True:  # its open fails while a write holds the file: retried
    try:
        con = duckdb.connect(sys.argv[1], read_only=True)
        break
    except duckdb.IOException:
        time.sleep(0.01)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


# ------------------------------------------------------------------ the write path of each mode
def _today() -> None:
    """Before issue 10: every write synchronous, the lock error retried for 60 s, then WarehouseBusy."""
    from offramp.warehouse import db

    def defer(self, apply, lookups=None) -> None:
        self.ensure_schema()
        with self._state.lock:
            con = db._open(self.path, read_only=False, wait_s=60.0)
            try:
                con.execute("BEGIN TRANSACTION")
                apply(con)
                con.execute("COMMIT")
            finally:
                con.close()

    db.Warehouse.defer = defer
    db.Warehouse._open_for_writing = lambda self, wait_s, what: db._open(self.path, read_only=False, wait_s=60.0)
    db.Warehouse._open_for_reading = lambda self: db._open(self.path, read_only=True, wait_s=60.0)


def _batched(every_s: float = 1.0) -> None:
    """(a) with every write kept and written with the others at most once every `every_s`."""
    from offramp.warehouse import db

    def defer(self, apply, lookups=None) -> None:
        self.ensure_schema()
        state = self._state
        with state.lock:
            self._raise_failure()
            state.queue.append(db._Write(apply, dict(lookups or {})))
            state.lookups.update(lookups or {})
            if state.flusher is None:
                state.flusher = threading.Thread(target=write_later, args=(self,), daemon=True)
                state.flusher.start()
                db._flush_at_exit(self)

    def write_later(self) -> None:
        time.sleep(every_s)
        while True:
            with self._state.lock:
                if self._drain(0):
                    self._state.flusher = None
                    return
            time.sleep(0.1)

    db.Warehouse.defer = defer


MODES = {"today": _today, "a": lambda: None, "a+c": _batched}


def run_study_in_mode(mode: str, feature: str, space: str) -> None:
    """The study process: set the mode's write path, then run the study."""
    from tests.run_fake_study import main

    MODES[mode]()
    sys.argv = ["run_fake_study", feature, space, str(MAX_TRIALS)]
    main()


# ------------------------------------------------------------------------------ the measurement
def _start(mode: str, home: Path, feature: Path, space: Path) -> subprocess.Popen:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}  # a loaded machine: Prefect's 20 s is short
    env.pop("PREFECT_API_URL", None)
    env.pop("OFFRAMP_WAREHOUSE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bench.readers", "--study", mode, str(feature), str(space)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _count(path: Path, sql: str) -> int:
    from offramp.warehouse import Warehouse

    try:
        return Warehouse(path, read_only=True, wait_s=30).fetch(sql)[1][0][0]
    except Exception:  # noqa: BLE001 - no file or no schema yet
        return 0


def _finish(study: subprocess.Popen, started: float) -> tuple[bool, float, str]:
    out, err = study.communicate(timeout=1800)
    return study.returncode == 0 and "completed" in out, time.monotonic() - started, err


def alone(mode: str, root: Path, feature: Path, space: Path) -> float:
    ok, wall, err = _finish(_start(mode, root / f"{mode}-alone", feature, space), time.monotonic())
    if not ok:
        raise SystemExit(f"{mode}: the study failed on its own:\n{err[-2000:]}")
    return wall


def looped(mode: str, root: Path, feature: Path, space: Path) -> tuple[bool, float, dict[str, tuple[int, int]]]:
    """The study beside two looping readers: one of the warehouse, one of its reader snapshot."""
    home = root / f"{mode}-looped"
    started = time.monotonic()
    study = _start(mode, home, feature, space)
    while not (home / "warehouse.duckdb").exists() and study.poll() is None:
        time.sleep(0.05)
    stop = root / f"{mode}-stop"
    loopers = {name: subprocess.Popen([sys.executable, "-c", LOOPER, str(home / name), str(stop)], stdout=subprocess.PIPE, text=True)
               for name in ("warehouse.duckdb", "warehouse.snapshot.duckdb")}
    ok, wall, _ = _finish(study, started)
    stop.touch()
    counts = {name: tuple(map(int, p.communicate(timeout=60)[0].split())) for name, p in loopers.items()}
    return ok, wall, counts


def held(mode: str, root: Path, feature: Path, space: Path, hold_s: float) -> tuple[bool, float, str]:
    home = root / f"{mode}-held"
    started = time.monotonic()
    study = _start(mode, home, feature, space)
    while _count(home / "warehouse.duckdb", "select count(*) from trials where optuna_number is not null") == 0:
        if study.poll() is not None:
            break
        time.sleep(0.2)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home / "warehouse.duckdb"), str(hold_s)],
                              stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    try:
        ok, wall, err = _finish(study, started)
    finally:
        holder.kill()
        holder.wait()
    last = [line for line in err.splitlines() if "locked" in line or "held open" in line]
    return ok, wall, (last[-1] if last else "")[:160]


def snapshot_costs(root: Path, sizes_mb: list[int]) -> list[tuple[int, float, float]]:
    """(size MB, median seconds to copy + rename, MB/s) for warehouses of these sizes."""
    import duckdb

    out = []
    for size in sizes_mb:
        path = root / f"w{size}.duckdb"
        con = duckdb.connect(str(path))
        # text that compresses like model answers do (not at all well): random hex
        con.execute(f"create table calls as select md5(random()::varchar) || md5(random()::varchar) as t "
                    f"from range({size * 11_000})")
        con.close()
        actual = path.stat().st_size / 1e6
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            reader = duckdb.connect(str(path), read_only=True)  # no writer may change it mid-copy
            shutil.copyfile(path, root / "snapshot.tmp")
            reader.close()
            os.replace(root / "snapshot.tmp", root / "snapshot.duckdb")
            seconds.append(time.perf_counter() - started)
        out.append((round(actual), statistics.median(seconds), actual / statistics.median(seconds)))
        path.unlink()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="today,a,a+c")
    parser.add_argument("--hold-s", type=float, default=70.0)
    parser.add_argument("--sizes-mb", default="5,50,200,500")
    parser.add_argument("--study", nargs=3, metavar=("MODE", "FEATURE", "SPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.study:
        run_study_in_mode(*args.study)
        return
    from tests.helpers import make_feature, make_space

    root = Path(tempfile.mkdtemp(prefix="offramp-bench-readers-"))
    feature = make_feature(root / "feature", n=90, extra={"splits": {"seed": 5, "train": 30, "dev": 30, "test": 30}})
    space = make_space(root / "space.yaml", ["fake/good", "fake/cheap"],
                       strategies={"incumbent": {}, "zero_shot": {}, "few_shot": {"k": [2]}}, output_mode=["text"], max_tokens=[8])
    print(f"{'mode':6} | {'alone s':>7} | {'looped s':>8} | {'overhead':>8} | {'opens':>5} | {'failed':>6} | "
          f"{'snapshot opens':>14} | {'failed':>6} | {'held ' + str(int(args.hold_s)) + ' s: study':>20} | {'held s':>6} | "
          "last lock message")
    for mode in args.modes.split(","):
        base = alone(mode, root, feature, space)
        ok_loop, wall_loop, counts = looped(mode, root, feature, space)
        ok_held, wall_held, message = held(mode, root, feature, space, args.hold_s)
        (opened, failed), (snap_opened, snap_failed) = counts["warehouse.duckdb"], counts["warehouse.snapshot.duckdb"]
        total, snap_total = opened + failed, snap_opened + snap_failed
        print(f"{mode:6} | {base:7.1f} | {wall_loop:8.1f} | {wall_loop / base:7.2f}x | {total:5d} | "
              f"{failed / max(1, total):6.1%} | {snap_total:14d} | {snap_failed / max(1, snap_total):6.1%} | "
              f"{'completed' if ok_held else 'FAILED':>20} | {wall_held:6.1f} | {message}"
              + ("" if ok_loop else "  (the looped study FAILED)"), flush=True)
    print()
    print("(b) reader snapshot: copy + rename, holding a read-only connection on the warehouse")
    print(f"{'size MB':>7} | {'seconds':>7} | {'MB/s':>6}")
    for size, seconds, rate in snapshot_costs(root, [int(s) for s in args.sizes_mb.split(",")]):
        print(f"{size:7d} | {seconds:7.3f} | {rate:6.0f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
