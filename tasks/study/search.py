"""The search part of a study: Optuna trials evaluated stage by stage into the warehouse.

`search_study` binds tasks.search.run_search to the warehouse: each Optuna trial becomes a
warehouse trial (role naive_swap or candidate, its optuna_number, its stages), recorded before
Optuna is told, so a crash between the two is reconciled on resume.
"""

from __future__ import annotations

import optuna
from prefect import get_run_logger

from offramp.errors import BudgetExceeded
from offramp.flows.params import MigrateParams
from offramp.search_spaces.schema import Config, SearchSpace
from offramp.tasks.feature.evaluate import Evaluation, combine
from offramp.tasks.search.ask_tell import DEFAULT_STAGES, Limits, Observation, TrialOutcome, run_search, suggest_config
from offramp.tasks.study.trials import StudyContext, TrialRun, evaluate_stage, finish
from offramp.warehouse import Warehouse, records


def search_study(
    ctx: StudyContext, params: MigrateParams, space: SearchSpace, incumbent: Config, candidate_models: list[str],
    dev: tuple, study: optuna.Study, seed: int,
) -> str | None:
    """Run the Optuna search; every trial lands in the warehouse. Returns what stopped it."""
    runs: dict[int, TrialRun] = {}
    naive = {incumbent.model_copy(update={"model": m}).config_hash() for m in candidate_models}

    def evaluate(config: Config, number: int, fraction: float) -> Observation | None:
        run = runs.get(number)
        if run is None:
            role = "naive_swap" if config.config_hash() in naive else "candidate"
            run = runs[number] = TrialRun(ctx.allocate_trial_id(), role, "dev", config, dev, optuna_number=number)
        evaluation = evaluate_stage(ctx, run, fraction)
        budget = ctx.gateway.budget
        if budget is not None and budget.exhausted:
            finish(ctx, run, evaluation, status="stopped_by_budget", stage=fraction)
            raise BudgetExceeded("spend cap reached")
        if evaluation is None or evaluation.aggregates.status != "completed":
            finish(ctx, run, evaluation, stage=fraction)
            return None
        a = evaluation.aggregates
        return Observation(
            quality=a.quality, quality_high=a.quality_ci_high, cost_per_1k_usd=a.cost_per_1k_usd,
            latency_p95_s=a.latency_p95_s, error_rate=a.error_rate, n_examples=a.n_examples,
            attrs={"offramp_study_id": ctx.study_id, "offramp_trial_id": run.trial_id, "program_hash": run.program_hash},
        )

    def on_outcome(outcome) -> None:
        run = runs.get(outcome.number)
        if run is None or outcome.state == "failed":
            return
        evaluation = combine_current(ctx, run)
        status = "pruned" if outcome.state == "pruned" else None
        finish(ctx, run, evaluation, status=status, feasible=outcome.feasible, stage=outcome.stage)

    recorded = {
        r["optuna_number"]: r for r in records.study_trials(ctx.wh, ctx.study_id)
        if r["optuna_number"] is not None and r["status"] in ("completed", "pruned")
    }

    def recover(number: int, config: Config) -> TrialOutcome | None:
        row = recorded.get(number)
        if row is None:
            return None
        observation = Observation(
            quality=row["quality"], quality_high=row["quality_ci_high"], cost_per_1k_usd=row["cost_per_1k_usd"],
            latency_p95_s=row["latency_p95_s"], error_rate=row["error_rate"], n_examples=0,
            attrs={"offramp_study_id": ctx.study_id, "offramp_trial_id": row["trial_id"], "program_hash": row["program_hash"]},
        )
        state = "complete" if row["status"] == "completed" else "pruned"
        return TrialOutcome(number, config, state, observation, bool(row["feasible"]), row["stage"])

    limits = Limits(max_error_rate=params.max_error_rate, max_latency_p95_s=params.max_latency_p95_s)
    result = run_search(
        study, space, incumbent, candidate_models, evaluate, seed=seed, max_trials=params.max_trials,
        max_wall_s=params.max_wall_s, stages=DEFAULT_STAGES if params.racing else (1.0,), limits=limits,
        parallel=params.parallel, sampler=params.sampler, on_outcome=on_outcome, recover=recover,
    )
    return result.stopped_by


def combine_current(ctx: StudyContext, run: TrialRun) -> Evaluation | None:
    """What the trial measured so far."""
    return combine(ctx.metric, run.examples[: run.evaluated], run.parts, seed=ctx.seed) if run.parts else None


def study_front(wh: Warehouse, study_id: str, study: optuna.Study) -> list[int]:
    """The front as the warehouse's view defines it; it must be Optuna's best trials too."""
    _, rows = wh.fetch("SELECT trial_id FROM v_pareto_front WHERE study_id = ? ORDER BY trial_id", [study_id])
    front = [r[0] for r in rows]
    optuna_front = sorted(t.user_attrs.get("offramp_trial_id") for t in study.best_trials)
    if front != optuna_front:
        get_run_logger().warning("front mismatch: warehouse %s vs Optuna best_trials %s", front, optuna_front)
    return front


def configs_by_trial_id(space: SearchSpace, incumbent: Config, candidate_models: list[str], study: optuna.Study) -> dict[int, Config]:
    """The config of every search trial (of this run or an earlier, interrupted one), rebuilt
    from its Optuna params."""
    out = {}
    for t in study.get_trials(deepcopy=False):
        trial_id = t.user_attrs.get("offramp_trial_id")
        if trial_id is not None and t.params:
            out[trial_id] = suggest_config(optuna.trial.FixedTrial(t.params), space, incumbent, candidate_models)
    return out
