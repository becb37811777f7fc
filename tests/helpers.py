"""Small builders shared by the tests: a tiny label feature on the fake provider."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import yaml

LABELS = ["alpha", "beta", "gamma"]


def word_of(label: str) -> str:
    return {"alpha": "apple", "beta": "banana", "gamma": "grape"}[label]


def make_feature(root: Path, *, n: int = 60, incumbent: str = "fake/old", extra: dict | None = None) -> Path:
    """A feature whose gold label is recoverable from a fruit word in the message."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    with (root / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label", "group"])
        for i in range(n):
            label = LABELS[i % 3]
            writer.writerow([f"ex{i}", f"message {i} about {word_of(label)} #{rng.randint(0, 999)}", label, "g1" if i % 2 else "g2"])
    spec = {
        "name": "tiny-routing",
        "description": "test feature",
        "signature": {
            "inputs": [{"name": "text"}],
            "outputs": [{"name": "label", "type": "label", "labels": LABELS}],
        },
        "incumbent": {"model": incumbent, "instructions": "Route it.", "settings": {"max_tokens": 8}},
        "data": {"files": [{"path": "data.csv"}], "id_column": "id", "columns": {"text": "text", "label": "label"}, "slices": ["group"]},
        "metric": "label_accuracy",
        "splits": {"seed": 3, "train": 20, "dev": 20, "test": 20},
    }
    if extra:
        spec.update(extra)
    (root / "feature.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def _label_for(text: str) -> str:
    for label in LABELS:
        if word_of(label) in text:
            return label
    return "?"


_OUTPUT_FIELD = re.compile(r"^\d+\. `(\w+)`", re.MULTILINE)


def dspy_reply(messages: list[dict], value_for) -> str | None:
    """If the request is DSPy-formatted (ChatAdapter markers), answer every requested output field
    in that format: `value_for(field_name, last_user_text)` gives each value. None otherwise."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    if "[[ ## " not in system:
        return None
    outputs_part = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    fields = _OUTPUT_FIELD.findall(outputs_part)
    last = messages[-1]["content"]
    body = "\n\n".join(f"[[ ## {name} ## ]]\n{value_for(name, last)}" for name in fields)
    return body + "\n\n[[ ## completed ## ]]"


def oracle(messages: list[dict]) -> str:
    """The right label for the fruit in the last message, in plain text or DSPy's format
    (non-label fields get a fixed sentence: instructions proposed by an optimizer, reasoning...)."""
    reply = dspy_reply(messages, lambda name, text: _label_for(text) if name == "label" else "Route by the fruit named.")
    return reply if reply is not None else _label_for(messages[-1]["content"])


def make_space(path: Path, models: list[str], strategies: dict | None = None, **settings) -> Path:
    space = {
        "name": "fake-space",
        "models": models,
        "strategies": strategies or {"incumbent": {}},
        "settings": {"max_tokens": [64], **settings},
        "prices": {m: {"input_cost_per_token": 1e-6 * (i + 1), "output_cost_per_token": 2e-6 * (i + 1)} for i, m in enumerate(models + ["fake/old"])},
    }
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path
