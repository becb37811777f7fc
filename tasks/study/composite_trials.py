"""Composite candidates in a study: built after the search on dev, confirmed on the held-out test
split like any config (`tasks.study.composites` chooses them; this module records and runs them).

On dev a composite is a trial with no call of its own: its measurement comes from its members'
recorded answers. On test it calls its members through the gateway on what it would call in
production (a cascade: its cheap members on every request, its fallback on the escalated ones; a
router: each request's member), with `purpose = 'composite'` (on the bill; the cache makes an
answer a member already gave free), and records per request the branch that answered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from offramp import stopping
from offramp.search_spaces.schema import Config
from offramp.tasks.feature.programs import compile_key
from offramp.tasks.feature.prompts import render_input, shipped_prompt_demos
from offramp.tasks.feature.spec import Example, FeatureSpec
from offramp.tasks.search.ask_tell import Limits
from offramp.tasks.study import router
from offramp.tasks.study.composites import (
    Answer,
    Built,
    Composite,
    Member,
    Routed,
    answer_of,
    cascade_escalates,
    cascade_request,
    measure,
    propose,
    routed_member,
    router_request,
)
from offramp.tasks.study.trials import EvalJob, Outcome, StudyContext, evaluate_examples
from offramp.warehouse import composites as store, records
from offramp.warehouse.records import CallRecord, Trial, TrialMeasurement


def request_time_slices(spec: FeatureSpec, examples: Sequence[Example]) -> dict[str, dict[str, str]]:
    """The declared slices a router may use: input field -> (example_id -> value). A slice is
    usable when its column is an input of the signature (known when the request arrives); a slice
    that is an output, or a copy of the gold label, is not (detected, and skipped)."""
    by_column = {column: name for name, column in spec.data.columns.items()}
    inputs = {f.name for f in spec.signature.inputs}
    out = {}
    for column in spec.data.slices:
        field = by_column.get(column)
        if field is None or field not in inputs:
            continue
        values = {e.id: str(e.inputs[field]) for e in examples}
        if any(all(values[e.id] == str(e.outputs.get(o.name)) for e in examples) for o in spec.signature.outputs):
            continue  # the gold label under another name
        out[field] = values
    return out


def _members(ctx: StudyContext, dev: Sequence[Example], labels: dict[int, str]) -> list[Member]:
    """The search's configs measured on the whole dev split, with their answers."""
    rows = [r for r in records.study_trials(ctx.wh, ctx.study_id) if r["split"] == "dev" and r["status"] == "completed"
            and r["role"] in ("candidate", "naive_swap") and (r["feasible"] is None or r["feasible"]) and r["trial_id"] in labels]
    first: dict[str, dict] = {}
    for r in rows:  # a config measured twice is one member (its first trial)
        first.setdefault(r["config_hash"], r)
    rows = list(first.values())
    answers = store.member_answers(ctx.wh, ctx.study_id, [r["trial_id"] for r in rows])
    ids = {e.id for e in dev}
    members = []
    for r in rows:
        got = answers.get(r["trial_id"], {})
        if not ids <= set(got):
            continue  # raced out before the end of dev
        members.append(Member(
            trial_id=r["trial_id"], label=labels[r["trial_id"]], quality=r["quality"], cost_per_1k_usd=r["cost_per_1k_usd"],
            latency_p95_s=r["latency_p95_s"],
            answers={e: answer_of(c["score"], c["prediction"], c["orig_cost_usd"], c["orig_latency_s"], c["error"], c.get("confidence"))
                     for e, c in got.items() if e in ids},
        ))
    return members


def _learner(ctx: StudyContext, dev: Sequence[Example]):  # noqa: ANN202 - the `learned` callable of `propose`
    texts = {e.id: render_input(ctx.feature.spec, e) for e in dev}
    ids = [e.id for e in dev]

    def learned(cheap: Member, strong: Member) -> tuple[dict, dict[str, float]] | None:
        y = router.cheap_is_enough([cheap.answers[e].score for e in ids], [strong.answers[e].score for e in ids])
        if not router.trainable(y):
            return None
        probabilities = router.cross_fitted([texts[e] for e in ids], y, ctx.seed)
        return router.fit_definition([texts[e] for e in ids], y, ctx.seed), dict(zip(ids, probabilities))

    return learned


