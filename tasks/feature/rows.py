"""Reading a feature's data files: CSV (a header, one value per header column) or JSONL (one JSON
object per line), UTF-8. A malformed row is refused naming the file, the row and what was expected."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from offramp.errors import UserError
from offramp.search_spaces.validation import read_utf8


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "csv":
        return csv_rows(path, read_utf8(path, error=UserError))
    return [row for _, row in jsonl_rows(path)]


def jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-empty line of a JSONL file; a line that is not a JSON
    object is refused naming the file and the line."""
    rows = []
    for number, line in enumerate(io.StringIO(read_utf8(path, error=UserError), newline=None), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number} is not valid JSON ({exc.msg}); expected one JSON object per line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {number} is a {type(row).__name__}; expected a JSON object")
        rows.append((number, row))
    return rows


def csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    """The rows of a CSV file; a row whose field count is not the header's is refused (csv's
    DictReader would file extra fields under the key None and fill missing ones with None)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    for number, row in enumerate(reader, start=1):
        extra = row.get(None)
        missing = [k for k, v in row.items() if v is None]
        if extra or missing:
            count = len(reader.fieldnames) + len(extra or []) - len(missing)
            raise UserError(
                f"{path}: row {number} (line {reader.line_num}) has {count} fields, but the header has "
                f"{len(reader.fieldnames)} ({', '.join(reader.fieldnames)}); expected one value per header column "
                "(quote a value that holds a comma)"
            )
        rows.append(row)
    return rows


def slice_file_ids(path: Path, spec_path: Path, field: str, known: set[str]) -> set[str]:
    """The example ids a slice file lists (`data.slice_files`: a CSV with an `example_id` column),
    each checked to be an example of the data."""
    text = read_utf8(path, error=UserError)
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if "example_id" not in header:
        raise UserError(f"{spec_path}: field `{field}`: {path.name} has no `example_id` column (its header: {header}); "
                        "expected a CSV with an `example_id` column")
    rows = csv_rows(path, text)
    ids = set()
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        value = str(row["example_id"]).strip()
        if value not in known:
            raise UserError(f"{spec_path}: field `{field}`: {path.name} line {number}: example_id {value!r} is not an example "
                            "of the data; expected ids of the data's examples")
        ids.add(value)
    return ids
