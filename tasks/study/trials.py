"""The trials of a study, stage by stage.

Two Prefect tasks do the work, and they take and return values only, so any task runner (a
thread pool, a Dask cluster of processes) can run them:
- `compile_strategy`: a DSPy program of a config's prompt strategy, compiled on the train split;
- `evaluate_examples`: a config answering examples, scored.
Each builds its own gateway from a `GatewayConfig` and spends at most the share of the study's
spend cap the flow granted it. What they return (calls, programs, paid answers) is stored by the
flow process, the warehouse's one writer: `StudyContext` and `TrialRun` live there and keep the
bookkeeping (a trial recorded when it starts, its calls after every stage, its measurement when
it ends, so a crash loses at most one stage).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from offramp import stopping
from offramp.search_spaces.schema import Config
from offramp.tasks.feature.evaluate import Evaluation, combine, evaluate_config
from offramp.tasks.feature.judge import SELF, incumbent_references
from offramp.tasks.feature.metrics import Metric, build_metric
from offramp.tasks.feature.programs import Compiled, compile_key, compile_program
from offramp.tasks.feature.prompts import shipped_prompt_demos
from offramp.tasks.feature.samples import agreement_metric
from offramp.tasks.feature.spec import Example, Feature
from offramp.tasks.gateway import journal
from offramp.tasks.gateway.llm import Budget, Gateway, GatewayConfig, LLMResult
from offramp.tasks.gateway.plugins import load_plugins
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import CacheEntry, Trial, TrialMeasurement

R = TypeVar("R")

# Progress listeners (the CLI's progress bars), in the flow's process. Called from the flow's
# threads, and from a task's gateway threads when the task runs in this process.
LISTENERS: list = []


def notify(event: str, **data: object) -> None:
    for listener in LISTENERS:
        listener(event, data)


# ------------------------------------------------------------------------------------ the tasks
@dataclasses.dataclass(frozen=True)
class Spent:
    """What a task's gateway spent and paid for."""

    usd: float
    refused: bool  # its allowance refused a call: the study's cap is reached
    paid: tuple[CacheEntry, ...]  # paid answers the task did not write (the flow stores them)
    down: tuple[str, ...] = ()  # endpoints whose circuit breaker was open when the task ended, with why
    journal: str | None = None  # its write-ahead journal, complete (the flow ingests it)

    @classmethod
    def of(cls, gateway: Gateway) -> Spent:
        budget, journal = gateway.budget, gateway.journal
        if journal is not None:
            journal.close()
        return cls(usd=budget.spent_usd if budget else 0.0, refused=bool(budget and budget.exhausted), paid=tuple(gateway.paid),
                   down=tuple(gateway.breaker.down().values()),
                   journal=str(journal.path) if journal is not None and journal.path.exists() else None)


@dataclasses.dataclass(frozen=True)
class TrialJob:
    """What every task of a trial gets: values only."""

    name: str  # the task run's name
    feature: Feature  # without its examples (they stay in the flow)
    config: Config
    study_id: str
    trial_id: int
    seed: int
    gateway: GatewayConfig  # with this task's grant of the spend cap


@dataclasses.dataclass(frozen=True)
class EvalJob(TrialJob):
    """One stage of a trial: `config` answers `examples` (the shipped prompt with `demos`, or the
    DSPy `program`)."""

    examples: tuple[Example, ...] = ()
    demos: tuple[Example, ...] = ()
    program: dict | None = None
    purpose: str = "eval"  # `composite`: a composite's member answering on its behalf (not the trial's own answer)
    served: bool = False  # production samples: score agreement with the served answer (tasks/feature/samples.py)
    references: Any = None  # a pairwise judge's reference answers (`judge_references`)


@dataclasses.dataclass(frozen=True)
class Outcome(Generic[R]):
    """What a task returns: its result, and what its gateway spent."""

    value: R
    spent: Spent


def _gateway(job: TrialJob) -> Gateway:
    load_plugins()  # a fresh process (a Dask worker) registers the user's providers too
    return job.gateway.open()


