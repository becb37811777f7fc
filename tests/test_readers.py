"""Readers never break a study (issue 10, "Build 5"): a plain DuckDB client holding the warehouse
open read-only for longer than any timeout, or opening and querying it in a loop, while a real
study (fake provider, its own process) writes. The study completes and loses nothing: its trials
and calls are the ones a run without the reader stores."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from offramp.warehouse import Warehouse
from tests.conftest import ROOT
from tests.helpers import make_feature, make_space

MAX_TRIALS = 8
HOLD_S = 70  # longer than the 60 s after which the study used to die of a busy file ("still locked ... after 60 s")
HOLDER = """
import sys, time, duckdb
while True:  # a notebook's plain read-only connection (its open fails while a write holds the file: retried)
    try:
        con = duckdb.connect(sys.argv[1], read_only=True)
        break
    except duckdb.IOException:
        time.sleep(0.01)
print(con.execute("select count(*) from trials").fetchone()[0], flush=True)
time.sleep(float(sys.argv[2]))
"""
LOOPER = """
import os, sys, time, duckdb
path, stop = sys.argv[1], sys.argv[2]
opened = failed = 0
while not os.path.exists(stop):
    if os.path.exists(path):
        try:
            con = duckdb.connect(path, read_only=True)
            con.execute("select count(*) from calls").fetchall()
            con.close()
            opened += 1
        except duckdb.Error:  # the lock error, or anything else a reader would see
            failed += 1
    time.sleep(0.01)
print(opened, failed, flush=True)
"""


def start_study(home, feature, space) -> subprocess.Popen:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
           "OFFRAMP_WAREHOUSE_WAIT_S": "2"}
    env.pop("PREFECT_API_URL", None)
    env.pop("OFFRAMP_WAREHOUSE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.run_fake_study", str(feature), str(space), str(MAX_TRIALS)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def read(home, sql: str) -> list[tuple]:
    return Warehouse(home / "warehouse.duckdb", read_only=True, wait_s=120).fetch(sql)[1]


def check_nothing_lost(home) -> dict:
    """What a completed study must have stored, whatever the timing (racing prunes on latency, so
    two runs need not prune the same trials): every Optuna trial in `trials` in the same state,
    every trial closed with all the calls its stages evaluated, every paid answer in the cache.
    Returns what does not depend on timing, to compare with a run without a reader."""
    import optuna

    [(study_id, status, selected)] = read(home, "select id, status, selected_trial_id is not null from studies")
    assert (status, selected) == ("completed", True)
    optuna_trials = optuna.load_study(study_name=study_id, storage=f"sqlite:///{home / 'optuna.db'}").get_trials()
    states = {t.user_attrs["offramp_trial_id"]: t.state.name for t in optuna_trials if "offramp_trial_id" in t.user_attrs}
    recorded = dict(read(home, "select trial_id, status from trials where optuna_number is not null"))
    assert recorded == {i: {"COMPLETE": "completed", "PRUNED": "pruned"}[state] for i, state in states.items()}
    assert read(home, "select count(*) from trials where status not in ('completed', 'pruned')") == [(0,)]
    short = read(home, "select t.trial_id, t.n_examples, count(c.trial_id) from trials t "
                       "left join calls c on c.trial_id = t.trial_id and c.purpose = 'eval' group by all "
                       "having count(c.trial_id) <> t.n_examples")
    assert short == []  # every stage's calls are there
    unwritten = read(home, "select count(*) from calls where not cache_hit and error is null "
                           "and cache_key not in (select cache_key from llm_cache)")
    assert unwritten == [(0,)]
    return {
        "incumbent": read(home, "select split, model, status, n_examples, quality from trials where role = 'incumbent' order by split"),
        "incumbent_answers": read(home, "select example_id, output_text from calls where trial_id in "
                                        "(select trial_id from trials where role = 'incumbent') order by all"),
        "search_configs": read(home, "select model, strategy from trials where optuna_number is not null order by all"),
    }


def wait_for(home, sql: str, study: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (home / "warehouse.duckdb").exists():
            try:
                if read(home, sql)[0][0]:
                    return
            except Exception:  # noqa: BLE001 - the schema is not there yet
                pass
        assert study.poll() is None, study.stderr.read()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {sql}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study run with no reader: the yardstick."""
    root = tmp_path_factory.mktemp("readers")
    feature = make_feature(root / "feature", n=90, extra={"splits": {"seed": 5, "train": 30, "dev": 30, "test": 30}})
    space = make_space(root / "space.yaml", ["fake/good", "fake/cheap"],
                       strategies={"incumbent": {}, "zero_shot": {}, "few_shot": {"k": [2]}}, output_mode=["text"], max_tokens=[8])
    study = start_study(root / "reference", feature, space)
    _, err = study.communicate(timeout=600)
    assert study.returncode == 0, err[-3000:]
    return root, feature, space, check_nothing_lost(root / "reference")


