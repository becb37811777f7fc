"""Saving a discovered slice into its feature (`offramp slices save`): its members' example ids go
to `slices/NAME.csv` (column `example_id`) in the feature folder, and feature.yaml gets the entry
`data.slice_files: [{name: NAME, path: slices/NAME.csv}]`, so the next study reports it like any
declared slice (NAME=yes / NAME=no).

feature.yaml is the user's file, comments and all, so it is never re-dumped: the entry is inserted
as text (a new `slice_files:` key at the end of the `data:` block, or an item appended to an existing
block-style `slice_files:` list), and the result is written (atomically: a temporary file, then a
rename) only if it parses to exactly the old YAML plus that entry and still validates as a feature
spec. Otherwise (e.g. `data:` written in flow style) only the CSV is written and the lines to add
are returned for the user to paste.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from offramp.errors import UserError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Saved:
    csv_path: Path
    spec_path: Path
    yaml_written: bool  # False: add `lines` to feature.yaml yourself
    lines: str
    already: bool = False  # feature.yaml already declared this slice file: only the CSV was rewritten


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def insert_entry(text: str, name: str, path: str) -> str | None:
    """feature.yaml's text with the slice file entry inserted (None: not a layout this can edit safely)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, x in enumerate(lines) if re.match(r"^data:\s*(#.*)?$", x.rstrip("\n"))), None)
    if start is None:
        return None
    end = start + 1  # one past the block's last indented content line
    for i in range(start + 1, len(lines)):
        if _content(lines[i]):
            if _indent(lines[i]) == 0:
                break
            end = i + 1
    children = [x for x in lines[start + 1:end] if _content(x)]
    if not children:
        return None
    ci = _indent(children[0])
    item = f"{{name: {name}, path: {path}}}\n"
    key = next((i for i in range(start + 1, end) if _content(lines[i]) and _indent(lines[i]) == ci
                and re.match(r"^slice_files:\s*(#.*)?$", lines[i].strip())), None)
    if key is None:
        new = [f"{' ' * ci}slice_files:\n", f"{' ' * (ci + 2)}- {item}"]
        return "".join(lines[:end] + new + lines[end:])
    last, item_indent = key, None
    for i in range(key + 1, end):
        if not _content(lines[i]):
            continue
        here = _indent(lines[i])
        if here < ci or (here == ci and not lines[i].strip().startswith("- ")):
            break
        if lines[i].strip().startswith("- ") and item_indent is None:
            item_indent = here
        last = i
    if item_indent is None:
        return None
    return "".join(lines[:last + 1] + [f"{' ' * item_indent}- {item}"] + lines[last + 1:])


def save_slice(spec_path: Path, name: str, member_ids: list[str], known_ids: set[str]) -> Saved:
    """Write `slices/<name>.csv` beside `spec_path` and declare it in feature.yaml (see the module
    docstring). `known_ids`: the feature's example ids; every member must be one."""
    if not NAME.match(name):
        raise UserError(f"slice name {name!r}: expected letters, digits, _ or - (starting with a letter or _)")
    unknown = sorted(set(member_ids) - known_ids)
    if unknown:
        raise UserError(f"{spec_path}: {len(unknown)} of the slice's members are not examples of this feature's data "
                        f"(e.g. {unknown[:3]}); expected a slice discovered on the feature's own examples (source 'test')")
    text = spec_path.read_text(encoding="utf-8")
    old = yaml.safe_load(text)
    data = old.get("data") if isinstance(old, dict) else None
    if not isinstance(data, dict):
        raise UserError(f"{spec_path}: field `data`: expected a mapping")
    rel = f"slices/{name}.csv"
    entries = data.get("slice_files") or []
    same = [e for e in entries if isinstance(e, dict) and e.get("name") == name]
    if same and same[0].get("path") != rel:
        raise UserError(f"{spec_path}: field `data.slice_files`: a slice named {name!r} already reads {same[0].get('path')!r}; "
                        "expected a new name")
    if name in (data.get("slices") or []):
        raise UserError(f"{spec_path}: field `data.slices`: {name!r} is already a slice column; expected a new name")
    csv_path = spec_path.parent / rel
    _atomic_write(csv_path, "example_id\n" + "".join(f"{_csv_value(i)}\n" for i in sorted(set(member_ids))))
    lines = f"data:\n  slice_files:\n    - {{name: {name}, path: {rel}}}\n"
    if same:
        return Saved(csv_path, spec_path, yaml_written=False, lines=lines, already=True)
    expected = copy.deepcopy(old)
    expected["data"]["slice_files"] = [*entries, {"name": name, "path": rel}]
    new_text = insert_entry(text, name, rel)
    if new_text is None or not _valid(new_text, expected):
        return Saved(csv_path, spec_path, yaml_written=False, lines=lines)
    _atomic_write(spec_path, new_text)
    return Saved(csv_path, spec_path, yaml_written=True, lines=lines)


def _valid(text: str, expected: dict) -> bool:
    from offramp.tasks.feature.spec import FeatureSpec

    try:
        parsed = yaml.safe_load(text)
        if parsed != expected:
            return False
        FeatureSpec.model_validate(parsed)
    except Exception:  # noqa: BLE001 - any doubt: leave the user's file alone
        return False
    return True


def _csv_value(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value
