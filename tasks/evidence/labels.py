"""What a reviewer of a classifier expects: per-label precision and recall on the held-out split,
the confusion between the incumbent's and a candidate's answers, and a warning when a config
collapses onto a few answers. Pure: values in, values out (the flow stores the result with the
study's selection; views `v_label_metrics`, `v_label_confusion`, `v_label_collapse` read it).

An answer is read as one of the target's labels (case and spacing ignored, as the built-in metrics
do); an answer that is none of them is `(other)`, a failed or unparsed one `(no answer)`.

Per label L (test split, one config): precision = answers L that are right / answers L (None when
it never answered L), recall = answers L that are right / gold L (None when no gold L).

Collapse (any config, the incumbent included), on the test answers, either:
- one answer on at least `COLLAPSE_SHARE` (50%) of the examples while the most frequent gold label
  is at most `COLLAPSE_RATIO` (2/3) of that share (e.g. 41 of 60 answers one label whose gold top
  label is 15 of 60): the config says one thing far more often than anything is true;
- the gold holds at least `FEW_MIN_GOLD` (4) distinct labels and the config answers at most half as
  many distinct labels (e.g. 3 of 11): it never says most of what is true.
Only a `label` target gets this evidence; other targets get none (`label_evidence` returns None).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offramp.tasks.feature.metrics import normalise

COLLAPSE_SHARE = 0.5
COLLAPSE_RATIO = 2 / 3
FEW_MIN_GOLD = 4
NO_ANSWER = "(no answer)"
OTHER = "(other)"


@dataclass(frozen=True)
class Answered:
    """One config's test answers: `answers[example_id]` is its prediction dict (None: no answer)."""

    trial_id: int  # the dev trial (the incumbent's dev trial for the incumbent)
    label: str  # the config in words
    role: str
    answers: Mapping[str, Any]


def read_label(prediction: Any, field: str, labels: Sequence[str]) -> str:
    """A prediction as one of `labels`, `(other)` or `(no answer)`."""
    value = prediction.get(field) if isinstance(prediction, dict) else None
    if value is None:
        return NO_ANSWER
    wanted = normalise(value)
    return next((label for label in labels if normalise(label) == wanted), OTHER)


def per_label(golds: Sequence[str], answers: Sequence[str], labels: Sequence[str]) -> list[dict[str, Any]]:
    """Per label: gold count, answer count, right answers, precision, recall."""
    rows = []
    for label in labels:
        n_gold = sum(1 for g in golds if g == label)
        n_answered = sum(1 for a in answers if a == label)
        right = sum(1 for g, a in zip(golds, answers) if g == a == label)
        rows.append({"label": label, "n_gold": n_gold, "n_answered": n_answered, "right": right,
                     "precision": right / n_answered if n_answered else None, "recall": right / n_gold if n_gold else None})
    return rows


def collapse(golds: Sequence[str], answers: Sequence[str]) -> str | None:
    """Why a config's answers collapsed (the rules in the module docstring), or None."""
    n = len(answers)
    if not n:
        return None
    top, top_n = Counter(answers).most_common(1)[0]
    gold_top, gold_top_n = Counter(golds).most_common(1)[0]
    share, gold_share = top_n / n, gold_top_n / len(golds)
    if top != NO_ANSWER and share >= COLLAPSE_SHARE and gold_share <= COLLAPSE_RATIO * share:
        return (f"answers {top!r} on {top_n} of {n} test examples ({share:.0%}) while the most frequent gold label, "
                f"{gold_top!r}, is {gold_top_n} of {len(golds)} ({gold_share:.0%})")
    said = {a for a in answers if a not in (NO_ANSWER, OTHER)}
    true = set(golds)
    if len(true) >= FEW_MIN_GOLD and len(said) * 2 <= len(true):
        return f"answers only {len(said)} distinct labels on the test split, where the gold holds {len(true)}"
    return None


def label_evidence(
    field: str, labels: Sequence[str], gold: Mapping[str, Any], incumbent: Answered, candidates: Sequence[Answered],
) -> dict[str, Any]:
    """The per-label evidence of the incumbent and each candidate on the same examples (`gold`:
    example id -> gold label, in the split's order): per-label rows, collapse warnings, and for
    each candidate the confusion with the incumbent (incumbent's answer -> candidate's answer -> n)."""
    ids = list(gold)
    golds = [read_label({field: gold[i]}, field, labels) for i in ids]
    configs, per_label_rows, warnings, confusion = [], [], [], []
    for a in [incumbent, *candidates]:
        answers = [read_label(a.answers.get(i), field, labels) for i in ids]
        configs.append({"trial_id": a.trial_id, "config": a.label, "role": a.role, "n": len(ids)})
        per_label_rows += [{"trial_id": a.trial_id, "role": a.role, **row} for row in per_label(golds, answers, labels)]
        why = collapse(golds, answers)
        if why:
            warnings.append({"trial_id": a.trial_id, "config": a.label, "role": a.role, "why": why})
        if a is not incumbent:
            inc = [read_label(incumbent.answers.get(i), field, labels) for i in ids]
            pairs = Counter(zip(inc, answers))
            confusion += [{"trial_id": a.trial_id, "incumbent_answer": i, "candidate_answer": c, "n": n}
                          for (i, c), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"field": field, "labels": list(labels), "incumbent_trial_id": incumbent.trial_id, "configs": configs,
            "per_label": per_label_rows, "collapse": warnings, "confusion": confusion}


def top_disagreements(evidence: Mapping[str, Any], trial_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The candidate's most frequent answers that differ from the incumbent's (most first)."""
    rows = [r for r in evidence.get("confusion", []) if r["trial_id"] == trial_id and r["incumbent_answer"] != r["candidate_answer"]]
    return rows[:limit]
