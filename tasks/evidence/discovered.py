"""The discovery step of a study: after the paired comparison, look for discovered slices (see
`tasks.evidence.discover`) for every config confirmed on the held-out split, and store them
(`discovered_slices`, `slice_discovery`). Cheap: no LLM call, only the answers already recorded.

Any list of compared inputs can be fed (`store_discoveries`): the held-out split's paired examples
(`source='test'`, what the flow does) or production samples answered by both configs (`source='samples'`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from offramp.tasks.evidence.compare import PairedExample
from offramp.tasks.evidence.discover import DEFAULT_RULE, ComparedInput, Discovery, DiscoveryRule, discover_slices
from offramp.tasks.evidence.judge import paired
from offramp.tasks.feature.spec import Example, Feature
from offramp.warehouse import Warehouse, records
from offramp.warehouse.discovered import store_discovery
from offramp.warehouse.records import Trial


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def compared_inputs(examples: Sequence[PairedExample]) -> list[ComparedInput]:
    """The paired examples as discovery reads them: lost = the candidate scored below the incumbent;
    disagrees = a different answer (two missing answers agree, as in `compare_paired`)."""
    return [ComparedInput(example_id=e.example_id, text=e.input_text, lost=e.candidate_score < e.incumbent_score,
                          disagrees=not _same(e.incumbent_prediction, e.candidate_prediction),
                          incumbent_answer=e.incumbent_prediction, candidate_answer=e.candidate_prediction)
            for e in examples]


def rows(study_id: str, trial_id: int, test_trial_id: int | None, source: str, found: Discovery) -> tuple[dict, list[dict]]:
    """(the run's row, its slices' rows) for the warehouse. Slice ids: `<trial>-<rank>` from the
    held-out split, `s<trial>-<rank>` from production samples; rank 1 is the most significant."""
    run = {"study_id": study_id, "trial_id": trial_id, "test_trial_id": test_trial_id, "source": source,
           "n_inputs": found.n_inputs, "n_clustered": found.n_clustered, "n_tested": found.n_tested,
           "threshold": found.threshold, "overall_loss_rate": found.overall_loss_rate,
           "overall_disagree_rate": found.overall_disagree_rate, "n_found": len(found.slices), "rule": found.rule}
    prefix = "" if source == "test" else source[0]
    slices = []
    for rank, s in enumerate(found.slices, start=1):
        slices.append({
            "study_id": study_id, "trial_id": trial_id, "source": source, "slice_id": f"{prefix}{trial_id}-{rank}",
            "signal": s.signal, "size": s.size, "share": s.share, "losses": s.losses, "loss_rate": s.loss_rate,
            "loss_ci_low": s.loss_ci_low, "loss_ci_high": s.loss_ci_high, "outside_loss_rate": s.outside_loss_rate,
            "disagreements": s.disagreements, "disagree_rate": s.disagree_rate, "disagree_ci_low": s.disagree_ci_low,
            "disagree_ci_high": s.disagree_ci_high, "outside_disagree_rate": s.outside_disagree_rate, "p_value": s.p_value,
            "terms": json.dumps(list(s.terms)), "member_ids": json.dumps(list(s.member_ids)),
            "examples": json.dumps(list(s.examples), sort_keys=True, default=str),
        })
    return run, slices


def store_discoveries(wh: Warehouse, study_id: str, source: str,
                      inputs_by_trial: Mapping[int, tuple[int | None, Sequence[ComparedInput]]], *, seed: int,
                      rule: DiscoveryRule = DEFAULT_RULE) -> dict[int, Discovery]:
    """Discover slices for each compared config (`dev trial id -> (its test trial id or None, its
    compared inputs)`) and replace the study's rows from `source`. Returns the discoveries."""
    runs, slices, found = [], [], {}
    for trial_id in sorted(inputs_by_trial):
        test_trial_id, inputs = inputs_by_trial[trial_id]
        if not inputs:
            continue
        found[trial_id] = discover_slices(inputs, seed=seed, rule=rule)
        run, more = rows(study_id, trial_id, test_trial_id, source, found[trial_id])
        runs.append(run)
        slices += more
    store_discovery(wh, study_id, source, runs, slices)
    return found


def discover_front(wh: Warehouse, study_id: str, feature: Feature, test_examples: tuple[Example, ...], incumbent_test: Trial,
                   test_by_source: Mapping[int, Trial], seed: int) -> dict[int, Discovery]:
    """Discovered slices of every config confirmed on the held-out split (completed test trials),
    from the answers both configs gave there (stored as `source='test'`)."""
    if incumbent_test.status != "completed":
        return {}
    by_trial = {dev_id: (test.trial_id, compared_inputs(paired(wh, study_id, feature, test_examples, incumbent_test.trial_id,
                                                                test.trial_id)))
                for dev_id, test in test_by_source.items() if test.status == "completed"}
    return store_discoveries(wh, study_id, "test", by_trial, seed=seed)


def discover_samples(wh: Warehouse, study_id: str, feature: Feature, seed: int) -> dict[int, Discovery]:
    """Discovered slices of the production sample (`source='samples'`): for each config that answered
    it, the inputs where its answer differs from what the incumbent served (label, number, JSON:
    agreement below 1) or, for a judged text target, where the pairwise judge preferred the served
    answer in both orders (a loss). Samples have no gold: `lost` is known only for a judged target."""
    judged = feature.spec.target.type == "text"
    by_trial: dict[int, tuple[int | None, list[ComparedInput]]] = {}
    for row in records.rows(wh, "sample_answers_compared", {"study_id": study_id}):
        agreement = float(row["agreement"] or 0.0)
        lost = agreement == 0.0 if judged else None
        item = ComparedInput(example_id=row["sample_id"], text=row["input_text"] or "", lost=lost,
                             disagrees=bool(lost) if judged else agreement < 1.0,
                             incumbent_answer=json.loads(row["served"]) if row["served"] else None,
                             candidate_answer=json.loads(row["prediction"]) if row["prediction"] else None)
        by_trial.setdefault(row["source_trial_id"], (None, []))[1].append(item)
    return store_discoveries(wh, study_id, "samples", by_trial, seed=seed) if by_trial else {}
