"""Production samples (`data.samples`): logged traffic read into `Sample`s, and how a candidate's
answer is compared with what the incumbent served.

Three formats (see `SamplesSpec`): `columns` (a column per signature input, dotted paths into JSON
values allowed), `openai_chat` (OpenAI-style logged calls: the last user message is the input, the
response's first choice is what was served) and `litellm_spend_log` (rows of LiteLLM's
`LiteLLM_SpendLogs` table: `request_id`, `startTime`, `messages`, `response`, `status`, with
`messages`/`response` as JSON values or JSON strings). What was served is parsed by the shipped
prompt's parser (`prompts.parse_answer` with the incumbent config) into the output fields.

A bad row (not JSON, a missing field, no user message, an empty input, a bad timestamp) fails the
load: the error names the file, the line and the field of the first bad row, and how many others
there are. A row whose served answer is absent (or failed, or unreadable) is kept: it is a logged
input, it just cannot be compared with a served answer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offramp.errors import UserError
from offramp.search_spaces.schema import Config
from offramp.search_spaces.validation import read_utf8
from offramp.tasks.feature.metrics import Metric, json_field_f1, normalise
from offramp.tasks.feature.prompts import parse_answer
from offramp.tasks.feature.sample_spec import Sample, SamplesSpec
from offramp.tasks.feature.spec import Feature, FeatureSpec

MAX_LISTED = 5  # bad lines named beside the first


class _Bad(Exception):
    """One bad row: the field and what was expected (the caller adds file and line)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class _Missing(Exception):
    pass


def _got(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _maybe_json(value: Any) -> Any:
    """A JSON string (an object or a list, as CSV exports and LiteLLM store them) decoded; else as is."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def lookup(row: dict[str, Any], path: str) -> Any:
    """The value at `path` in a row: a column name, or a dotted path into JSON values (a JSON
    string is decoded on the way; a list is indexed by number). Raises _Missing."""
    if path in row:
        return row[path]
    value: Any = row
    for part in path.split("."):
        value = _maybe_json(value)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise _Missing(path)
    return value


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | _Bad]]:
    """(line number, row or what is wrong with it) for every non-empty line (JSONL) or record (CSV)."""
    text = read_utf8(path, error=UserError)
    if fmt == "jsonl":
        for number, line in enumerate(io.StringIO(text, newline=None), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, _Bad("(the line)", f"not valid JSON ({exc.msg}); expected one JSON object per line")
                continue
            yield number, row if isinstance(row, dict) else _Bad("(the line)", f"expected a JSON object, got a {type(row).__name__}")
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    start = reader.line_num + 1
    for values in reader:
        number, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield number, _Bad("(the row)", f"expected {len(header)} values (header: {', '.join(header)}), got {len(values)} "
                                            "(quote a value that holds a comma)")
            continue
        yield number, dict(zip(header, values))


def _text(value: Any) -> str:
    """An input value as text (message content may be a list of parts)."""
    if isinstance(value, list):
        return "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in value).strip()
    return "" if value is None else str(value).strip()


def _user_input(messages: Any) -> str:
    """The last user message's content of a chat request."""
    messages = _maybe_json(messages)
    if isinstance(messages, dict) and "messages" in messages:
        messages = _maybe_json(messages["messages"])
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
    if not users:
        raise _Bad("messages", f"expected a list of chat messages with a user message, got {_got(messages)}")
    text = _text(users[-1].get("content"))
    if not text:
        raise _Bad("messages", "expected a non-empty last user message (the input), got an empty one")
    return text


def _served_text(response: Any, field: str) -> str | None:
    """What was served: a chat completion's first choice content, a message's content, or the
    content itself. None: nothing was served (no response logged)."""
    logged, response = response, _maybe_json(response)
    if response is None or response == {} or response == "":
        return None
    if isinstance(response, str):
        return response
    if isinstance(logged, str) and not (isinstance(response, dict) and ("choices" in response or "content" in response)):
        return logged  # the content itself, a JSON answer (a JSON-string column holding a completion was decoded above)
    if isinstance(response, dict):
        if isinstance(response.get("choices"), list):
            if not response["choices"]:
                return None
            choice = response["choices"][0]
            if isinstance(choice, dict):
                message = choice.get("message")
                content = message.get("content") if isinstance(message, dict) else choice.get("text")
                return None if content is None else _text(content)
        if "content" in response:
            return None if response["content"] is None else _text(response["content"])
    raise _Bad(field, f"expected a chat completion object (with `choices`), its message, or its content, got {_got(response)}")


def _timestamp(value: Any, field: str) -> dt.datetime | None:
    """A timestamp: an ISO 8601 string, or seconds (or milliseconds) since the epoch; UTC when naive."""
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    try:
        if number is not None:
            stamp = dt.datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=dt.UTC)
        else:
            stamp = dt.datetime.fromisoformat(str(value).strip())
    except (ValueError, OverflowError, OSError):
        raise _Bad(field, f"expected a timestamp (ISO 8601, or seconds since the epoch), got {_got(value)}") from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


