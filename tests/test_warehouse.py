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
    records.insert_calls(wh, calls)
    _, [(n, scored, errors, hits)] = wh.fetch(
        "select count(*), sum(score), count(error), count(*) filter (where cache_hit) from calls"
    )
    assert (n, scored, errors, hits) == (500, 250, 250, 167)
