"""The search part of a study: Optuna trials evaluated stage by stage into the warehouse.

`search_study` binds tasks.search.run_search to the warehouse: each Optuna trial becomes a
warehouse trial (role naive_swap or candidate, its optuna_number, its stages), recorded before
Optuna is told, so a crash between the two is reconciled on resume.
"""

from __future__ import annotations

import dataclasses

import optuna
from prefect import get_run_logger

from offramp.errors import BudgetExceeded, EndpointDown
from offramp.search_spaces.optuna_space import config_from_params
from offramp.search_spaces.schema import Config, SearchSpace
from offramp.tasks.gateway.prices import PriceBook
from offramp.tasks.search.ask_tell import DEFAULT_STAGES, Limits, SamplerName, TrialOutcome, run_search
from offramp.tasks.search.pareto import Point, pareto_front
from offramp.tasks.study.trials import StudyContext, TrialRun, finish, run_stage
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import TrialMeasurement


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How a study searches (from the flow's parameters)."""

    max_trials: int
    max_wall_s: float | None = None
    racing: bool = True
    parallel: int = 1
    sampler: SamplerName = "tpe"
    limits: Limits = Limits()


def search_study(
    ctx: StudyContext, settings: SearchSettings, space: SearchSpace, incumbent: Config, candidate_models: list[str],
    dev: tuple, study: optuna.Study, incumbent_dev: TrialMeasurement | None = None,
) -> str | None:
    """Run the Optuna search; every trial lands in the warehouse. Returns what stopped it.
    `incumbent_dev` (what the incumbent measured on dev) gives the request shape that prices the
    naive swaps, cheapest first (`naive_swap_costs`)."""
    runs: dict[int, TrialRun] = {}
    naive = {incumbent.model_copy(update={"model": m}).config_hash() for m in candidate_models}

    def evaluate(config: Config, number: int, fraction: float) -> TrialMeasurement | None:
        run = runs.get(number)
        if run is None:
            role = "naive_swap" if config.config_hash() in naive else "candidate"
            run = runs[number] = TrialRun(ctx.allocate_trial_id(), role, "dev", config, dev, optuna_number=number)
        evaluation = run_stage(ctx, run, fraction)
        if ctx.budget_exhausted:
            finish(ctx, run, evaluation, status="stopped_by_budget", stage=fraction)
            raise BudgetExceeded("spend cap reached")
        if ctx.endpoint_down:
            finish(ctx, run, evaluation, status="provider_down", stage=fraction)
            raise EndpointDown(ctx.endpoint_down)
        if evaluation is None or evaluation.measurement.status != "completed":
            finish(ctx, run, evaluation, stage=fraction)
            return None
        return evaluation.measurement

    def attrs(number: int) -> dict:
        run = runs[number]
        return {"offramp_study_id": ctx.study_id, "offramp_trial_id": run.trial_id, "role": run.role, "program_hash": run.program_hash}

    def on_outcome(outcome: TrialOutcome) -> None:
        run = runs.get(outcome.number)
        if run is None or outcome.state == "failed":
            return
        status = "pruned" if outcome.state == "pruned" else None
        finish(ctx, run, run.measured, status=status, feasible=outcome.feasible, stage=outcome.stage)

    # An earlier run's search trials (a resume); they are in the file: this run has written no
    # search trial yet, so this need not wait for what it keeps while a reader holds the file.
    recorded = {
        r["optuna_number"]: r for r in records.study_trials(ctx.wh, ctx.study_id, own_writes=False)
        if r["optuna_number"] is not None and r["status"] in ("completed", "pruned")
    }

    def recover(number: int, config: Config) -> TrialOutcome | None:
        row = recorded.get(number)
        if row is None:
            return None
        state = "complete" if row["status"] == "completed" else "pruned"
        return TrialOutcome(
            number, config, state, TrialMeasurement.from_row(row), bool(row["feasible"]), row["stage"],
            attrs={"offramp_study_id": ctx.study_id, "offramp_trial_id": row["trial_id"], "role": row["role"],
                   "program_hash": row["program_hash"]},
        )

    result = run_search(
        study, space, incumbent, candidate_models, evaluate, seed=ctx.seed, max_trials=settings.max_trials,
        max_wall_s=settings.max_wall_s, stages=DEFAULT_STAGES if settings.racing else (1.0,), limits=settings.limits,
        parallel=settings.parallel, sampler=settings.sampler, on_outcome=on_outcome, recover=recover, trial_attrs=attrs,
        naive_cost=naive_swap_costs(ctx, candidate_models, incumbent_dev),
    )
    return result.stopped_by


def naive_swap_costs(ctx: StudyContext, models: list[str], incumbent_dev: TrialMeasurement | None) -> dict[str, float | None]:
    """USD of one naive-swap request on each model, priced as the study prices calls, for a request
    of the incumbent's mean measured size on dev (None: no price known; such models go last)."""
    n = incumbent_dev.n_examples if incumbent_dev is not None else 0
    prompt = round(incumbent_dev.prompt_tokens / n) if n else 1000
    completion = round(incumbent_dev.completion_tokens / n) if n else 100
    book = PriceBook(ctx.gateway.prices, ctx.gateway.endpoints)
    costs: dict[str, float | None] = {}
    for model in models:
        try:
            costs[model] = book.cost(model, prompt, completion)
        except Exception:  # noqa: BLE001 - litellm raises its own types for a model it cannot price; order it last
            costs[model] = None
    return costs


def study_front(wh: Warehouse, study_id: str, study: optuna.Study) -> list[int]:
    """The front as the warehouse's view defines it; it must be the front of Optuna's trials too
    (its feasible complete trials, latencies within noise tied as in `pareto_front`: Optuna's own
    `best_trials` compares raw latencies, so it keeps configs that are faster only by noise)."""
    _, rows = wh.fetch("SELECT trial_id FROM v_pareto_front WHERE study_id = ? ORDER BY trial_id", [study_id])
    front = [r[0] for r in rows]
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.values and t.user_attrs.get("feasible", True) and t.user_attrs.get("offramp_trial_id") is not None]
    points = [Point(t.user_attrs["offramp_trial_id"], *t.values, float(t.user_attrs.get("latency_noise", 0.0))) for t in done]
    optuna_front = sorted(p.key for p in pareto_front(points))
    if front != optuna_front:
        get_run_logger().warning("front mismatch: warehouse %s vs Optuna's trials %s", front, optuna_front)
    return front


def configs_by_trial_id(space: SearchSpace, incumbent: Config, candidate_models: list[str], study: optuna.Study) -> dict[int, Config]:
    """The config of every search trial (of this run or an earlier, interrupted one), rebuilt
    from its Optuna params."""
    out = {}
    for t in study.get_trials(deepcopy=False):
        trial_id = t.user_attrs.get("offramp_trial_id")  # a failed trial carries it too (for the dashboard): not a config
        if trial_id is not None and t.params and t.state != optuna.trial.TrialState.FAIL:
            out[trial_id] = config_from_params(t.params, space, incumbent, candidate_models)
    return out
