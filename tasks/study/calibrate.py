"""Calibrate a study's judge against the feature's human judgements (`metric.judge.human_judgements`).

Before the held-out comparison, the judge answers the human-judged items exactly as it answers in
the study (pairwise: `answer_a` in the candidate's place and `answer_b` as the reference, both
orders; rubric: the answer, per criterion), through the study's gateway: cached, on the bill with
`purpose = 'judge'`, inside the spend cap; its verdicts are rows of `judgements` with no trial.
The judge's agreement with the people (tasks/evidence/calibration.py) is stored in
`judge_calibrations`, and the comparison's overall and per-slice intervals are corrected for the
judge's errors with it. Without human judgements the intervals are the plain paired bootstrap and
the report says they assume a perfect judge.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from offramp.tasks.evidence.calibration import PERFECT_JUDGE, Calibration, calibrate, difference_hook
from offramp.tasks.feature.human_judgements import load_human_judgements
from offramp.tasks.feature.judge import Judged, judge_answers
from offramp.tasks.feature.spec import Example, Feature
from offramp.tasks.gateway.llm import GatewayConfig
from offramp.tasks.gateway.plugins import load_plugins
from offramp.tasks.study.trials import Outcome, Spent, StudyContext
from offramp.warehouse import records

Difference = Callable[[np.ndarray, np.ndarray], tuple[float, float, float]]


@dataclasses.dataclass(frozen=True)
class CalibrationJob:
    name: str
    feature: Feature  # without its examples
    items: tuple[Example, ...]  # the human-judged items' inputs
    answers: tuple[dict, ...]  # the judged answer of each item (pairwise: answer_a)
    references: dict[str, dict] | None  # pairwise: answer_b of each item
    study_id: str
    gateway: GatewayConfig


@task(cache_policy=NO_CACHE, task_run_name="{job.name}")
def judge_human_items(job: CalibrationJob) -> Outcome[Judged]:
    """The judge's verdicts on the human-judged items, through a gateway of the task's own."""
    load_plugins()
    gateway = job.gateway.open()
    judged = judge_answers(job.feature.spec, job.feature.spec.metric.judge, job.items, list(job.answers), gateway,
                           references=job.references, study_id=job.study_id, trial_id=None)
    return Outcome(judged, Spent.of(gateway))


def calibrate_judge(ctx: StudyContext, log: Callable[[str], None] | None = None) -> Difference | None:
    """Calibrate the study's judge (stored once per study; a resume reads it back). Returns the
    comparison's `difference` (None: the feature has no judge, or the judge could not answer the
    items: the plain paired bootstrap)."""
    feature = ctx.feature
    judge = feature.spec.metric.judge
    if judge is None:
        return None
    pairwise = judge.mode == "pairwise"
    stored = records.judge_calibration(ctx.wh, ctx.study_id)
    if stored is None:
        stored = _measure(ctx)
        records.store_judge_calibration(ctx.wh, stored)
        if log is not None:
            log(f"judge calibration: {stored['summary']}")
    if stored["human"] is None:
        return difference_hook(None, pairwise=pairwise, seed=ctx.seed)
    cal = Calibration(scale=stored["scale"], human=tuple(json.loads(stored["human"])), judge=tuple(json.loads(stored["judge"])))
    return difference_hook(cal, pairwise=pairwise, seed=ctx.seed)


def _measure(ctx: StudyContext) -> dict:
    feature, spec = ctx.feature, ctx.feature.spec
    judge = spec.metric.judge
    row = {"study_id": ctx.study_id, "mode": judge.mode, "judge_model": judge.model, "path": None, "scale": None, "n": 0,
           "raw_agreement": None, "kappa": None, "weighted_kappa": None, "confusion": None, "judge_tie_rate": None,
           "human_tie_rate": None, "human": None, "judge": None, "unjudged": 0,
           "summary": f"every interval {PERFECT_JUDGE}"}
    if judge.human_judgements is None:
        return row
    path = feature.root / judge.human_judgements.path
    human = load_human_judgements(path, spec, judge.mode, judge.scale if judge.mode == "rubric" else None)
    field = spec.target.name
    items = tuple(Example(id=h.id, inputs=h.inputs, outputs={}) for h in human.items)
    pairwise = judge.mode == "pairwise"
    answers = tuple({field: h.answer_a if pairwise else h.answer} for h in human.items)
    references = {h.id: {field: h.answer_b} for h in human.items} if pairwise else None
    outcome: Outcome[Judged] = ctx.run(judge_human_items, lambda gateway: CalibrationJob(
        name=f"judge calibration: {len(items)} human judgements", feature=ctx.feature_ref, items=items, answers=answers,
        references=references, study_id=ctx.study_id, gateway=gateway,
    ), trial_id=None, purpose="judge")
    judged = outcome.value
    records.store_calls(ctx.wh, judged.calls, outcome.spent.paid)
    records.store_judgements(ctx.wh, judged.judgements)
    cal = calibrate(human.scores(), judged.scores, human.scale)
    agreement = cal.agreement()
    unjudged = judged.unparsed + judged.failed
    row.update(path=str(judge.human_judgements.path), scale=human.scale, n=cal.n, raw_agreement=agreement.raw_agreement,
               kappa=agreement.kappa, weighted_kappa=agreement.weighted_kappa, confusion=json.dumps(agreement.confusion),
               judge_tie_rate=agreement.judge_tie_rate, human_tie_rate=agreement.human_tie_rate,
               human=json.dumps(cal.human), judge=json.dumps(cal.judge), unjudged=unjudged,
               summary=agreement.summary() + (f"; {unjudged} judge answers on them did not parse or failed (counted as the "
                                              "judge's verdict 0, as in the study)" if unjudged else ""))
    return row
