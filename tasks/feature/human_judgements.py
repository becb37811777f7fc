"""A feature's human judgements: answers that people judged, to calibrate an LLM judge against
(`metric.judge.human_judgements.path`, relative to feature.yaml; see `tasks/evidence/calibration.py`).

One item per line (JSONL) or per row (CSV, a header row), UTF-8:

rubric (`metric.judge.mode: rubric`):
    {"inputs": {"<input field>": ...}, "answer": "...", "verdict": "pass"}
    `verdict`: "pass" / "fail" (a `pass_fail` scale) or an integer 1..5 (a `five_point` scale);
    every item uses the same kind.
pairwise (`mode: pairwise`):
    {"inputs": {...}, "answer_a": "...", "answer_b": "...", "preferred": "a"}
    `preferred`: "a", "b" or "tie". The judge is asked with `answer_a` in the candidate's place and
    `answer_b` in the incumbent's, so "a" is a win, "b" a loss.
Both may carry `"id"` (unique; default `<file stem>-<line>`) and `"note"` (free text, kept, unused).
`inputs` must hold exactly the signature's input fields. A CSV has one column per input field
instead of `inputs` (named as the signature field, or as its column in `data.columns`) and the other
keys as columns (`answer`, `verdict` / `answer_a`, `answer_b`, `preferred`, optional `id`, `note`).
A JSONL answer may be a string or a JSON value (e.g. an object for a `json` output); a CSV answer is
the cell's text. Every problem is refused naming the file, the line, the field and what was expected.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from offramp.errors import UserError
from offramp.search_spaces.validation import read_utf8
from offramp.tasks.feature.rows import jsonl_rows
from offramp.tasks.feature.spec import FeatureSpec

Mode = Literal["rubric", "pairwise"]
PASS_FAIL = {"pass": 1.0, "fail": 0.0}
PREFERRED = {"a": 1.0, "tie": 0.5, "b": 0.0}
KEYS: dict[str, tuple[str, ...]] = {"rubric": ("answer", "verdict"), "pairwise": ("answer_a", "answer_b", "preferred")}
OPTIONAL = ("id", "note")


@dataclass(frozen=True)
class HumanJudgement:
    """One judged item. `verdict`: "pass" / "fail", 1..5, or (pairwise) "a" / "b" / "tie"."""

    id: str
    line: int
    inputs: dict[str, Any]
    verdict: str | int
    answer: Any = None
    answer_a: Any = None
    answer_b: Any = None
    note: str | None = None

    def score(self) -> float:
        """The verdict on the score scale: pass 1 / fail 0; (s - 1) / 4; a (win) 1 / tie 0.5 / b (loss) 0."""
        if isinstance(self.verdict, int):
            return (self.verdict - 1) / 4
        return PASS_FAIL.get(self.verdict, PREFERRED.get(self.verdict, 0.0))


@dataclass(frozen=True)
class HumanJudgements:
    """The items of one file; `scale`: pass_fail, five_point or pairwise (what `calibrate` takes)."""

    path: Path
    mode: str
    scale: str
    items: tuple[HumanJudgement, ...]

    def scores(self) -> list[float]:
        """Every item's verdict on the score scale, in file order (the humans' side of `calibrate`)."""
        return [j.score() for j in self.items]


def load_human_judgements(path: Path | str, spec: FeatureSpec, mode: Mode, scale: str | None = None) -> HumanJudgements:
    """Read and check a human judgements file (JSONL, or CSV by its `.csv` suffix).

    Args:
        path: The file (the caller resolves it against feature.yaml's folder).
        spec: The feature: its signature's inputs (and `data.columns`, for CSV columns).
        mode: "rubric" or "pairwise" (the judge's mode).
        scale: The judge's scale when known ("pass_fail" / "five_point"): rubric verdicts must match it.

    Raises:
        UserError: A missing or unreadable file, bad JSON or CSV, a missing, unknown or bad field, a
            repeated id, mixed verdict kinds, or no items; the message names file, line and field.
    """
    path = Path(path)
    if mode not in KEYS:
        raise UserError(f"{path}: judge mode {mode!r} is not one of {sorted(KEYS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected the human judgements file named by "
                        "`metric.judge.human_judgements.path` (JSONL or CSV, relative to feature.yaml)")
    names = [f.name for f in spec.signature.inputs]
    rows = _csv(path, spec, names) if path.suffix.lower() == ".csv" else jsonl_rows(path)
    items: list[HumanJudgement] = []
    seen: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for line, row in rows:
        item = _item(path, line, row, names, mode)
        if item.id in seen:
            raise UserError(f"{path}: line {line}: field `id`: {item.id!r} repeats line {seen[item.id]}; expected unique ids")
        seen[item.id] = line
        if mode == "rubric":
            kind = "pass_fail" if isinstance(item.verdict, str) else "five_point"
            kinds.setdefault(kind, line)
            if scale is not None and kind != scale:
                raise UserError(f"{path}: line {line}: field `verdict`: {item.verdict!r} is a {kind} verdict, but the judge's "
                                f"scale is {scale}; expected {_expected_verdict(scale)}")
            if len(kinds) > 1:
                first = kinds["pass_fail" if kind == "five_point" else "five_point"]
                raise UserError(f"{path}: line {line}: field `verdict`: {item.verdict!r} mixes scales with line {first}; "
                                "expected every verdict to be pass/fail, or every one an integer 1..5")
        items.append(item)
    if not items:
        raise UserError(f"{path}: holds no human judgements; expected one item per line (see README, 'Judge calibration')")
    found = "pairwise" if mode == "pairwise" else next(iter(kinds))
    return HumanJudgements(path=path, mode=mode, scale=found, items=tuple(items))


def _expected_verdict(scale: str) -> str:
    return '"pass" or "fail"' if scale == "pass_fail" else "an integer 1..5"


def _csv(path: Path, spec: FeatureSpec, names: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """CSV rows reshaped like JSONL ones: the input columns gathered under `inputs`."""
    reader = csv.DictReader(io.StringIO(read_utf8(path, error=UserError), newline=""))
    header = reader.fieldnames or []
    columns = {}
    for name in names:
        options = [c for c in (name, spec.data.columns.get(name)) if c and c in header]
        if not options:
            raise UserError(f"{path}: line 1 (the header): no column for input field `{name}`; expected a column named "
                            f"{name!r}" + (f" or {spec.data.columns[name]!r}" if spec.data.columns.get(name) not in (None, name) else ""))
        columns[name] = options[0]
    rows = []
    for row in reader:
        line = reader.line_num
        extra = row.pop(None, None)
        missing = [k for k, v in row.items() if v is None]
        if extra or missing:
            count = len(header) + len(extra or []) - len(missing)
            raise UserError(f"{path}: line {line} has {count} fields, but the header has {len(header)}; expected one value "
                            "per header column (quote a value that holds a comma)")
        reshaped: dict[str, Any] = {"inputs": {n: row[c] for n, c in columns.items()}}
        for key, value in row.items():
            if key in columns.values():
                continue
            if key in ("id", "note") and value == "":
                continue  # an empty optional cell: absent
            reshaped[key] = value
        rows.append((line, reshaped))
    return rows


def _item(path: Path, line: int, row: dict[str, Any], names: list[str], mode: str) -> HumanJudgement:
    where = f"{path}: line {line}"
    allowed = ("inputs", *KEYS[mode], *OPTIONAL)
    unknown = sorted(set(row) - set(allowed))
    if unknown:
        other = "pairwise" if mode == "rubric" else "rubric"
        hint = f" ({unknown[0]!r} belongs to a {other} judge's file)" if any(k in KEYS[other] for k in unknown) else ""
        raise UserError(f"{where}: field `{unknown[0]}` is unknown{hint}; expected the fields {list(allowed)} of a {mode} judgement")
    for key in ("inputs", *KEYS[mode]):
        if key not in row or row[key] is None:
            raise UserError(f"{where}: field `{key}` is missing; expected the fields {list(allowed[:1 + len(KEYS[mode])])} "
                            f"(and optional {list(OPTIONAL)})")
    inputs = row["inputs"]
    if not isinstance(inputs, dict):
        raise UserError(f"{where}: field `inputs` is a {type(inputs).__name__}; expected an object of the input fields {names}")
    missing = [n for n in names if n not in inputs]
    if missing:
        raise UserError(f"{where}: field `inputs.{missing[0]}` is missing; expected every input field of the signature {names}")
    extra = sorted(set(inputs) - set(names))
    if extra:
        raise UserError(f"{where}: field `inputs.{extra[0]}` is not an input field of the signature; expected only {names}")
    for key in ("answer", "answer_a", "answer_b"):
        if key in KEYS[mode] and isinstance(row[key], str) and not row[key].strip():
            raise UserError(f"{where}: field `{key}` is empty; expected the answer that was judged")
    id_ = row.get("id")
    if id_ is not None and (not isinstance(id_, (str, int)) or isinstance(id_, bool) or str(id_).strip() == ""):
        raise UserError(f"{where}: field `id` is {id_!r}; expected a non-empty string or an integer")
    note = row.get("note")
    if note is not None and not isinstance(note, str):
        raise UserError(f"{where}: field `note` is a {type(note).__name__}; expected a string")
    common = {"id": str(id_) if id_ is not None else f"{path.stem}-{line}", "line": line, "inputs": dict(inputs), "note": note}
    if mode == "pairwise":
        preferred = row["preferred"]
        if not isinstance(preferred, str) or preferred.strip().lower() not in PREFERRED:
            raise UserError(f'{where}: field `preferred` is {preferred!r}; expected "a", "b" or "tie"')
        return HumanJudgement(verdict=preferred.strip().lower(), answer_a=row["answer_a"], answer_b=row["answer_b"], **common)
    return HumanJudgement(verdict=_verdict(where, row["verdict"]), answer=row["answer"], **common)


def _verdict(where: str, value: Any) -> str | int:
    if isinstance(value, str) and value.strip().lower() in PASS_FAIL:
        return value.strip().lower()
    number: Any = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= 5:
        return number
    raise UserError(f'{where}: field `verdict` is {value!r}; expected "pass" or "fail", or an integer 1..5')
