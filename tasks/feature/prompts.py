"""How a config talks to a model: render the messages for one example, parse the answer back.

The system message is the config's instructions followed by an output contract generated from
the signature (the allowed labels, the JSON fields), as DSPy does with field descriptions; demos
are prior user/assistant turns. Parsing is part of a config's behaviour: an answer that cannot be
parsed yields None (scored 0 and counted), never an exception.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

from offramp.search_spaces.answers import read_json, read_label, read_number
from offramp.search_spaces.schema import Config
from offramp.tasks.feature.spec import Example, Feature, FeatureSpec, OutputField


def _describe(field: OutputField) -> str:
    text = f"`{field.name}`"
    if field.description:
        text += f" ({field.description})"
    if field.type == "label":
        text += ": one of " + ", ".join(field.labels or [])
    elif field.type == "number":
        text += ": a number"
    elif field.type == "json":
        text += ": a JSON object with schema " + json.dumps(field.json_schema, sort_keys=True)
    return text


def _single_text_output(spec: FeatureSpec, config: Config) -> OutputField | None:
    outputs = spec.signature.outputs
    if config.settings.output_mode == "text" and len(outputs) == 1:
        return outputs[0]
    return None


def output_contract(spec: FeatureSpec, config: Config) -> str:
    single = _single_text_output(spec, config)
    if single is not None:
        if single.type == "label":
            return "Answer with exactly one of: " + ", ".join(single.labels or []) + "."
        if single.type == "number":
            return "Answer with the number only."
        if single.type == "json":
            return "Answer with a JSON object only, matching: " + json.dumps(single.json_schema, sort_keys=True)
        return ""
    fields = "; ".join(_describe(f) for f in spec.signature.outputs)
    return f"Answer with a JSON object with the fields {fields}."


def render_input(spec: FeatureSpec, example: Example) -> str:
    if len(spec.signature.inputs) == 1:
        return str(example.inputs[spec.signature.inputs[0].name])
    return "\n".join(f"{f.name}: {example.inputs[f.name]}" for f in spec.signature.inputs)


def render_answer(spec: FeatureSpec, config: Config, example: Example) -> str:
    single = _single_text_output(spec, config)
    if single is not None:
        value = example.outputs[single.name]
        return json.dumps(value) if single.type == "json" else str(value)
    return json.dumps({f.name: example.outputs[f.name] for f in spec.signature.outputs})


def choose_demos(spec: FeatureSpec, train: tuple[Example, ...], k: int, seed: int) -> list[Example]:
    """k demos from train, deterministic in (seed, k). For a label output, round-robin over the
    labels so every label is shown before any is shown twice."""
    if k == 0:
        return []
    pool = list(train)
    random.Random(seed).shuffle(pool)
    target = spec.target
    if target.type != "label":
        return pool[:k]
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in pool:
        by_label[example.outputs[target.name]].append(example)
    chosen: list[Example] = []
    depth = 0
    while len(chosen) < k and any(len(v) > depth for v in by_label.values()):
        for label in target.labels or []:
            if len(by_label[label]) > depth and len(chosen) < k:
                chosen.append(by_label[label][depth])
        depth += 1
    # Round-robin order would always end on the last label, right before the input: shuffle (seeded).
    random.Random(seed + 1).shuffle(chosen)
    return chosen


def shipped_prompt_demos(feature: Feature, train: tuple[Example, ...], k: int, seed: int) -> list[Example]:
    """The demos of a config with the shipped prompt: the incumbent's exact examples when the
    feature declares them (`incumbent.demos`; shipped-prompt configs carry their count), else k
    drawn from train (`settings.demos: k`)."""
    if feature.shipped_demos:
        return list(feature.shipped_demos[:k])
    return choose_demos(feature.spec, train, k, seed)


def render_messages(spec: FeatureSpec, config: Config, demos: list[Example], example: Example) -> list[dict[str, str]]:
    contract = output_contract(spec, config)
    system = config.instructions.strip() + (f"\n\n{contract}" if contract else "")
    messages = [{"role": "system", "content": system}]
    for demo in demos:
        messages.append({"role": "user", "content": render_input(spec, demo)})
        messages.append({"role": "assistant", "content": render_answer(spec, config, demo)})
    messages.append({"role": "user", "content": render_input(spec, example)})
    return messages


def _json_schema_of(field: OutputField) -> dict[str, Any]:
    if field.type == "label":
        return {"type": "string", "enum": list(field.labels or [])}
    if field.type == "number":
        return {"type": "number"}
    if field.type == "json":
        return dict(field.json_schema or {})
    return {"type": "string"}


def response_format(spec: FeatureSpec, config: Config) -> dict[str, Any] | None:
    """The provider-side JSON schema constraint for `output_mode: json_schema`."""
    if config.settings.output_mode != "json_schema":
        return None
    outputs = spec.signature.outputs
    schema = {
        "type": "object",
        "properties": {f.name: _json_schema_of(f) for f in outputs},
        "required": [f.name for f in outputs],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def _coerce(field: OutputField, value: Any) -> tuple[bool, Any]:
    """A field's value read leniently (`search_spaces.answers`): a label in any case, quoting or
    bracketing, or the one label a sentence names; the first number; the first JSON object."""
    if value is None:
        return False, None
    if field.type == "label":
        label = read_label(str(value), field.labels or [])
        return label is not None, label
    if field.type == "number":
        number = read_number(value)
        return number is not None, number
    if field.type == "json":
        parsed = value if isinstance(value, dict) else read_json(str(value))
        return isinstance(parsed, dict), parsed
    return True, str(value).strip()


def parse_answer(spec: FeatureSpec, config: Config, text: str | None) -> dict[str, Any] | None:
    """The prediction (output field -> value), or None if the answer cannot be parsed."""
    if text is None:
        return None
    single = _single_text_output(spec, config)
    if single is not None:
        ok, value = _coerce(single, text)
        return {single.name: value} if ok else None
    payload = read_json(text)
    if not isinstance(payload, dict):
        return None
    prediction = {}
    for field in spec.signature.outputs:
        ok, value = _coerce(field, payload.get(field.name))
        if not ok:
            return None
        prediction[field.name] = value
    return prediction
