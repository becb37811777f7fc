"""The `plain` output adapter: DSPy programs for models that answer plainly.

DSPy's ChatAdapter asks for `[[ ## field ## ]]` markers and parses nothing else: a small model
that answers `cards` or `[[ auto_and_commute ]]` scores 0 with it, however right it is. This
adapter asks for the bare answer, the way a shipped prompt does, and reads it leniently
(`search_spaces.answers`):

- the system message is the program's instructions (what MIPRO and GEPA rewrite), then an output
  contract from the signature: the labels to choose from, "the number only", the JSON schema;
- one input: its value alone as the user message; several: one `name: value` line each;
- one output: the value alone; several: one `name: value` line each. Demos render the same way,
  so a compiled program's demos show the model the format it is asked for;
- parsing: a label found in the answer (exact, else the one label mentioned; two: unparsed), the
  first number, the first JSON object (validated against the field's type), text as given.

An answer it cannot read raises DSPy's AdapterParseError, as the other adapters do, so a compile
treats it like theirs and an evaluation counts it unparsed.

Also here: `PromptedJSONAdapter`, DSPy's JSONAdapter for `adapter: json` on text output.
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import dspy
import pydantic
from dspy.adapters.utils import parse_value
from dspy.utils.exceptions import AdapterParseError

from offramp.search_spaces.answers import read_json, read_label, read_number


def _labels(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None


def _is_structured(annotation: Any) -> bool:
    return (isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)) or typing.get_origin(annotation) in (
        list, dict)


def _schema(annotation: Any) -> str:
    return json.dumps(pydantic.TypeAdapter(annotation).json_schema(), sort_keys=True)


def _contract(name: str, field: Any) -> str:
    """What one output field must look like, in words."""
    annotation, desc = field.annotation, (field.json_schema_extra or {}).get("desc")
    about = f" ({desc})" if desc and desc != name else ""
    labels = _labels(annotation)
    if labels is not None:
        return f"`{name}`{about}: exactly one of: {', '.join(labels)}"
    if annotation in (int, float):
        return f"`{name}`{about}: a number only"
    if _is_structured(annotation):
        return f"`{name}`{about}: JSON only, matching {_schema(annotation)}"
    return f"`{name}`{about}: plain text"


def _ask(annotation: Any) -> str:
    """The output contract of a single-output program, worded as a shipped prompt words it."""
    labels = _labels(annotation)
    if labels is not None:
        return f"Answer with exactly one of: {', '.join(labels)}. Give the label only."
    if annotation in (int, float):
        return "Answer with the number only."
    if _is_structured(annotation):
        return f"Answer with JSON only, matching: {_schema(annotation)}"
    return "Give the answer only."


def _render(value: Any) -> str:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class PlainAdapter(dspy.Adapter):
    """Bare answers in, bare answers out (see the module docstring)."""

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        outputs = signature.output_fields
        instructions = signature.instructions.strip()
        if len(outputs) == 1:
            [field] = outputs.values()
            return f"{instructions}\n\n{_ask(field.annotation)}"
        lines = "\n".join(f"- {_contract(name, field)}" for name, field in outputs.items())
        return (f"{instructions}\n\nAnswer with one line per field, `name: value`, in this order, and nothing else:\n"
                f"{lines}")

    def format_user_message_content(
        self, signature: type[dspy.Signature], inputs: dict[str, Any], prefix: str = "", suffix: str = "",
        main_request: bool = False,
    ) -> str:
        names = [n for n in signature.input_fields if n in inputs]
        body = (_render(inputs[names[0]]) if len(signature.input_fields) == 1 and names
                else "\n".join(f"{n}: {_render(inputs[n])}" for n in names))
        return "\n\n".join(part for part in (prefix.strip(), body, suffix.strip()) if part)

    def format_assistant_message_content(
        self, signature: type[dspy.Signature], outputs: dict[str, Any], missing_field_message: str | None = None,
    ) -> str:
        names = list(signature.output_fields)
        values = {n: _render(outputs[n]) if n in outputs else (missing_field_message or "") for n in names}
        if len(names) == 1:
            return values[names[0]]
        return "\n".join(f"{n}: {v}" for n, v in values.items())

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
        outputs = signature.output_fields
        if len(outputs) == 1:
            [(name, field)] = outputs.items()
            texts = {name: _strip_name(name, completion)}
        else:
            texts = _field_lines(list(outputs), completion)
            if texts is None:  # not `name: value` lines: perhaps one JSON object with the fields
                payload = read_json(completion)
                if not isinstance(payload, dict) or not set(outputs) <= set(payload):
                    raise self._error(signature, completion, f"expected one `name: value` line for each of {list(outputs)}")
                texts = {n: payload[n] for n in outputs}
        return {name: self._value(signature, name, field.annotation, texts[name], completion) for name, field in outputs.items()}

    def _value(self, signature: type[dspy.Signature], name: str, annotation: Any, text: Any, completion: str) -> Any:
        labels = _labels(annotation)
        if labels is not None:
            value = read_label(_render(text), labels)
        elif annotation in (int, float):
            number = read_number(text)
            value = None if number is None else annotation(number)
        elif _is_structured(annotation):
            found = text if isinstance(text, (dict, list)) else read_json(str(text), list if typing.get_origin(annotation) is list else dict)
            value = _validated(found, annotation)
        else:
            value = _render(text).strip()
        if value is None:
            raise self._error(signature, completion, f"no {name} could be read from the answer")
        return value

    def _error(self, signature: type[dspy.Signature], completion: str, message: str) -> AdapterParseError:
        return AdapterParseError(adapter_name="PlainAdapter", signature=signature, lm_response=completion, message=message)


def _strip_name(name: str, text: str) -> str:
    """`label: cards` is `cards` for the field `label` (models echo the field's name)."""
    match = re.match(rf"\s*[*_`\"']*{re.escape(name)}[*_`\"']*\s*[:=]\s*", text, re.IGNORECASE)
    return text[match.end():] if match else text


def _field_lines(names: list[str], text: str) -> dict[str, str] | None:
    """`name: value` lines (a value may run over several lines) for every name, or None."""
    head = re.compile(rf"^\s*[*_`\"']*({'|'.join(re.escape(n) for n in names)})[*_`\"']*\s*[:=]\s*(.*)$", re.IGNORECASE)
    lower = {n.lower(): n for n in names}
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = head.match(line)
        if match and lower[match.group(1).lower()] not in found:
            current = lower[match.group(1).lower()]
            found[current] = [match.group(2)]
        elif current is not None:
            found[current].append(line)
    if set(found) != set(names):
        return None
    return {n: "\n".join(found[n]).strip() for n in names}


def _validated(value: Any, annotation: Any) -> Any:
    if value is None:
        return None
    try:
        return parse_value(value, annotation)
    except Exception:  # noqa: BLE001 - a JSON answer that does not fit the field's type is unparsed
        return None


class PromptedJSONAdapter(dspy.JSONAdapter):
    """DSPy's JSONAdapter for text output (`adapter: json`): the JSON is asked for in the prompt
    only. DSPy's own would also ask the provider for JSON mode while compiling, which evaluation
    and a release (text output: no response_format) never do: the compiled demos would come from
    answers the program never gets."""

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: type[dspy.Signature]) -> None:
        return None