@task(cache_policy=NO_CACHE, task_run_name="{job.name}")
def evaluate_examples(job: EvalJob) -> Outcome[Evaluation]:
    """Run a config on examples through a gateway of its own; score every answer."""
    gateway = _gateway(job)

    def on_result(_: int, result: LLMResult) -> None:
        notify("call_done", trial_id=job.trial_id, error=result.error is not None, cache_hit=result.cache_hit)

    metric = agreement_metric(job.feature) if job.served else build_metric(job.feature)
    evaluation = evaluate_config(
        job.feature.spec, metric, job.config, job.examples, gateway, demos=list(job.demos),
        program=job.program, study_id=job.study_id, trial_id=job.trial_id, seed=job.seed, on_result=on_result,
        purpose=job.purpose, references=job.references,
    )
    return Outcome(evaluation, Spent.of(gateway))


@dataclasses.dataclass(frozen=True)
class CompileJob(TrialJob):
    """Compile `config`'s prompt strategy on the train split."""

    train: tuple[Example, ...] = ()


@task(cache_policy=NO_CACHE, task_run_name="{job.name}")
def compile_strategy(job: CompileJob) -> Outcome[Compiled]:
    """A DSPy program of the config's strategy, compiled on train through a gateway of its own."""
    gateway = _gateway(job)
    compiled = compile_program(
        job.feature.spec, build_metric(job.feature), job.config, job.train, gateway, seed=job.seed,
        study_id=job.study_id, trial_id=job.trial_id, unlabeled=job.feature.unlabeled,
    )
    if compiled.cut:
        get_run_logger().warning("%s: %s", job.name, compiled.cut)
    return Outcome(compiled, Spent.of(gateway))


# ------------------------------------------------------------------------ the flow's bookkeeping
@dataclasses.dataclass
class StudyContext:
    """What the trials of one study share, in the flow process (never sent to a task)."""

    wh: Warehouse
    feature: Feature
    metric: Metric
    train: tuple[Example, ...]
    seed: int
    study_id: str
    gateway: GatewayConfig  # each task's gateway: this, with its grant of the cap
    budget: Budget | None = None  # the study's spend cap (what was spent before a resume included)
    share: float = 1.0  # of what is left of the cap, the part one task may be granted (1 / trials at once)
    next_trial_id: int = 0
    endpoint_down: str | None = None  # an endpoint a task found down (its breaker open): the study stops
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    references: dict[str, dict] = dataclasses.field(default_factory=dict)  # split -> the incumbent's answers (pairwise judge)

    def __post_init__(self) -> None:
        self.feature_ref = self.feature.model_copy(update={"examples": (), "samples": ()})  # what tasks get: no data rows

    def allocate_trial_id(self) -> int:
        with self.lock:
            trial_id = self.next_trial_id
            self.next_trial_id += 1
            return trial_id

    def judge_references(self, split: str, role: str) -> Any:
        """What a pairwise judge compares a trial's answers with: the incumbent's answers on the same
        split (SELF for the incumbent itself); None without a pairwise judge."""
        judge = self.metric.judge
        if judge is None or judge.mode != "pairwise":
            return None
        if role == "incumbent":
            return SELF
        if split not in self.references:
            found = incumbent_references(self.wh, self.study_id, split)
            if found is None:
                raise RuntimeError(f"a pairwise judge needs the incumbent's answers on {split} first; it has no trial there")
            self.references[split] = found
        return self.references[split]

    @property
    def budget_exhausted(self) -> bool:
        return self.budget is not None and self.budget.exhausted

    def run(self, task_fn: Any, make_job: Callable[[GatewayConfig], Any], *, trial_id: int | None, purpose: str = "eval",
            capped: bool = True) -> Any:
        """Run a task with a grant of the spend cap (`capped=False`: no limit, only counted), on the
        flow's task runner; settle what it spent and ingest its journal (the ledger, the paid answers)."""
        grant = self.budget.grant(self.share) if self.budget is not None and capped else None
        outcome = None
        update = {"allowance_usd": grant, "study_id": self.study_id, "trial_id": trial_id, "purpose": purpose}
        try:
            outcome = task_fn.submit(make_job(self.gateway.model_copy(update=update))).result()
        finally:
            if self.budget is not None:
                self.budget.settle(grant or 0.0, outcome.spent.usd if outcome is not None else 0.0)
        if outcome.spent.journal is not None:
            journal.ingest_file(self.wh, Path(outcome.spent.journal), remove=True)
        if outcome.spent.refused:
            self.budget.exhausted = True
        if outcome.spent.down:
            self.endpoint_down = outcome.spent.down[0]
        return outcome