class _Reader:
    """Reads one format's rows into inputs, served text, timestamp and id."""

    def __init__(self, spec: FeatureSpec, samples: SamplesSpec) -> None:
        self.spec, self.samples = spec, samples
        self.inputs = [f.name for f in spec.signature.inputs]

    def _get(self, row: dict[str, Any], path: str, *, required: bool = True) -> Any:
        try:
            return lookup(row, path)
        except _Missing:
            if required:
                raise _Bad(path, f"missing (the row has {sorted(row)[:12]})") from None
            return None

    def read(self, row: dict[str, Any]) -> tuple[dict[str, Any], str | None, dt.datetime | None, str | None]:
        s = self.samples
        if s.format == "columns":
            inputs = {}
            for name in self.inputs:
                column = (s.columns or {})[name]
                value = _text(self._get(row, column))
                if not value:
                    raise _Bad(column, f"expected a non-empty input for `{name}`, got an empty value")
                inputs[name] = value
            served = None
            if s.served_column:
                raw = _maybe_json(self._get(row, s.served_column))
                served = None if raw is None or raw == "" else raw if isinstance(raw, str) else json.dumps(raw)
            stamp_field, id_field = s.timestamp_column, s.id_column
        else:
            spend_log = s.format == "litellm_spend_log"
            messages = row.get("messages") if "messages" in row else self._get(row, "request.messages", required=False)
            if spend_log and _maybe_json(messages) in (None, "", {}, []) and row.get("proxy_server_request"):
                messages = self._get(row, "proxy_server_request.messages", required=False)  # the request body as sent
            if messages is None or (spend_log and _maybe_json(messages) in ("", {}, [])):
                hint = (" (LiteLLM stores them only with `store_prompts_in_spend_logs: true` in general_settings)"
                        if spend_log else " (or `request.messages`)")
                raise _Bad("messages", f"expected a list of chat messages with a user message, got {_got(messages)}{hint}")
            inputs = {self.inputs[0]: _user_input(messages)}
            failed = spend_log and str(row.get("status") or "success").lower() != "success"
            served = None if failed else _served_text(row.get("response"), "response")
            stamp_field = s.timestamp_column or ("startTime" if spend_log else next(
                (k for k in ("created", "timestamp") if k in row), "response.created"))
            id_field = s.id_column or ("request_id" if spend_log else None)
        stamp = _timestamp(self._get(row, stamp_field, required=s.timestamp_column is not None), stamp_field) if stamp_field else None
        ident = None
        if id_field:
            value = self._get(row, id_field, required=s.id_column is not None)
            ident = None if value in (None, "") else str(value)
        return inputs, served, stamp, ident


