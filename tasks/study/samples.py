"""The samples stage of a study: after the held-out comparison, the incumbent and the configs
confirmed on test (plus the naive swaps) answer a seeded sample of the feature's logged
production inputs (`data.samples`), and each answer is compared with what the incumbent served.

- Which samples: those whose served answer the shipped prompt's parser reads (others cannot be
  compared), in an order drawn with the study's seed; every config answers the same first n.
- How many: `choose_size`: the largest n (<= `max_samples`, <= those available) whose worst-case
  price for every config to answer it (priced as the gateway bounds a call before paying it: one
  token per prompt character, all `max_tokens` generated) fits in what is left of the spend cap
  after the study so far, minus a reserve of `RESERVE_FRACTION` of it. No cap: `max_samples`.
- What is measured: a trial per config (split 'samples', calls purpose 'eval'); its quality is its
  agreement with what was served (same label, number within `metric.tolerance`, or json_f1;
  `tasks/feature/samples.agreement_metric`) with a 95% bootstrap interval. The incumbent's own
  re-run gives the replay-drift baseline: how often the incumbent today agrees with itself then.
- Text targets: the feature's pairwise judge (`metric.judge`, mode pairwise) compares each answer
  with the served one, both orders, as it compares a candidate with the incumbent on test (win 1,
  tie 0.5, loss 0; `tasks/feature/judge.py`); its calls are purpose `judge`, on the cap. Without a
  pairwise judge the stage is skipped with the reason stored.
Stored: `sample_stages` (n and why), `sample_answers` (per trial and sample), view `v_sample_agreement`.
Composites (cascades, routers) are not run on samples.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from offramp import stopping
from offramp.search_spaces.schema import Config
from offramp.tasks.feature.evaluate import build_requests, prompt_runner
from offramp.tasks.feature.judge import judge_call_worst_usd
from offramp.tasks.feature.programs import compile_key
from offramp.tasks.feature.prompts import render_input, shipped_prompt_demos
from offramp.tasks.feature.sample_spec import Sample
from offramp.tasks.feature.samples import comparable
from offramp.tasks.feature.spec import Example, Feature
from offramp.tasks.gateway.prices import PriceBook, prompt_chars
from offramp.tasks.study.trials import EvalJob, Outcome, StudyContext, TrialRun, evaluate_examples, finish, start
from offramp.warehouse import records, samples as sample_rows
from offramp.warehouse.records import Trial

RESERVE_FRACTION = 0.10  # of what is left of the cap, kept back (a resume's overhead, a later judge)

@dataclasses.dataclass(frozen=True)
class SampleSize:
    """The sample size chosen, and why."""

    n: int
    worst_usd: float  # worst case of n samples for every config
    reason: str


def choose_size(per_sample_usd: Sequence[float], max_samples: int, left_usd: float | None, *, configs: int,
                reserve_fraction: float = RESERVE_FRACTION) -> SampleSize:
    """The largest prefix of the seeded order (`per_sample_usd[i]`: worst case of sample i for all
    configs) of at most `max_samples` whose worst case fits in `left_usd` minus the reserve."""
    available = len(per_sample_usd)
    limit = min(max_samples, available)
    bound = "max_samples" if max_samples <= available else "the logged inputs with a served answer"
    if left_usd is None:
        worst = float(sum(per_sample_usd[:limit]))
        return SampleSize(limit, worst, f"n = {limit} of {available} available: no spend cap, so up to {bound} ({max_samples}); "
                                       f"worst case ${worst:.4f} for {configs} configs")
    budget = max(0.0, left_usd) * (1.0 - reserve_fraction)
    n, total = 0, 0.0
    for cost in per_sample_usd[:limit]:
        if total + cost > budget:
            break
        n, total = n + 1, total + cost
    kept = f"{1 - reserve_fraction:.0%} of the ${max(0.0, left_usd):.4f} left of the spend cap ({reserve_fraction:.0%} kept back)"
    if n == 0:
        first = per_sample_usd[0] if per_sample_usd else 0.0
        return SampleSize(0, 0.0, f"n = 0: one sample answered by {configs} configs costs up to ${first:.6f}, more than {kept}; "
                                  "raise --max-spend (with --raise-cap) to compare with production traffic")
    why = f"n = {n} of {available} available: " + (
        f"{bound} ({limit}), whose worst case ${total:.4f} for {configs} configs fits in {kept}" if n == limit else
        f"the largest sample whose worst case for {configs} configs (${total:.4f}) fits in {kept}; {limit} would need "
        f"${sum(per_sample_usd[:limit]):.4f}")
    return SampleSize(n, total, why)


def seeded_order(samples: Sequence[Sample], seed: int) -> list[Sample]:
    """The samples with a served answer, in an order drawn with the study's seed."""
    usable = [s for s in samples if s.served is not None]
    random.Random(seed).shuffle(usable)
    return usable


