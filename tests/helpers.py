"""Small builders shared by the tests: a tiny label feature on the fake provider."""

from __future__ import annotations

import csv
import random
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


def oracle(messages: list[dict]) -> str:
    """The right label for the fruit in the last message."""
    text = messages[-1]["content"]
    for label in LABELS:
        if word_of(label) in text:
            return label
    return "?"


def make_space(path: Path, models: list[str], **settings) -> Path:
    space = {
        "name": "fake-space",
        "models": models,
        "settings": {"max_tokens": [8], **settings},
        "prices": {m: {"input_cost_per_token": 1e-6 * (i + 1), "output_cost_per_token": 2e-6 * (i + 1)} for i, m in enumerate(models + ["fake/old"])},
    }
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path