def load_samples(spec: FeatureSpec, spec_path: Path, root: Path) -> tuple[Sample, ...]:
    """The logged requests of `data.samples` (none without it). Raises UserError naming the file,
    the line and the field of the first bad row, and how many other rows are bad."""
    s = spec.data.samples
    if s is None:
        return ()
    if s.format != "columns" and len(spec.signature.inputs) != 1:
        raise UserError(f"{spec_path}: field `data.samples.format`: format `{s.format}` maps the last user message onto the "
                        f"feature's one input, but it has {len(spec.signature.inputs)} ({', '.join(f.name for f in spec.signature.inputs)}); "
                        "expected format `columns` with `columns` naming a column for each input")
    if s.format == "columns":
        names = {f.name for f in spec.signature.inputs}
        missing, extra = sorted(names - set(s.columns or {})), sorted(set(s.columns or {}) - names)
        if missing or extra:
            raise UserError(f"{spec_path}: field `data.samples.columns`: expected a column for each signature input "
                            f"({', '.join(sorted(names))})" + (f"; missing {missing}" if missing else "")
                            + (f"; not inputs: {extra}" if extra else ""))
    inc = spec.incumbent
    incumbent = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings)
    reader = _Reader(spec, s)
    found: list[Sample] = []
    bad: list[tuple[Path, int, _Bad]] = []
    for data_file in s.files:
        path = (root / data_file.path).resolve()
        if not path.exists():
            raise UserError(f"{spec_path}: field `data.samples.files.path`: data file {path} does not exist")
        fmt = data_file.format or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(path.suffix.lower())
        if fmt is None:
            raise UserError(f"{spec_path}: field `data.samples.files.format`: cannot tell the format of {path.name}; "
                            "expected a .csv or .jsonl file (or `format: csv | jsonl`)")
        for number, row in _rows(path, fmt):
            if isinstance(row, _Bad):
                bad.append((path, number, row))
                continue
            try:
                inputs, served_text, stamp, ident = reader.read(row)
            except _Bad as exc:
                bad.append((path, number, exc))
                continue
            found.append(Sample(
                id=ident or f"{path.stem}-{number}", inputs=inputs, served_text=served_text, timestamp=stamp,
                served=parse_answer(spec, incumbent, served_text) if served_text is not None else None,
                file=path.name, line=number,
            ))
    if bad:
        path, number, first = bad[0]
        others = bad[1:]
        more = (f" ({len(others)} other bad row{'s' if len(others) > 1 else ''}: "
                + ", ".join(f"{p.name} line {n}" for p, n, _ in others[:MAX_LISTED]) + (", ..." if len(others) > MAX_LISTED else "") + ")"
                if others else "")
        raise UserError(f"{path} line {number}: field `{first.field}`: {first.message}{more}; "
                        f"read as data.samples (format {s.format}) of {spec_path}")
    ids = [x.id for x in found]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise UserError(f"{spec_path}: field `data.samples.id_column`: sample ids repeat ({repeated}); expected unique ids")
    return tuple(found)


# ------------------------------------------------------------------ agreement with what was served
def comparable(feature: Feature) -> str | None:
    """Why the samples cannot be compared by agreement (a `text` target needs a judge), else None."""
    judge = feature.spec.metric.judge
    if feature.spec.target.type == "text" and (judge is None or judge.mode != "pairwise"):
        return ("the target is free text: comparing an answer with the served one needs a pairwise judge "
                "(metric.judge with mode: pairwise)")
    return None


def agreement_metric(feature: Feature) -> Metric:
    """A candidate's answer vs what the incumbent served, per example in [0, 1]: the same label
    (normalised), the same number (within `metric.tolerance`), or field-level F1 of two JSON
    objects. The served answer plays the gold's part."""
    target = feature.spec.target
    name = target.name
    tolerance = feature.spec.metric.tolerance

    def same_label(served: dict[str, Any], answer: dict[str, Any] | None) -> float:
        value = None if answer is None else answer.get(name)
        return float(value is not None and normalise(value) == normalise(served.get(name)))

    def same_number(served: dict[str, Any], answer: dict[str, Any] | None) -> float:
        try:
            return float(abs(float(answer.get(name)) - float(served.get(name))) <= tolerance)  # type: ignore[union-attr, arg-type]
        except (TypeError, ValueError, AttributeError):
            return 0.0

    def json_f1(served: dict[str, Any], answer: dict[str, Any] | None) -> float:
        return json_field_f1(served.get(name) or {}, None if answer is None else answer.get(name))

    fn = {"label": same_label, "number": same_number, "json": json_f1}.get(target.type, same_label)
    kind = {"label": "label equality", "number": f"numeric match (tolerance {tolerance:g})", "json": "json_f1"}.get(target.type, "exact match")
    return Metric(name=f"agreement with served ({kind})", field=name, score_fn=fn,
                  labels=tuple(target.labels) if target.labels else None)