def test_a_reader_holding_the_file_longer_than_any_timeout_does_not_break_the_study(reference):
    root, feature, space, expected = reference
    home = root / "held"
    study = start_study(home, feature, space)
    wait_for(home, "select count(*) from trials where optuna_number is not null", study)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home / "warehouse.duckdb"), str(HOLD_S)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip().isdigit()  # the reader has the file
    held_from = time.time()
    try:
        _, err = study.communicate(timeout=HOLD_S + 600)
    finally:
        holder.kill()
        holder.wait()
    assert study.returncode == 0, err[-3000:]
    assert time.time() - held_from >= HOLD_S - 1  # the study could not finish while the file was held
    assert check_nothing_lost(home) == expected
    said = [line for line in err.splitlines() if f"held open by another process (pid {holder.pid})" in line]
    assert len(said) == 1, err[-3000:]  # said once, in one line, naming the reader's pid
    # the study went on calling models while the reader held the file
    during = read(home, f"select count(*) from calls where created_at > to_timestamp({held_from + 2})::timestamp "
                        f"and created_at < to_timestamp({held_from + HOLD_S - 10})::timestamp")
    assert during[0][0] > 0


def test_readers_opening_in_a_loop_during_a_study_do_not_break_it_and_the_snapshot_never_fails(reference):
    """Plain read-only opens of the warehouse fail while a write holds it (the rate is printed);
    opens of the reader snapshot never fail, and once the study is done it holds the study."""
    root, feature, space, expected = reference
    home = root / "looped"
    study = start_study(home, feature, space)
    wait_for(home, "select count(*) from trials", study)
    stop = root / "stop-looping"
    loopers = {name: subprocess.Popen([sys.executable, "-c", LOOPER, str(home / name), str(stop)], stdout=subprocess.PIPE, text=True)
               for name in ("warehouse.duckdb", "warehouse.snapshot.duckdb")}
    _, err = study.communicate(timeout=600)
    stop.touch()
    counts = {name: tuple(map(int, p.communicate(timeout=60)[0].split())) for name, p in loopers.items()}
    for name, (opened, failed) in counts.items():
        print(f"{name}: {opened + failed} plain read-only opens during the study, {failed} failed with a lock error "
              f"({failed / max(1, opened + failed):.1%})")
    assert study.returncode == 0, err[-3000:]
    assert check_nothing_lost(home) == expected
    opened, failed = counts["warehouse.snapshot.duckdb"]
    assert opened > 100 and failed == 0
    snap = Warehouse(home / "warehouse.snapshot.duckdb", read_only=True)
    assert snap.fetch("select status from studies")[1] == [("completed",)]
    assert snap.fetch("select count(*) from calls")[1] == read(home, "select count(*) from calls")


# ------------------------------------------------------------------ the write queue, in one process
HOLD_FOR = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # nothing else writes the file
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOR, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _entry(key: str):
    import datetime as dt

    from offramp.warehouse.records import CacheEntry

    return CacheEntry(key, "m", "{}", f"answer {key}", 3, 1, 0.25, 0.1, dt.datetime.now())