def as_examples(samples: Sequence[Sample]) -> tuple[Example, ...]:
    """Samples as examples to answer: the served answer in the gold's place (agreement is scored)."""
    return tuple(Example(id=s.id, inputs=s.inputs, outputs=s.served or {}) for s in samples)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A config the stage runs: its dev trial and role, how it renders its prompt."""

    dev_id: int
    role: str
    config: Config
    demos: tuple[Example, ...] = ()
    program: dict | None = None


def entries(ctx: StudyContext, incumbent: Config, incumbent_dev: Trial, configs: dict[int, Config],
            confirmed: dict[int, Trial], dev_by_id: dict[int, Trial]) -> tuple[list[Entry], list[str]]:
    """The incumbent, the configs confirmed on test and the naive swaps, with what each needs to
    render its prompt (a compiled program from the warehouse); and notes on those left out."""
    wanted = [incumbent_dev.trial_id]
    wanted += [i for i, t in confirmed.items() if t.status == "completed"]
    wanted += [i for i, t in dev_by_id.items() if t.role == "naive_swap" and t.status == "completed" and t.split == "dev"]
    chosen, notes, seen = [], [], {}
    for dev_id in dict.fromkeys(wanted):
        config = incumbent if dev_id == incumbent_dev.trial_id else configs.get(dev_id)
        if config is None:
            notes.append(f"trial {dev_id} ({dev_by_id[dev_id].label}): a composite, not run on samples")
            continue
        if config.config_hash() in seen:  # a sampled config the same as a naive swap: its answers would be the same
            notes.append(f"trial {dev_id}: the same config as trial {seen[config.config_hash()]}")
            continue
        seen[config.config_hash()] = dev_id
        role = "incumbent" if dev_id == incumbent_dev.trial_id else dev_by_id[dev_id].role
        if config.strategy.kind.shipped_prompt:
            demos = tuple(shipped_prompt_demos(ctx.feature, ctx.train, config.settings.demos, ctx.seed))
            chosen.append(Entry(dev_id, role, config, demos=demos))
            continue
        found = records.find_program(ctx.wh, compile_key(ctx.feature.spec, config, ctx.train, ctx.seed, ctx.feature.unlabeled))
        if found is None:
            notes.append(f"trial {dev_id} ({dev_by_id[dev_id].label}): its compiled program is not in the warehouse")
            continue
        chosen.append(Entry(dev_id, role, config, program=found[1]))
    return chosen, notes


def worst_case(feature: Feature, entry: Entry, examples: Sequence[Example], prices: PriceBook) -> list[float]:
    """Each example's worst-case price for this config, as the gateway bounds a call before paying it
    (a text target: with the pairwise judge's calls against the served answer)."""
    render, _, model = prompt_runner(feature.spec, entry.config, list(entry.demos), entry.program)
    requests = build_requests(feature.spec, entry.config, render, examples, model)
    judge = feature.spec.metric.judge
    judging = 0.0
    if judge is not None and feature.spec.target.type == "text":
        answer_tokens = int(entry.config.settings.max_tokens or 4096)
        judging = judge.calls_per_example() * judge_call_worst_usd(feature.spec, judge, prices, examples, answer_tokens)
    return [prices.cost(r.model, prompt_chars(r.messages), int(r.settings.get("max_tokens") or 4096)) + judging
            for r in requests]


def _left(ctx: StudyContext) -> float | None:
    b = ctx.budget
    if b is None or b.max_usd is None:
        return None
    return b.max_usd - b.held_usd - b.spent_usd - b.reserved_usd


def run_samples_stage(ctx: StudyContext, incumbent: Config, incumbent_dev: Trial, configs: dict[int, Config],
                      confirmed: dict[int, Trial], dev_by_id: dict[int, Trial], *, log: Callable[[str], None] | None = None) -> dict | None:
    """Run the samples stage (see the module docstring); returns the stage's row (None: the feature
    has no `data.samples`). A stage already recorded for the study (a resume) is not run again."""
    feature, spec = ctx.feature, ctx.feature.spec
    if spec.data.samples is None:
        return None
    existing = sample_rows.stage(ctx.wh, ctx.study_id)
    if existing is not None:
        return existing
    logged = feature.samples
    stamps = [s.timestamp for s in logged if s.timestamp is not None]
    order = seeded_order(logged, ctx.seed)
    row = {"study_id": ctx.study_id, "status": "skipped", "n_logged": len(logged), "n_served": len(order), "n_chosen": 0,
           "max_samples": spec.data.samples.cap, "configs": 0, "worst_usd": None, "left_usd": _left(ctx),
           "reserve_fraction": RESERVE_FRACTION, "first_at": min(stamps, default=None), "last_at": max(stamps, default=None)}

    def done(reason: str, **more) -> dict:
        row.update(reason=reason, **more)
        sample_rows.store_stage(ctx.wh, row)
        if log is not None:
            log(f"production samples: {reason}")
        return row

    if ctx.budget_exhausted:
        return done("skipped: the spend cap was reached before the stage (a call was refused); raise --max-spend "
                    "(with --raise-cap) to compare with production traffic")
    not_comparable = comparable(feature)
    if not_comparable:
        return done(f"skipped: {not_comparable}")
    if not order:
        return done("skipped: no logged input has a served answer the shipped prompt's parser can read"
                    + ("" if spec.data.samples.format != "columns" or spec.data.samples.served_column else
                       " (data.samples.served_column is not given)"))
    chosen, notes = entries(ctx, incumbent, incumbent_dev, configs, confirmed, dev_by_id)
    examples = as_examples(order)
    book = PriceBook(ctx.gateway.prices, ctx.gateway.endpoints)
    per_config = [worst_case(feature, e, examples, book) for e in chosen]
    per_sample = [sum(costs) for costs in zip(*per_config)]
    size = choose_size(per_sample, spec.data.samples.cap, row["left_usd"], configs=len(chosen))
    reason = size.reason + (f". Left out: {'; '.join(notes)}" if notes else "")
    if size.n == 0:
        return done(f"skipped: {reason}", configs=len(chosen), worst_usd=0.0)
    sample = order[:size.n]
    sample_rows.start_stage(ctx.wh, ctx.study_id)
    for entry in chosen:
        trial = _answer(ctx, entry, sample)
        if trial.status != "completed" and entry.role == "incumbent":
            reason += f". The incumbent's re-run did not complete ({trial.measurement.error}): the stage stopped there"
            break
        if ctx.budget_exhausted or ctx.endpoint_down:
            reason += f". Stopped after trial {trial.trial_id}: " + ("the spend cap was reached" if ctx.budget_exhausted
                                                                     else f"an endpoint is down ({ctx.endpoint_down})")
            break
    return done(reason, status="ran", n_chosen=size.n, configs=len(chosen), worst_usd=size.worst_usd)


def _answer(ctx: StudyContext, entry: Entry, sample: Sequence[Sample]) -> Trial:
    """One config answers the sample: a trial (split 'samples'), its calls, its answers and agreement
    (a text target: the pairwise judge's score against what was served)."""
    stopping.check()  # a stop request: no new samples trial
    examples = as_examples(sample)
    judged = ctx.feature.spec.target.type == "text"
    references: dict[str, Any] | None = {s.id: s.served for s in sample} if judged else None
    run = TrialRun(ctx.allocate_trial_id(), entry.role, "samples", entry.config, examples, source_trial_id=entry.dev_id)
    start(ctx, run)  # records the trial; the demos or the program (found in the warehouse: no compile)
    outcome: Outcome = ctx.run(evaluate_examples, lambda gateway: EvalJob(
        name=f"trial {run.trial_id} {run.role} samples: {entry.config.model}", feature=ctx.feature_ref, config=entry.config,
        examples=examples, demos=tuple(run.demos), program=run.program, study_id=ctx.study_id, trial_id=run.trial_id,
        seed=ctx.seed, gateway=gateway, served=not judged, references=references,
    ), trial_id=run.trial_id)
    evaluation = outcome.value
    scores = list(evaluation.scores)
    records.store_calls(ctx.wh, evaluation.calls, outcome.spent.paid)
    records.store_judgements(ctx.wh, evaluation.judgements)
    stopping.check()  # answers cut short by a stop are stored (their calls were paid), not used: the stage resumes
    run.parts.append(evaluation)
    run.evaluated = len(examples)
    status = "stopped_by_budget" if ctx.budget_exhausted else "provider_down" if ctx.endpoint_down else None
    trial = finish(ctx, run, evaluation, status=status, stage=1.0)
    sample_rows.store_answers(ctx.wh, [{
        "study_id": ctx.study_id, "trial_id": run.trial_id, "source_trial_id": entry.dev_id, "sample_id": s.id,
        "logged_at": s.timestamp, "input_text": render_input(ctx.feature.spec, e),
        "served": json.dumps(s.served, sort_keys=True, default=str),
        "prediction": None if p is None else json.dumps(p, sort_keys=True, default=str), "agreement": float(score),
    } for s, e, p, score in zip(sample, examples, evaluation.predictions, scores)])
    return trial
