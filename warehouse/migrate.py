"""A tiny migration runner: numbered, append-only schema files plus re-applied view files.

`migrations/NNNN_name.sql` are applied once each, in order, inside one transaction per file, and
recorded in `schema_migrations`. The runner refuses gaps and duplicate numbers, and refuses a
database that is newer than this code (a version it does not know). `views/*.sql` are
`CREATE OR REPLACE VIEW` statements applied on every start in file-name order (prefix them with
a number where one view uses another). Each file runs as one script (DuckDB executes every
statement of it, string literals and comments included as written: no splitting here), inside
a transaction of its own, so a file lands whole or not at all. Limit: no down-migrations.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from offramp.errors import SchemaError

HERE = Path(__file__).parent
MIGRATIONS = HERE / "migrations"
VIEWS = HERE / "views"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files(folder: Path = MIGRATIONS) -> list[tuple[int, Path]]:
    """The numbered migration files, checked for gaps and bad names."""
    found: list[tuple[int, Path]] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise SchemaError(f"{path}: migration file names must look like 0001_name.sql")
        found.append((int(match.group(1)), path))
    for expected, (number, path) in enumerate(found, start=1):
        if number != expected:
            raise SchemaError(f"{path}: expected migration number {expected:04d} (no gaps, no duplicates)")
    return found


def _run_script(con: duckdb.DuckDBPyConnection, script: str) -> None:
    """One file's statements, all or none (DuckDB runs a multi-statement string as it is)."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(script)
    except Exception:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def apply_migrations(con: duckdb.DuckDBPyConnection, folder: Path = MIGRATIONS) -> list[int]:
    """Apply the migrations this database lacks; return the numbers applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT now())"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    files = migration_files(folder)
    known = {number for number, _ in files}
    if applied - known:
        raise SchemaError(
            f"the warehouse has schema versions {sorted(applied - known)} that this offramp does not know: "
            "upgrade offramp or point OFFRAMP_WAREHOUSE at another file"
        )
    done = []
    for number, path in files:
        if number in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, path.name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        done.append(number)
    return done


def apply_views(con: duckdb.DuckDBPyConnection, folder: Path = VIEWS) -> list[str]:
    """(Re)create every view; return their file names."""
    names = []
    for path in sorted(folder.glob("*.sql")):
        _run_script(con, path.read_text())
        names.append(path.name)
    return names
