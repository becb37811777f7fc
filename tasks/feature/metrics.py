"""Metrics: per-example scores in [0, 1] and how a trial aggregates them.

Built-ins: `exact_match` (normalised string equality), `label_accuracy` (the predicted label is
the gold label), `macro_f1` (per-example: label accuracy; trial: macro-averaged F1 over the labels,
a corpus-level number), `json_f1` (field-level F1 between two JSON objects), `numeric_match`
(|pred - gold| <= tolerance). A user metric is `module:callable`, called as
fn(gold: dict, prediction: dict | None) -> float: `module` is the file `<feature folder>/module.py`
(dotted `pkg.mod`: `pkg/mod.py`), loaded under a module name unique to that file, so two
features that each ship a `scoring.py` keep their own; else a module importable from the
environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from offramp.errors import UserError
from offramp.tasks.feature.spec import Feature
from offramp.util import content_hash

ScoreFn = Callable[[dict[str, Any], "dict[str, Any] | None"], float]


def normalise(text: Any) -> str:
    return " ".join(str(text).strip().lower().split())


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list):
        return {f"{prefix}{i}": normalise(v) for i, v in enumerate(value)} if value else {prefix.rstrip("."): "[]"}
    return {prefix.rstrip("."): normalise(value)}


def json_field_f1(gold: dict[str, Any], pred: dict[str, Any] | None) -> float:
    """F1 over (field path, value) pairs of two JSON objects; both empty counts as 1."""
    gold_pairs = set(_flatten(gold).items())
    pred_pairs = set(_flatten(pred).items()) if isinstance(pred, dict) else set()
    if not gold_pairs and not pred_pairs:
        return 1.0
    hit = len(gold_pairs & pred_pairs)
    if hit == 0:
        return 0.0
    precision, recall = hit / len(pred_pairs), hit / len(gold_pairs)
    return 2 * precision * recall / (precision + recall)


def macro_f1(gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Any]) -> float:
    """Macro-averaged F1 over the labels present in gold or prediction (None = no answer)."""
    if len(gold) != len(pred):
        raise ValueError(f"macro_f1 needs one prediction per gold label, got {len(pred)} for {len(gold)}")
    return macro_f1_statistic(gold, pred, labels)(np.arange(len(gold)))


def macro_f1_statistic(golds: Sequence[Any], preds: Sequence[Any], labels: Sequence[Any]) -> Callable[[np.ndarray], float]:
    """Macro-F1 of the examples at given indices (all of them, or one bootstrap resample): labels
    are coded once, so each call is three bincounts. Per label F1 = 2 tp / (2 tp + fp + fn), 0 when
    tp = 0; averaged over the labels that occur in the selected gold or predictions (None, or a
    value outside `labels`, is a wrong answer of no label); 0.0 when none occurs."""
    code = {label: i for i, label in enumerate(labels)}
    gold = np.array([code.get(g, -1) for g in golds], dtype=np.int64)
    pred = np.array([code.get(p, -2) for p in preds], dtype=np.int64)  # -2: no answer, never equal to a gold code
    n_labels = len(labels)

    def statistic(rows: np.ndarray) -> float:
        g, p = gold[rows], pred[rows]
        hit = g == p
        tp = np.bincount(g[hit], minlength=n_labels)
        gold_count = np.bincount(g[g >= 0], minlength=n_labels)
        pred_count = np.bincount(p[p >= 0], minlength=n_labels)
        present = (gold_count + pred_count) > 0
        if not present.any():
            return 0.0
        f1 = np.where(tp > 0, 2 * tp / np.maximum(gold_count + pred_count, 1), 0.0)
        return float(f1[present].mean())

    return statistic


@dataclass(frozen=True)
class Metric:
    """A metric bound to a feature: `score` one example, `aggregate` a trial."""

    name: str
    field: str
    score_fn: ScoreFn
    labels: tuple[str, ...] | None = None
    corpus_level: bool = False
    judge: Any = None  # a JudgeSpec: a model scores the answers, in batches (tasks/feature/judge.py), not `score`

    def score(self, gold: dict[str, Any], prediction: dict[str, Any] | None) -> float:
        if self.judge is not None:
            raise ValueError(f"metric {self.name} is a judge: answers are scored by tasks/feature/judge.py, in batches")
        if prediction is None:
            return 0.0
        value = float(self.score_fn(gold, prediction))
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise ValueError(f"metric {self.name} returned {value}; a score must be in [0, 1]")
        return value

    def aggregate(self, scores: Sequence[float], golds: Sequence[Any] = (), preds: Sequence[Any] = ()) -> float:
        """The trial's quality: the mean score, or macro-F1 over (gold, predicted) labels."""
        if self.corpus_level:
            return macro_f1(golds, preds, self.labels or ())
        return float(np.mean(scores)) if len(scores) else 0.0