def test_writes_while_a_reader_holds_the_file_are_kept_in_order_and_land_when_it_closes(tmp_path, caplog):
    """The study's writes do not wait for a reader: they are kept, answered from memory meanwhile
    (the cache, compiled programs), and land in order when the reader closes; a read of what this
    process wrote waits for that, saying once, in one line, who holds the file."""
    import logging
    import threading

    from offramp.warehouse import records

    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="m", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    holder = _hold(wh.path, 6)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="offramp.warehouse.db"):
            records.cache_store(wh, [_entry("k1")])
            for trial_id in range(3):  # a trial row, then its measurement: in order, or the update finds nothing
                records.start_trial(wh, study_id="s", trial_id=trial_id, role="candidate", split="dev", source_trial_id=None,
                                    config_hash="h", model="m", settings={})
                records.finish_trial(wh, study_id="s", trial_id=trial_id,
                                     measurement=records.TrialMeasurement(quality=0.5 + trial_id / 10), calls=[])
            records.cache_store(wh, [_entry("k2")])
            assert time.monotonic() - started < 3  # kept, not waited for (the reader holds the file 6 s)
            assert set(records.cache_lookup(wh, ["k1", "k2", "k3"])) == {"k1", "k2"}  # answered from what is kept
            assert holder.poll() is None
            read = threading.Thread(target=lambda: read.__setattr__("rows", wh.fetch(
                "select trial_id, status, quality from trials order by trial_id")[1]))
            read.start()
            read.join(timeout=60)
        assert holder.poll() is not None  # the read waited for the reader to close
    finally:
        holder.kill()
        holder.wait()
    assert read.rows == [(0, "completed", 0.5), (1, "completed", 0.6), (2, "completed", 0.7)]
    assert Warehouse(wh.path, read_only=True).fetch("select count(*) from llm_cache")[1] == [(2,)]
    said = [r.getMessage() for r in caplog.records if "held open by" in r.getMessage()]
    assert len(said) == 1 and f"(pid {holder.pid})" in said[0], said


def test_a_kept_write_that_fails_is_reported_to_the_next_writer(tmp_path):
    """A kept write that fails for another reason than the lock (a bug) is not swallowed."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.ensure_schema()
    holder = _hold(wh.path, 2)
    try:
        wh.defer(lambda con: con.execute("insert into no_such_table values (1)"))
    finally:
        holder.wait()
    deadline = time.monotonic() + 30
    while wh._state.flusher is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(Exception, match="no_such_table"):
        wh.flush()
    wh.flush()  # reported once; the queue goes on


def test_the_snapshot_follows_the_writes_and_a_reader_holding_it_never_delays_them(tmp_path):
    """The reader snapshot is refreshed after writes (atomically: a reader holding the old copy
    keeps it), and holding it open costs the writer nothing: writes land at once, none is kept."""
    from offramp.warehouse import records, snapshot

    wh = Warehouse(tmp_path / "w.duckdb")
    records.cache_store(wh, [_entry("k1")])
    snap = snapshot.snapshot_path(wh.path)
    assert snap == tmp_path / "w.snapshot.duckdb" and snap.exists()
    holder = _hold(snap, 30)
    try:
        deadline = time.monotonic() + 30
        for i in range(2, 6):
            started = time.monotonic()
            records.cache_store(wh, [_entry(f"k{i}")])
            assert time.monotonic() - started < 1 and not wh._state.queue  # written at once, not kept
        while time.monotonic() < deadline:  # the snapshot due after the last write is taken by itself
            if Warehouse(snap, read_only=True).fetch("select count(*) from llm_cache")[1] == [(5,)]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the snapshot never caught up with the warehouse")
        assert holder.poll() is None  # the reader of the old copy is still there
    finally:
        holder.kill()
        holder.wait()
