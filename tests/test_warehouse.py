from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from offramp.errors import SchemaError
from offramp.warehouse import Warehouse, migrate, records


def test_fresh_file_gets_schema_and_views(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.ensure_schema()
    with duckdb.connect(str(wh.path), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables where table_type = 'BASE TABLE'").fetchall()}
        views = {r[0] for r in con.execute("select table_name from information_schema.tables where table_type = 'VIEW'").fetchall()}
        versions = [r[0] for r in con.execute("select version from schema_migrations order by version").fetchall()]
    assert {"features", "studies", "trials", "calls", "llm_cache"} <= tables
    assert {"v_trials", "v_pareto_front", "v_leaderboard", "v_study_spend"} <= views
    assert versions == [n for n, _ in migrate.migration_files()]


def test_existing_file_is_left_as_is_and_only_new_migrations_apply(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    assert migrate.apply_migrations(con) == [n for n, _ in migrate.migration_files()]
    con.execute("insert into features values ('f', 'd', 'p', 'h', '{}', now())")
    assert migrate.apply_migrations(con) == []  # nothing re-applied, data kept
    assert con.execute("select count(*) from features").fetchone()[0] == 1
    con.close()


def test_new_migration_on_existing_file(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert migrate.apply_migrations(con, folder) == [1]
    (folder / "0002_b.sql").write_text("ALTER TABLE a ADD COLUMN y TEXT;\nCREATE TABLE b (z TEXT);\n")
    assert migrate.apply_migrations(con, folder) == [2]
    assert [r[0] for r in con.execute("select column_name from information_schema.columns where table_name = 'a'").fetchall()] == ["x", "y"]


def test_gaps_and_bad_names_are_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    (folder / "0003_c.sql").write_text("CREATE TABLE c (x INTEGER);")
    with pytest.raises(SchemaError, match="expected migration number 0002"):
        migrate.migration_files(folder)
    (folder / "0003_c.sql").unlink()
    (folder / "two.sql").write_text("")
    with pytest.raises(SchemaError, match="0001_name.sql"):
        migrate.migration_files(folder)


def test_a_failing_migration_leaves_nothing_half_applied(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);\nCREATE TABLE broken (;\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(duckdb.Error, match="syntax error at or near"):
        migrate.apply_migrations(con, folder)
    assert con.execute("select count(*) from information_schema.tables where table_name = 'a'").fetchone()[0] == 0
    assert con.execute("select count(*) from schema_migrations").fetchone()[0] == 0


def test_a_semicolon_at_a_line_end_inside_a_string_literal_stays_in_the_string(tmp_path):
    """A migration runs as DuckDB parses it: `;` then a newline inside a literal is data, not the
    end of a statement (the old runner split the file there and broke valid SQL)."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_a.sql").write_text(
        "-- notes keep their own ; at a line end;\n"
        "CREATE TABLE notes (body TEXT);\n"
        "INSERT INTO notes VALUES ('a;\nb');\n"
    )
    (folder / "0002_comment_only.sql").write_text("-- nothing to do in this version;\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert migrate.apply_migrations(con, folder) == [1, 2]
    assert con.execute("select body from notes").fetchall() == [("a;\nb",)]


def test_a_newer_database_is_refused(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate.apply_migrations(con)
    con.execute("insert into schema_migrations (version, name) values (99, '0099_future.sql')")
    with pytest.raises(SchemaError, match="does not know"):
        migrate.apply_migrations(con)


def test_writer_block_is_all_or_nothing(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="m", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    with pytest.raises(RuntimeError, match="crash mid-write"), wh.writer() as con:
        con.execute("update studies set status = 'completed' where id = 's'")
        raise RuntimeError("crash mid-write")
    _, [(status,)] = wh.fetch("select status from studies where id = 's'")
    assert status == "running"


def test_bulk_calls_round_trip(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    now = dt.datetime.now()
    calls = [
        records.CallRecord("s", 1, f"e{i}", "m", '{"t": 0}', "ph", f"k{i}", "out" if i % 2 else None,
                           '{"label": "a"}' if i % 2 else None, float(i % 2), 10, 2, 0.5, 0.1, 0.5, 0.1,
                           None if i % 2 else "Timeout: x", bool(i % 3 == 0), 1, "eval", now)
        for i in range(500)
    ]
    records.store_calls(wh, calls)
    _, [(n, scored, errors, hits)] = wh.fetch(
        "select count(*), sum(score), count(error), count(*) filter (where cache_hit) from calls"
    )
    assert (n, scored, errors, hits) == (500, 250, 250, 167)


def test_a_file_locked_by_another_process_raises_busy_after_the_wait(tmp_path):
    import subprocess
    import sys
    import time

    from offramp.errors import WarehouseBusy

    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; con = duckdb.connect({str(path)!r}); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match="still locked by another process"):
            Warehouse(path, wait_s=0.5).fetch("select 1")
        assert time.monotonic() - started >= 0.5  # retried until the deadline, not given up at once
    finally:
        holder.kill()
        holder.wait()
    assert Warehouse(path, wait_s=5).fetch("select 1") == (["1"], [(1,)])  # released: opens again


def test_an_error_other_than_the_lock_is_not_retried(tmp_path):
    import time

    from offramp.warehouse.db import _open

    started = time.monotonic()
    with pytest.raises(duckdb.IOException, match="database does not exist"):
        _open(tmp_path / "no-such-dir" / "w.duckdb", read_only=True, wait_s=30)
    assert time.monotonic() - started < 5


def test_settings_come_from_the_environment_afresh_with_the_documented_defaults(tmp_path, monkeypatch):
    from offramp.flows.cli_watch import _notices_file
    from offramp.tasks.gateway.plugins import load_plugins
    from offramp.tasks.watch.registry import features_root
    from offramp.tasks.watch.releases import releases_dir
    from offramp.warehouse import home

    names = [f"OFFRAMP_{name.upper()}" for name in home.OfframpSettings.model_fields]
    assert all(f"| `{name}` |" in home.__doc__ for name in names)  # the docstring's table lists every setting
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OFFRAMP_PYTHON", "python3.11")  # ./dev's own variable: not a setting, ignored
    monkeypatch.chdir(tmp_path)
    assert home.state_dir() == tmp_path / ".offramp"
    assert home.warehouse_path() == tmp_path / ".offramp" / "warehouse.duckdb"
    assert features_root() == tmp_path / "features" and releases_dir() == tmp_path / "releases"
    assert _notices_file(None) is None and load_plugins() == []

    monkeypatch.setenv("OFFRAMP_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("OFFRAMP_WAREHOUSE", "elsewhere/w.duckdb")
    monkeypatch.setenv("OFFRAMP_FEATURES", "feats")
    monkeypatch.setenv("OFFRAMP_RELEASES", "")  # empty counts as unset
    monkeypatch.setenv("OFFRAMP_NOTICES", "notices.yaml")
    monkeypatch.setenv("OFFRAMP_PLUGINS", "json, os.path")
    assert home.state_dir() == tmp_path / "state" and (tmp_path / "state").is_dir()
    assert home.warehouse_path() == tmp_path / "elsewhere" / "w.duckdb"
    assert features_root() == tmp_path / "feats" and features_root("mine") == tmp_path / "mine"
    assert releases_dir() == tmp_path / "releases"
    assert _notices_file(None) == str(tmp_path / "notices.yaml")
    assert load_plugins() == ["json", "os.path"]


@pytest.mark.parametrize(("users", "expected"), [(None, 90), ("300", 300)])
def test_prefect_ephemeral_startup_timeout_defaults_to_90s_and_a_users_value_wins(monkeypatch, tmp_path, users, expected):
    import os

    from prefect.settings import Settings

    from offramp.warehouse.home import configure_environment

    key = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    environ = {k: v for k, v in os.environ.items() if k != key}  # configure_environment writes this copy only
    if users is not None:
        environ[key] = users
    environ["OFFRAMP_HOME"] = str(tmp_path / "home")
    monkeypatch.setattr(os, "environ", environ)
    configure_environment()
    assert environ[key] == str(expected)
    assert Settings().server.ephemeral.startup_timeout_seconds == expected  # the name Prefect reads


def test_model_health_counts_errors_retries_and_wall_time_per_model(tmp_path):
    """v_model_health: per study and model, the paid calls' errors (after retries), retries, and
    p95 of the wall time per answer; cache hits are not calls a provider served."""
    import datetime as dt

    wh = Warehouse(tmp_path / "w.duckdb")
    now = dt.datetime.now()

    def call(i, model, *, attempts=1, error=None, latency=0.1, cache_hit=False):
        return records.CallRecord("s", 0, f"e{i}", model, "{}", "p", f"k{i}", None if error else "ok", None, None, 1, 1,
                                  0.0 if cache_hit else 0.01, latency, 0.01, latency, error, cache_hit, 0 if cache_hit else attempts,
                                  "eval", now)

    records.store_calls(wh, [
        call(0, "m/a"), call(1, "m/a", attempts=3, latency=5.0), call(2, "m/a", error="Timeout", attempts=4),
        call(3, "m/a", cache_hit=True), call(4, "m/b", latency=0.2),
    ])
    cols, rows = wh.fetch("select * from v_model_health where study_id = 's' order by model")
    health = [dict(zip(cols, r)) for r in rows]
    a, b = health
    assert (a["model"], a["n_calls"], a["n_errors"], a["n_retried"], a["retries"]) == ("m/a", 3, 1, 2, 5)
    assert a["error_rate"] == pytest.approx(1 / 3) and a["retried_rate"] == pytest.approx(2 / 3)
    assert a["wall_p95_s"] == pytest.approx(0.1 + 0.95 * (5.0 - 0.1))  # the answered calls: 0.1 s and 5.0 s
    assert (b["model"], b["n_calls"], b["n_errors"], b["retries"]) == ("m/b", 1, 0, 0)

