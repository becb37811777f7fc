"""The evidence step of a study: compare every front config with the incumbent on the held-out
split, example by example and slice by slice, store it, and select under the policy."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

from offramp.tasks.evidence.compare import Comparison, Difference, PairedExample, compare_paired
from offramp.tasks.evidence.confirm import chosen, confirmation_order, reference_verdict, settled
from offramp.tasks.evidence.labels import Answered, label_evidence
from offramp.tasks.evidence.policy import Candidate, Selection, SelectionPolicy, select_release
from offramp.tasks.evidence.verdicts import SliceVerdict
from offramp.tasks.feature.prompts import render_input
from offramp.tasks.feature.spec import Example, Feature
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import Trial, TrialMeasurement


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


def with_verdicts(rows: list[dict], verdicts: Sequence[SliceVerdict]) -> list[dict]:
    """comparisons rows with each slice's verdict (tasks.evidence.verdicts); the overall row and a study
    without a slice limit get NULLs."""
    by_name = {v.name: v for v in verdicts}
    out = []
    for row in rows:
        v = by_name.get(f"{row['slice_field']}={row['slice_value']}") if row["slice_field"] is not None else None
        out.append({**row, "verdict": v and v.verdict, "adj_confidence": v and v.confidence, "adj_ci_low": v and v.adj_low,
                    "adj_ci_high": v and v.adj_high, "slices_judged": v and v.slices_judged, "n_needed": v and v.n_needed})
    return out


def candidate(dev_id: int, label: str, test: TrialMeasurement, comparison: Comparison) -> Candidate:
    """A front config as the policy judges it: its test measurement and its paired comparison
    (pure: bench/search_efficiency.py judges a synthetic study with it too)."""
    o = comparison.overall
    return Candidate(
        trial_id=dev_id, label=label, test=test, diff=o.diff, diff_ci_low=o.diff_ci_low, diff_ci_high=o.diff_ci_high,
        slice_diffs={f"{s.field}={s.value}": (s.diff, s.n) for s in comparison.slices},
        slice_cis={f"{s.field}={s.value}": (s.diff_ci_low, s.diff_ci_high) for s in comparison.slices},
    )


def judge_front(
    wh: Warehouse, study_id: str, feature: Feature, test_examples: tuple[Example, ...], incumbent_test: Trial,
    test_by_source: dict[int, Trial], dev_by_id: dict[int, Trial], policy: SelectionPolicy, seed: int,
    policy_source: str | None = None, references: Sequence[int] = (), difference: Difference | None = None,
) -> tuple[Selection, dict[int, Comparison]]:
    """Paired comparisons of each confirmed config with the incumbent (stored), then the selection.
    `references` (naive swaps confirmed only to answer "would just swapping the model do?") are
    compared, stored and judged under the policy like the others, never selected.
    The study records the policy it applied: `policy_source` (its file, if any), hash and values.
    `difference`: a judged feature's intervals, corrected for the judge's errors (tasks/study/calibrate.py)."""
    comparisons: dict[int, Comparison] = {}
    rows: list[dict] = []
    flips: list[dict] = []
    candidates = []
    for dev_id, test in test_by_source.items():
        if test.status != "completed":
            continue
        comparison = compare_paired(
            paired(wh, study_id, feature, test_examples, incumbent_test.trial_id, test.trial_id), seed=seed,
            difference=difference,
        )
        comparisons[dev_id] = comparison
        more_rows, more_flips = _rows(study_id, dev_id, test.trial_id, comparison)
        candidates.append(candidate(dev_id, dev_by_id[dev_id].label, test.measurement, comparison))
        rows += with_verdicts(more_rows, candidates[-1].slice_verdicts(policy))
        flips += more_flips
    selectable = [c for c in candidates if c.trial_id not in references]
    selection = select_release(incumbent_test.measurement.quality, selectable, policy)
    extra = [reference_verdict(c, policy) for c in candidates if c.trial_id in references]
    if extra:
        selection = dataclasses.replace(selection, verdicts=[*selection.verdicts, *extra])
    records.store_evidence(wh, study_id, rows, flips, policy.identity(policy_source))
    return selection, comparisons


def confirm_front(
    wh: Warehouse, study_id: str, feature: Feature, test_examples: tuple[Example, ...], incumbent_dev: Trial, incumbent_test: Trial,
    front: Sequence[int], dev_by_id: dict[int, Trial], confirm: Callable[[int], Trial], policy: SelectionPolicy, seed: int,
    policy_source: str | None = None, naive_swaps: Sequence[int] = (), difference: Difference | None = None,
) -> tuple[Selection, dict[int, Trial], dict[int, str]]:
    """Confirm on test only the front configs that can still win (tasks.evidence.confirm), cheapest
    first, judging as it goes; `confirm(dev_id)` runs one on the test split. Then every naive swap
    (`naive_swaps`: their dev trials) not confirmed yet, whether or not it can win: a reference that
    answers "would just swapping the model do?" (compared and judged, never selected). Returns the
    selection, the test trials by dev trial, and the front configs not confirmed with why."""
    order, skipped = confirmation_order({i: dev_by_id[i].measurement for i in front}, incumbent_dev.measurement, policy)
    tests: dict[int, Trial] = {}
    references: list[int] = []
    selection = None
    for n, dev_id in enumerate(order):
        tests[dev_id] = confirm(dev_id)
        selection = None
        if incumbent_test.status != "completed" or policy.prefer != "cheapest":
            continue
        selection, candidates = _judge(wh, study_id, feature, test_examples, incumbent_test, tests, dev_by_id, policy, seed,
                                       policy_source, difference=difference)
        chosen_test = chosen(selection, candidates)
        if n + 1 < len(order) and settled(chosen_test, [dev_by_id[j].measurement for j in order[n + 1:]], policy):
            for j in order[n + 1:]:
                skipped[j] = (f"not confirmed on test: trial {selection.trial_id} was accepted at ${chosen_test.cost_per_1k_usd:.5f} "
                              f"per 1k on test and this config costs ${dev_by_id[j].measurement.cost_per_1k_usd:.5f} on dev: it "
                              f"could not be preferred (prefer: cheapest)")
            break
    for dev_id in naive_swaps:
        if dev_id not in tests:
            tests[dev_id] = confirm(dev_id)
            references.append(dev_id)
            skipped.pop(dev_id, None)  # confirmed after all: its verdict says what it is
            selection = None
    if selection is None and incumbent_test.status == "completed":
        selection, _ = _judge(wh, study_id, feature, test_examples, incumbent_test, tests, dev_by_id, policy, seed, policy_source,
                              references, difference)
    if not [t for t in tests if t not in references] and skipped:  # nothing could be non-inferior: name the best on dev, as the least bad
        best = max(skipped, key=lambda i: (dev_by_id[i].measurement.quality or 0.0, -i))
        selection = dataclasses.replace(selection, recommended_trial_id=best, reason=(
            f"no front config meets the policy: none can be shown non-inferior, even at the top of its dev quality interval "
            f"(none was confirmed on test). Least bad on dev: trial {best} ({dev_by_id[best].label}). Widen the search, collect "
            "more examples, or relax the policy knowingly."))
    return selection, tests, skipped


def _judge(wh, study_id, feature, test_examples, incumbent_test, tests, dev_by_id, policy, seed, policy_source, references=(),
           difference=None):
    """judge_front, with the candidates it judged (rebuilt from its comparisons)."""
    selection, comparisons = judge_front(wh, study_id, feature, test_examples, incumbent_test, tests, dev_by_id, policy, seed,
                                         policy_source=policy_source, references=references, difference=difference)
    return selection, [candidate(i, dev_by_id[i].label, tests[i].measurement, c) for i, c in comparisons.items()]

def label_report(
    wh: Warehouse, study_id: str, feature: Feature, test_examples: tuple[Example, ...], incumbent_dev: Trial, incumbent_test: Trial,
    tests: dict[int, Trial], dev_by_id: dict[int, Trial],
) -> dict | None:
    """Per-label precision and recall, confusion with the incumbent and collapse warnings of the
    incumbent and every config confirmed on test (tasks.evidence.labels); None unless the target is a label."""
    target = feature.spec.target
    if target.type != "label" or incumbent_test.status != "completed":
        return None

    def answered(dev: Trial, test: Trial) -> Answered:
        return Answered(dev.trial_id, dev.label, dev.role,
                        {i: p for i, (_, p) in records.trial_answers(wh, study_id, test.trial_id).items()})

    confirmed = [answered(dev_by_id[i], t) for i, t in sorted(tests.items()) if t.status == "completed"]
    return label_evidence(target.name, target.labels, {e.id: e.outputs.get(target.name) for e in test_examples},
                          answered(incumbent_dev, incumbent_test), confirmed)
