"""The evidence step of a study: compare every front config with the incumbent on the held-out
split, example by example and slice by slice, store it, and select under the policy."""

from __future__ import annotations

import json

from offramp.tasks.evidence.compare import Comparison, PairedExample, compare_paired
from offramp.tasks.evidence.policy import Candidate, Selection, SelectionPolicy, select_release
from offramp.tasks.feature.prompts import render_input
from offramp.tasks.feature.spec import Example, Feature
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import Trial


def paired(
    wh: Warehouse, study_id: str, feature: Feature, examples: tuple[Example, ...], incumbent_trial: int, candidate_trial: int
) -> list[PairedExample]:
    """The held-out examples as answered by both trials (a failed call scores 0, answers None)."""
    inc = records.trial_answers(wh, study_id, incumbent_trial)
    cand = records.trial_answers(wh, study_id, candidate_trial)
    out = []
    for e in examples:
        inc_score, inc_pred = inc.get(e.id, (0.0, None))
        cand_score, cand_pred = cand.get(e.id, (0.0, None))
        out.append(PairedExample(
            example_id=e.id, slices=dict(e.slices), incumbent_score=float(inc_score or 0.0),
            candidate_score=float(cand_score or 0.0), incumbent_prediction=inc_pred, candidate_prediction=cand_pred,
            input_text=render_input(feature.spec, e),
        ))
    return out


def _rows(study_id: str, dev_id: int, test_id: int, comparison: Comparison) -> tuple[list[dict], list[dict]]:
    comparisons = []
    for s in [comparison.overall, *comparison.slices]:
        row = {k: v for k, v in s.to_dict().items() if k not in ("field", "value")}
        comparisons.append({
            "study_id": study_id, "trial_id": dev_id, "test_trial_id": test_id, "slice_field": s.field,
            "slice_value": s.value, **row, "agreement_rate": comparison.agreement_rate if s.field is None else None,
        })
    flips = []
    for direction, items in (("regressed", comparison.flips_regressed), ("improved", comparison.flips_improved)):
        for f in items:
            flips.append({
                "study_id": study_id, "trial_id": dev_id, "example_id": f.example_id, "direction": direction,
                "input_text": f.input_text, "slices": json.dumps(f.slices, sort_keys=True),
                "incumbent_prediction": json.dumps(f.incumbent_prediction, sort_keys=True, default=str),
                "candidate_prediction": json.dumps(f.candidate_prediction, sort_keys=True, default=str),
                "incumbent_score": f.incumbent_score, "candidate_score": f.candidate_score,
            })
    return comparisons, flips


def judge_front(
    wh: Warehouse, study_id: str, feature: Feature, test_examples: tuple[Example, ...], incumbent_test: Trial,
    test_by_source: dict[int, Trial], dev_by_id: dict[int, Trial], policy: SelectionPolicy, seed: int,
    policy_source: str | None = None,
) -> tuple[Selection, dict[int, Comparison]]:
    """Paired comparisons of each front config with the incumbent (stored), then the selection.
    The study records the policy it applied: `policy_source` (its file, if any), hash and values."""
    comparisons: dict[int, Comparison] = {}
    rows: list[dict] = []
    flips: list[dict] = []
    candidates = []
    for dev_id, test in test_by_source.items():
        if test.status != "completed":
            continue
        comparison = compare_paired(
            paired(wh, study_id, feature, test_examples, incumbent_test.trial_id, test.trial_id), seed=seed
        )
        comparisons[dev_id] = comparison
        more_rows, more_flips = _rows(study_id, dev_id, test.trial_id, comparison)
        rows += more_rows
        flips += more_flips
        o = comparison.overall
        candidates.append(Candidate(
            trial_id=dev_id, label=dev_by_id[dev_id].label, test=test.measurement, diff=o.diff, diff_ci_low=o.diff_ci_low, diff_ci_high=o.diff_ci_high,
            slice_diffs={f"{s.field}={s.value}": (s.diff, s.n) for s in comparison.slices},
        ))
    selection = select_release(incumbent_test.measurement.quality, candidates, policy)
    records.store_evidence(wh, study_id, rows, flips, policy.identity(policy_source))
    return selection, comparisons