@dataclasses.dataclass
class TrialRun:
    """A trial in progress, in the flow process: the examples evaluated so far and their results."""

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
    measured: Evaluation | None = None  # all its stages so far, combined (None: nothing evaluated yet)
    evaluated: int = 0
    started: bool = False
    compile_failure: Compiled | None = None
    loads: list[float] = dataclasses.field(default_factory=list)  # 1-minute load averages seen around its stages

    def stage_name(self, fraction: float) -> str:
        return f"trial {self.trial_id} {self.role} {self.split} to {fraction:.0%}: {self.config.model}"


def start(ctx: StudyContext, run: TrialRun) -> None:
    """Record the trial and prepare its prompt: the shipped demos, or a DSPy program compiled on
    train (once per compile key; reused from the warehouse afterwards)."""
    spec = ctx.feature.spec
    key = (compile_key(spec, run.config, ctx.train, ctx.seed, ctx.feature.unlabeled)
           if not run.config.strategy.kind.shipped_prompt else None)
    records.start_trial(
        ctx.wh, study_id=ctx.study_id, trial_id=run.trial_id, role=run.role, split=run.split,
        source_trial_id=run.source_trial_id, config_hash=run.config.config_hash(), model=run.config.model,
        settings=run.config.settings.model_dump(mode="json"), strategy=run.config.strategy.name, compile_key=key,
        optuna_number=run.optuna_number,
    )
    run.started = True
    notify("trial_started", trial_id=run.trial_id, label=run.config.label(), role=run.role, split=run.split, total=len(run.examples))
    if key is None:
        run.demos = shipped_prompt_demos(ctx.feature, ctx.train, run.config.settings.demos, ctx.seed)
        return
    found = records.find_program(ctx.wh, key)
    if found is not None:
        run.program_hash, run.program, run.reused_program = found[0], found[1], True
        return
    outcome: Outcome[Compiled] = ctx.run(compile_strategy, lambda gateway: CompileJob(
        name=f"compile trial {run.trial_id}: {run.config.strategy.label()} on {run.config.model}", feature=ctx.feature_ref,
        config=run.config, train=ctx.train, seed=ctx.seed, study_id=ctx.study_id, trial_id=run.trial_id, gateway=gateway,
    ), trial_id=run.trial_id, purpose="tune" if run.config.strategy.kind.own_model else "optimize")
    compiled = outcome.value
    if compiled.status != "compiled" or stopping.requested():
        records.store_calls(ctx.wh, compiled.calls, outcome.spent.paid)
        stopping.check()  # a compile cut short by a stop is no program (DSPy swallows the refused calls)
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
            compile_cut=compiled.cut,
        ),
        compiled.calls, outcome.spent.paid,
    )
    run.program_hash, run.program, run.reused_program = compiled.program_hash, compiled.state, False