def build_composites(ctx: StudyContext, dev: Sequence[Example], labels: dict[int, str], limits: Limits) -> list[Trial]:
    """The study's composite dev trials: built now from the search's dev answers, or (a resumed
    study) the ones an earlier run built. `labels`: dev trial id -> its config's label."""
    existing = store.study_composites(ctx.wh, ctx.study_id)
    if existing:
        rows = {r["trial_id"]: r for r in records.study_trials(ctx.wh, ctx.study_id)}
        return [Trial.from_row(rows[c["trial_id"]], c["label"]) for c in existing if c["trial_id"] in rows]
    members = _members(ctx, dev, labels)
    metric = ctx.metric
    golds = {e.id: e.outputs.get(metric.field) for e in dev}
    built = propose(metric, members, golds, seed=ctx.seed, slices=request_time_slices(ctx.feature.spec, dev),
                    learned=_learner(ctx, dev))
    return [_record_dev(ctx, b, limits) for b in built]


def _record_dev(ctx: StudyContext, built: Built, limits: Limits) -> Trial:
    c, m = built.composite, built.measurement
    trial_id = ctx.allocate_trial_id()
    _start(ctx, trial_id, "dev", None, c)
    store.store_composite(ctx.wh, study_id=ctx.study_id, trial_id=trial_id, kind=c.kind, rule=c.rule, label=c.label(),
                          description=c.describe(), members=c.members, threshold=c.threshold, definition=c.to_dict())
    store.store_answers(ctx.wh, _answer_rows(ctx.study_id, trial_id, built.routed))
    feasible = all(v <= 0 for v in limits.violations(m).values())
    records.finish_trial(ctx.wh, study_id=ctx.study_id, trial_id=trial_id, measurement=m, calls=[], feasible=feasible, stage=1.0)
    return Trial(trial_id=trial_id, role="composite", split="dev", label=c.label(), model=c.label(), measurement=m, stage=1.0)


def _start(ctx: StudyContext, trial_id: int, split: str, source: int | None, c: Composite) -> None:
    records.start_trial(ctx.wh, study_id=ctx.study_id, trial_id=trial_id, role="composite", split=split, source_trial_id=source,
                        config_hash=c.key(), model=c.label(), settings={}, strategy=f"{c.kind}:{c.rule}")


def _answer_rows(study_id: str, trial_id: int, routed: Sequence[Routed]) -> list[dict[str, Any]]:
    return [{"study_id": study_id, "trial_id": trial_id, "example_id": r.example_id, "branch": r.branch,
             "member_trial_id": r.member, "score": r.answer.score,
             "prediction": None if r.answer.prediction is None else json.dumps(r.answer.prediction, sort_keys=True),
             "cost_usd": r.answer.cost_usd, "latency_s": r.answer.latency_s, "calls": r.calls} for r in routed]


# ------------------------------------------------------------------------------------- on test
def confirmable(ctx: StudyContext, dev_trials: Sequence[Trial]) -> list[int]:
    """The composites (dev trial ids) that can be confirmed on the held-out split: completed, feasible, defined."""
    defined = {c["trial_id"] for c in store.study_composites(ctx.wh, ctx.study_id)}
    feasible = {r["trial_id"] for r in records.study_trials(ctx.wh, ctx.study_id) if r["feasible"] is None or r["feasible"]}
    return [t.trial_id for t in dev_trials if t.status == "completed" and t.trial_id in feasible and t.trial_id in defined]


def confirm_composite(ctx: StudyContext, dev: Trial, configs: dict[int, Config], test: tuple[Example, ...]) -> Trial:
    """A composite on the held-out split (its test trial); a test trial an earlier run completed is kept."""
    for r in records.study_trials(ctx.wh, ctx.study_id):
        if r["role"] == "composite" and r["split"] == "test" and r["status"] == "completed" and r["source_trial_id"] == dev.trial_id:
            return Trial.from_row(r, dev.label)
    definition = next(Composite.from_dict(c["definition"]) for c in store.study_composites(ctx.wh, ctx.study_id)
                      if c["trial_id"] == dev.trial_id)
    return _confirm(ctx, dev, definition, configs, test)