def _load_file(path: Path, root: Path) -> ModuleType:
    """The module in `path`, under a name unique to the file. A bare-name import (the feature
    folder on sys.path, `import scoring`) would hand every feature the first `scoring` loaded
    in the process. Registered in sys.modules under that name: dataclasses and pickle look
    a function's module up there."""
    name = "offramp_feature_metric_" + content_hash(str(path), length=16)
    if name in sys.modules:
        return sys.modules[name]
    # The folder stays importable for helper modules a metric imports (as before); appended, so
    # a feature's file cannot shadow the standard library or an installed package.
    if str(root) not in sys.path:
        sys.path.append(str(root))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a failed load is not cached: the next try runs the file again
        raise
    return module


def _import_user_metric(feature: Feature, dotted: str) -> ScoreFn:
    module_name, _, attr = dotted.partition(":")
    root = feature.root.resolve()
    path = root.joinpath(*module_name.split(".")).with_suffix(".py")
    try:
        module = _load_file(path, root) if path.is_file() else importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(
            f"{feature.spec_path}: field `metric.function`: cannot import {dotted!r} ({exc}); expected "
            f"\"module:callable\" with the module in the feature folder ({path}) or importable from the environment"
        ) from None
    if not callable(fn):
        raise UserError(f"{feature.spec_path}: field `metric.function`: {dotted!r} is not callable")
    return fn


def _judged(gold: dict[str, Any], prediction: dict[str, Any] | None) -> float:
    raise ValueError("a judge metric scores answers in batches (tasks/feature/judge.py)")


def build_metric(feature: Feature) -> Metric:
    """The metric a feature declares, ready to score."""
    spec = feature.spec.metric
    target = feature.spec.target
    name, field = spec.name or spec.function or "", target.name
    labels = tuple(target.labels) if target.labels else None
    if spec.judge is not None:
        return Metric(name=f"judge:{spec.judge.mode}", field=field, score_fn=_judged, labels=labels, judge=spec.judge)
    if spec.function:
        return Metric(name=spec.function, field=field, score_fn=_import_user_metric(feature, spec.function), labels=labels)

    def field_of(d: dict[str, Any] | None) -> Any:
        return None if d is None else d.get(field)

    if name in ("exact_match", "label_accuracy", "macro_f1"):
        fn: ScoreFn = lambda g, p: float(field_of(p) is not None and normalise(field_of(g)) == normalise(field_of(p)))  # noqa: E731
    elif name == "json_f1":
        fn = lambda g, p: json_field_f1(field_of(g) or {}, field_of(p))  # noqa: E731
    else:  # numeric_match
        tolerance = spec.tolerance

        def fn(g: dict[str, Any], p: dict[str, Any] | None) -> float:
            try:
                return float(abs(float(field_of(p)) - float(field_of(g))) <= tolerance)
            except (TypeError, ValueError):
                return 0.0

    return Metric(name=name, field=field, score_fn=fn, labels=labels, corpus_level=name == "macro_f1")
