"""Running one trial of a study: compile its program if needed, evaluate it stage by stage,
and keep the warehouse up to date after every stage (so a crash loses at most one stage).

Used by the migrate-feature flow for the incumbent baseline, the search's trials (raced in
stages) and the held-out test evaluations. A stage is a Prefect task, named after its trial.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading

from prefect import task
from prefect.cache_policies import NO_CACHE

from offramp.search_spaces.schema import Config
from offramp.tasks.feature.evaluate import Evaluation, combine, evaluate_config
from offramp.tasks.feature.metrics import Metric
from offramp.tasks.feature.programs import Compiled, compile_key, compile_program
from offramp.tasks.feature.prompts import choose_demos
from offramp.tasks.feature.spec import Example, Feature
from offramp.tasks.gateway.llm import Gateway, LLMResult
from offramp.warehouse import Warehouse, records

# Progress listeners (the CLI's progress bars). Called from the flow's threads and the gateway's pool.
LISTENERS: list = []


def notify(event: str, **data: object) -> None:
    for listener in LISTENERS:
        listener(event, data)


@dataclasses.dataclass(frozen=True)
class TrialSummary:
    trial_id: int
    role: str
    split: str
    label: str
    model: str
    status: str
    quality: float | None
    ci_low: float | None
    ci_high: float | None
    cost_per_1k_usd: float | None
    latency_p95_s: float | None
    error_rate: float | None
    parse_failure_rate: float | None
    source_trial_id: int | None = None
    program_hash: str | None = None
    error: str | None = None
    optuna_number: int | None = None
    stage: float | None = None


@dataclasses.dataclass
class StudyContext:
    """What every trial of one study shares (live objects: never a task's cache key)."""

    wh: Warehouse
    feature: Feature
    metric: Metric
    train: tuple[Example, ...]
    seed: int
    study_id: str
    gateway: Gateway
    next_trial_id: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def allocate_trial_id(self) -> int:
        with self.lock:
            trial_id = self.next_trial_id
            self.next_trial_id += 1
            return trial_id


@dataclasses.dataclass
class TrialRun:
    """A trial in progress: the examples evaluated so far and their results."""

    trial_id: int
    role: str
    split: str
    config: Config
    examples: tuple[Example, ...]
    source_trial_id: int | None = None
    optuna_number: int | None = None
    program: dict | None = None
    program_hash: str | None = None
    reused_program: bool | None = None
    demos: list[Example] = dataclasses.field(default_factory=list)
    parts: list[Evaluation] = dataclasses.field(default_factory=list)
    evaluated: int = 0
    started: bool = False
    compile_failure: Compiled | None = None


def start(ctx: StudyContext, run: TrialRun) -> None:
    """Record the trial and prepare its prompt: the shipped demos, or a DSPy program compiled on
    train (once per compile key; reused from the warehouse afterwards)."""
    spec = ctx.feature.spec
    key = compile_key(spec, run.config, ctx.train, ctx.seed) if run.config.strategy.name != "incumbent" else None
    records.start_trial(
        ctx.wh, study_id=ctx.study_id, trial_id=run.trial_id, role=run.role, split=run.split,
        source_trial_id=run.source_trial_id, config_hash=run.config.config_hash(), model=run.config.model,
        settings=run.config.settings.model_dump(mode="json"), strategy=run.config.strategy.name, compile_key=key,
        optuna_number=run.optuna_number,
    )
    run.started = True
    notify("trial_started", trial_id=run.trial_id, label=run.config.label(), role=run.role, split=run.split, total=len(run.examples))
    if key is None:
        run.demos = choose_demos(spec, ctx.train, run.config.settings.demos, ctx.seed)
        return
    found = records.find_program(ctx.wh, key)
    if found is not None:
        run.program_hash, run.program, run.reused_program = found[0], found[1], True
        return
    compiled = compile_program(
        spec, ctx.metric, run.config, ctx.train, ctx.gateway, seed=ctx.seed, study_id=ctx.study_id, trial_id=run.trial_id
    )
    if compiled.status != "compiled":
        records.insert_calls(ctx.wh, compiled.calls)
        run.compile_failure = compiled
        return
    records.store_program(
        ctx.wh,
        records.ProgramRecord(
            compile_key=key, program_hash=compiled.program_hash, feature=spec.name, model=run.config.model,
            strategy=run.config.strategy.name,
            strategy_params=json.dumps(run.config.strategy.model_dump(mode="json"), sort_keys=True),
            settings=json.dumps(run.config.settings.model_dump(mode="json"), sort_keys=True),
            train_size=len(ctx.train), seed=ctx.seed, program=json.dumps(compiled.state, sort_keys=True),
            study_id=ctx.study_id, trial_id=run.trial_id, compile_calls=len(compiled.calls),
            compile_tokens=compiled.tokens, compile_cost_usd=compiled.cost_usd, compile_seconds=compiled.seconds,
        ),
        compiled.calls,
    )
    run.program_hash, run.program, run.reused_program = compiled.program_hash, compiled.state, False


@task(cache_policy=NO_CACHE, task_run_name="trial {run.trial_id} {run.role} {run.split} to {fraction:.0%}: {run.config.model}")
def evaluate_stage(ctx: StudyContext, run: TrialRun, fraction: float) -> Evaluation | None:
    """Evaluate the trial's next examples up to `fraction` of its split; store their calls now.
    None when the trial cannot be evaluated (its compilation failed or hit the spend cap)."""
    if not run.started:
        start(ctx, run)
    if run.compile_failure is not None:
        return None
    upto = min(len(run.examples), max(1, math.ceil(fraction * len(run.examples))))
    new = run.examples[run.evaluated:upto]
    if new:
        def on_result(_: int, result: LLMResult) -> None:
            notify("call_done", trial_id=run.trial_id, error=result.error is not None, cache_hit=result.cache_hit)

        part = evaluate_config(
            ctx.feature.spec, ctx.metric, run.config, new, ctx.gateway, demos=run.demos, program=run.program,
            study_id=ctx.study_id, trial_id=run.trial_id, seed=ctx.seed, on_result=on_result,
        )
        records.insert_calls(ctx.wh, part.calls)
        run.parts.append(part)
        run.evaluated = upto
    return combine(ctx.metric, run.examples[: run.evaluated], run.parts, seed=ctx.seed)


def finish(
    ctx: StudyContext, run: TrialRun, evaluation: Evaluation | None, *, status: str | None = None,
    feasible: bool | None = None, stage: float | None = None,
) -> TrialSummary:
    """Close the trial in the warehouse with its aggregates (its calls are already stored)."""
    if run.compile_failure is not None:
        failure = run.compile_failure
        a = records.failed_aggregates(len(run.examples), failure.status, f"compilation: {failure.error}")
    elif evaluation is None:
        a = records.failed_aggregates(len(run.examples), status or "failed", "not evaluated")
    else:
        a = evaluation.aggregates
        if status is not None and status != a.status:
            a = dataclasses.replace(a, status=status) if status == "pruned" else records.failed_aggregates(
                len(run.examples), status, f"{status} after {run.evaluated} of {len(run.examples)} examples"
            )
    records.finish_trial(
        ctx.wh, study_id=ctx.study_id, trial_id=run.trial_id, aggregates=a, calls=[],
        program_hash=run.program_hash, reused_program=run.reused_program, feasible=feasible, stage=stage,
    )
    summary = TrialSummary(
        trial_id=run.trial_id, role=run.role, split=run.split, label=run.config.label(), model=run.config.model,
        status=a.status, quality=a.quality, ci_low=a.quality_ci_low, ci_high=a.quality_ci_high,
        cost_per_1k_usd=a.cost_per_1k_usd, latency_p95_s=a.latency_p95_s, error_rate=a.error_rate,
        parse_failure_rate=a.parse_failure_rate, source_trial_id=run.source_trial_id, program_hash=run.program_hash,
        error=a.error, optuna_number=run.optuna_number, stage=stage,
    )
    notify("trial_finished", summary=summary)
    return summary


def evaluate_full(ctx: StudyContext, run: TrialRun) -> TrialSummary:
    """A trial evaluated on its whole split in one stage (the baseline, the test confirmations)."""
    evaluation = evaluate_stage(ctx, run, 1.0)
    stopped = ctx.gateway.budget is not None and ctx.gateway.budget.exhausted
    return finish(ctx, run, evaluation, status="stopped_by_budget" if stopped else None, stage=1.0)