def run_stage(ctx: StudyContext, run: TrialRun, fraction: float) -> Evaluation | None:
    """Evaluate the trial's next examples up to `fraction` of its split (the `evaluate_examples`
    task) and store their calls now. None when the trial cannot be evaluated (its compilation
    failed or hit the spend cap)."""
    stopping.check()  # a stop request: no new stage
    if not run.started:
        start(ctx, run)
    if run.compile_failure is not None:
        return None
    upto = min(len(run.examples), max(1, math.ceil(fraction * len(run.examples))))
    new = run.examples[run.evaluated:upto]
    if new:
        run.loads.append(load_average())
        outcome: Outcome[Evaluation] = ctx.run(evaluate_examples, lambda gateway: EvalJob(
            name=run.stage_name(fraction), feature=ctx.feature_ref, config=run.config, examples=new, demos=tuple(run.demos),
            program=run.program, study_id=ctx.study_id, trial_id=run.trial_id, seed=ctx.seed, gateway=gateway,
            references=ctx.judge_references(run.split, run.role),
        ), trial_id=run.trial_id, capped=run.role != "incumbent")
        records.store_calls(ctx.wh, outcome.value.calls, outcome.spent.paid)
        records.store_judgements(ctx.wh, outcome.value.judgements)
        stopping.check()  # a stage cut short by a stop is not a measurement: its calls are stored, that is all
        run.parts.append(outcome.value)
        run.evaluated = upto
        run.loads.append(load_average())
        run.measured = combine(ctx.metric, run.examples[:upto], run.parts, seed=ctx.seed)
        if run.measured is not None and run.loads:
            run.measured = dataclasses.replace(run.measured, measurement=dataclasses.replace(
                run.measured.measurement, load_avg_min=min(run.loads), load_avg_max=max(run.loads)))
    return run.measured


def load_average() -> float:
    """The machine's 1-minute load average now (0.0 where the OS has none): recorded around
    every stage, so the report can say how loaded the machine was while latencies were measured
    (a self-hosted model shares the machine's cores; its latency scales with their other work)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def finish(
    ctx: StudyContext, run: TrialRun, evaluation: Evaluation | None, *, status: str | None = None,
    feasible: bool | None = None, stage: float | None = None,
) -> Trial:
    """Close the trial in the warehouse with its measurement (its calls are already stored)."""
    n = len(run.examples)
    if run.compile_failure is not None:
        m = TrialMeasurement.failed(n, run.compile_failure.status, f"compilation: {run.compile_failure.error}")
    elif evaluation is None:
        m = TrialMeasurement.failed(n, status or "failed", "not evaluated")
    else:
        m = evaluation.measurement
        if status is not None and status != m.status:
            why = f": {ctx.endpoint_down}" if status == "provider_down" and ctx.endpoint_down else ""
            refused = sum(1 for part in run.parts for c in part.calls if (c.error or "").startswith("BudgetExceeded"))
            by_cap = f" ({refused} refused by the spend cap)" if refused else ""
            m = dataclasses.replace(m, status=status) if status == "pruned" else TrialMeasurement.failed(
                n, status, f"{status} after {run.evaluated - refused} of {n} examples{by_cap}{why}"
            )
    records.finish_trial(
        ctx.wh, study_id=ctx.study_id, trial_id=run.trial_id, measurement=m, calls=[],
        program_hash=run.program_hash, reused_program=run.reused_program, feasible=feasible, stage=stage,
    )
    if m.status not in ("completed", "pruned"):
        records.charge_unfinished_trials(ctx.wh, ctx.study_id)  # what its calls cost, not 0
    trial = Trial(
        trial_id=run.trial_id, role=run.role, split=run.split, label=run.config.label(), model=run.config.model,
        measurement=m, source_trial_id=run.source_trial_id, program_hash=run.program_hash,
        optuna_number=run.optuna_number, stage=stage,
    )
    notify("trial_finished", trial=trial)
    return trial


def evaluate_full(ctx: StudyContext, run: TrialRun) -> Trial:
    """A trial evaluated on its whole split in one stage (the baseline, the test confirmations)."""
    evaluation = run_stage(ctx, run, 1.0)
    status = "stopped_by_budget" if ctx.budget_exhausted else "provider_down" if ctx.endpoint_down else None
    return finish(ctx, run, evaluation, status=status, stage=1.0)