def _confirm(ctx: StudyContext, dev: Trial, c: Composite, configs: dict[int, Config], test: tuple[Example, ...]) -> Trial:
    trial_id = ctx.allocate_trial_id()
    _start(ctx, trial_id, "test", dev.trial_id, c)
    missing = [m for m in c.members if m not in configs]
    routed: list[Routed] | None = None
    made: list[CallRecord] = []  # the member calls this trial made
    error = f"members {missing} have no config in this study's Optuna storage" if missing else None
    if not missing:
        run_on = _cascade_on if c.kind == "cascade" else _route_on
        routed = run_on(ctx, trial_id, c, configs, test, made)
    status = "stopped_by_budget" if ctx.budget_exhausted else "provider_down" if ctx.endpoint_down else None
    if routed is None or status is not None:
        m = TrialMeasurement.failed(len(test), status or "failed", error or f"{status}: the composite's members were not all answered")
    else:
        m = dataclasses.replace(
            measure(ctx.metric, [e.outputs.get(ctx.metric.field) for e in test], routed, seed=ctx.seed),
            spend_usd=sum(x.cost_usd for x in made), prompt_tokens=sum(x.prompt_tokens or 0 for x in made),
            completion_tokens=sum(x.completion_tokens or 0 for x in made),
        )
        store.store_answers(ctx.wh, _answer_rows(ctx.study_id, trial_id, routed))
    records.finish_trial(ctx.wh, study_id=ctx.study_id, trial_id=trial_id, measurement=m, calls=[], stage=1.0)
    if m.status != "completed":
        records.charge_unfinished_trials(ctx.wh, ctx.study_id)
    return Trial(trial_id=trial_id, role="composite", split="test", label=dev.label, model=dev.label, measurement=m,
                 source_trial_id=dev.trial_id, stage=1.0)


def _cascade_on(ctx: StudyContext, trial_id: int, c: Composite, configs: dict[int, Config],
                test: tuple[Example, ...], made: list[CallRecord]) -> list[Routed] | None:
    """The cascade on test: its cheap members on every request, its fallback where it escalates."""
    cheap = []
    for m in c.members[:-1]:
        answers = _answers(ctx, trial_id, configs[m], test, made)
        if answers is None:
            return None
        cheap.append(answers)
    escalated = tuple(e for e in test if cascade_escalates(c, [a[e.id] for a in cheap]))
    fallback = _answers(ctx, trial_id, configs[c.members[-1]], escalated, made) if escalated else {}
    if fallback is None:
        return None
    return [cascade_request(c, e.id, [a[e.id] for a in cheap], fallback.get(e.id)) for e in test]


def _route_on(ctx: StudyContext, trial_id: int, c: Composite, configs: dict[int, Config],
              test: tuple[Example, ...], made: list[CallRecord]) -> list[Routed] | None:
    """The router on test: each request to the member its rule picks from the inputs alone."""
    if c.rule == "slice":
        chosen = {e.id: routed_member(c, str(e.inputs.get(c.slice_field or "")), None) for e in test}
    else:
        probabilities = router.predict(c.router or {}, [render_input(ctx.feature.spec, e) for e in test])
        chosen = {e.id: routed_member(c, None, p) for e, p in zip(test, probabilities)}
    answers: dict[str, Answer] = {}
    for m in c.members:
        subset = tuple(e for e in test if chosen[e.id] == m)
        got = _answers(ctx, trial_id, configs[m], subset, made) if subset else {}
        if got is None:
            return None
        answers.update(got)
    return [router_request(c, e.id, chosen[e.id], answers[e.id]) for e in test]


def _answers(ctx: StudyContext, trial_id: int, config: Config, examples: tuple[Example, ...],
             made: list[CallRecord]) -> dict[str, Answer] | None:
    """A member's answers on behalf of a composite trial (its calls stored with purpose `composite`,
    and added to `made`). None when the member's compiled program is not in the warehouse."""
    stopping.check()  # a stop request: no new call
    demos: tuple[Example, ...] = ()
    program = None
    if config.strategy.kind.shipped_prompt:
        demos = tuple(shipped_prompt_demos(ctx.feature, ctx.train, config.settings.demos, ctx.seed))
    else:
        found = records.find_program(ctx.wh, compile_key(ctx.feature.spec, config, ctx.train, ctx.seed, ctx.feature.unlabeled))
        if found is None:
            return None
        program = found[1]
    outcome: Outcome = ctx.run(evaluate_examples, lambda gateway: EvalJob(
        name=f"composite trial {trial_id}: {config.model}", feature=ctx.feature_ref, config=config, examples=examples, demos=demos,
        program=program, study_id=ctx.study_id, trial_id=trial_id, seed=ctx.seed, gateway=gateway, purpose="composite",
        references=ctx.judge_references("test", "composite"),  # members answer the test split for a composite
    ), trial_id=trial_id, purpose="composite")
    evaluation = outcome.value
    records.store_calls(ctx.wh, evaluation.calls, outcome.spent.paid)
    records.store_judgements(ctx.wh, evaluation.judgements)
    stopping.check()  # answers cut short by a stop are stored, not used
    made += evaluation.calls
    return {
        e.id: Answer(score=s, prediction=p, cost_usd=float(r.orig_cost_usd or 0.0), latency_s=float(r.orig_latency_s or 0.0),
                     error=r.error is not None, confidence=getattr(r, "confidence", None))
        for e, s, p, r in zip(examples, evaluation.scores, evaluation.predictions, evaluation.results)
    }
