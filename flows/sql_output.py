"""How `offramp sql` prints a result besides its table: JSON whose JSON columns stay JSON, and one
field per line for rows too wide for a table (as DuckDB's `.mode line` or psql's `\\x`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def _value(value: Any, type_name: str) -> Any:
    """A JSON column's text parsed, so it is emitted as JSON (not as a string holding JSON)."""
    if type_name == "JSON" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:  # DuckDB checks JSON on insert; a value it let through stays text
            return value
    return value


def as_json(columns: Sequence[str], types: Sequence[str], rows: Sequence[tuple]) -> str:
    """One JSON array of objects; a JSON-typed column (DuckDB type JSON) is nested, not re-encoded."""
    items = [{c: _value(v, t) for c, t, v in zip(columns, types, row)} for row in rows]
    return json.dumps(items, default=str, indent=1) + "\n"


def as_lines(columns: Sequence[str], rows: Sequence[tuple]) -> str:
    """Every row as a block of `name = value` lines (names right-aligned, values whole: nothing
    is cut), blocks separated by a blank line and headed by the row's number."""
    width = max((len(c) for c in columns), default=0)
    blocks = []
    for n, row in enumerate(rows, start=1):
        lines = [f"-- row {n} --"]
        for name, value in zip(columns, row):
            text = "NULL" if value is None else str(value)
            first, *rest = text.split("\n") or [""]
            lines.append(f"{name.rjust(width)} = {first}")
            lines += [" " * (width + 3) + more for more in rest]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "(no rows)\n")
