"""Reading a YAML file into a pydantic model, with errors that name the file and the field.

Shared by search spaces, feature specs and price files: every user-written file fails the same
way, as `<file>: invalid <what>: field `a.b`: <what was expected>; ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("function-after", "function-before")) or "(top level)"


def problems(exc: ValidationError) -> str:
    return "; ".join(f"field `{field_path(e['loc'])}`: {e['msg']}" for e in exc.errors())


def read_utf8(path: Path, *, error: type[Exception]) -> str:
    """The text of a user's file, which must be UTF-8: any other bytes are `error` naming the file
    and the line of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path}: line {line}: byte {data[exc.start:exc.start + 1]!r} is not UTF-8; expected a UTF-8 text file "
            "(re-save it as UTF-8)"
        ) from None


def read_yaml(path: Path, *, error: type[Exception], expected: str) -> dict[str, Any]:
    """The mapping at the top of a YAML file."""
    text = read_utf8(path, error=error)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of {expected}, got {type(raw).__name__}")
    return raw


def load_model(path: Path, model: type[M], *, what: str, expected: str, error: type[Exception]) -> M:
    """`model` validated from the YAML mapping in `path`."""
    raw = read_yaml(path, error=error, expected=expected)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{path}: invalid {what}: {problems(exc)}") from None
