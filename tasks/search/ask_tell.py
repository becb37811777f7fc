"""Multi-objective search over a space with Optuna: ask -> evaluate in growing stages -> tell.

Objectives: maximise quality, minimise cost per 1k requests, minimise p95 latency. The naive
swaps are enqueued first, cheapest first (`naive_order`: by the priced cost of one naive-swap
request, then by model id), never in the order a file lists the models: with a trial budget
smaller than the model list, which swaps run must not depend on how the YAML was written. The
models are Optuna's `model` choices in that same order, so the whole search is independent of
the listing. Hard limits (error rate, p95 latency, and quality above the trivial answer's:
`tasks.feature.trivial`) are Optuna constraints, so an infeasible config never reaches
`study.best_trials` nor the front.

Racing (early stopping of hopeless trials): a trial is evaluated on growing fractions of dev
(e.g. 20% -> 50% -> 100%; cached answers are reused between stages, so a completed trial costs
the same as an unstaged one). After each partial stage, if even its optimistic point (the upper end of
its quality interval, the lower end of its p95's interval, its observed cost: fixed prices make
cost nearly exact) would be dominated by a trial already on the front, or the top of its quality
interval does not beat the trivial answer (`Limits.trivial_quality`), it stops: told to Optuna
as PRUNED, recorded with the calls it spent. Optuna has no pruner for multi-objective studies (optuna#3450); this is ours.

Determinism: the sampler is re-seeded before every ask from (seed, number of finished trials),
so a study resumed after a crash asks for the same configs an uninterrupted run would have.
"""

from __future__ import annotations

import contextvars
import dataclasses
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import optuna

from offramp.errors import BudgetExceeded, EndpointDown
from offramp.search_spaces.optuna_space import all_params, config_from_params, naive_swap_params, suggest_config
from offramp.search_spaces.schema import Config, SearchSpace
from offramp.tasks.search.pareto import Point, dominates, pareto_front
from offramp.warehouse.records import TrialMeasurement

DIRECTIONS = ["maximize", "minimize", "minimize"]
DEFAULT_STAGES = (0.2, 0.5, 1.0)
SamplerName = Literal["tpe", "nsga2", "random"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Hard limits: a config beyond them is infeasible (never on the front). `trivial_quality`: the
    dev quality of the feature's trivial answer (`tasks.feature.trivial`); a config whose dev quality
    interval does not exceed it (its upper end <= the floor) is no better than answering every input
    the same way: infeasible."""

    max_error_rate: float = 0.2
    max_latency_p95_s: float | None = None
    trivial_quality: float | None = None

    def violations(self, o: TrialMeasurement) -> dict[str, float]:
        """Optuna constraint values (`trial.set_constraint`): <= 0 is feasible."""
        values = {"error_rate": o.error_rate - self.max_error_rate}
        if self.max_latency_p95_s is not None:
            values["latency_p95_s"] = o.latency_p95_s - self.max_latency_p95_s
        if self.trivial_quality is not None:
            gap = self.trivial_quality - optimistic_quality(o)
            values["trivial_quality"] = gap if gap < 0 else max(gap, 1e-9)  # equal to the floor: no better, infeasible
        return values

    def no_better_than_trivial(self, o: TrialMeasurement) -> bool:
        """Even at the top of its quality interval, it does not beat the trivial answer."""
        return self.trivial_quality is not None and optimistic_quality(o) <= self.trivial_quality


def optimistic_quality(o: TrialMeasurement) -> float:
    """The upper end of a measurement's quality interval (its quality when it has none)."""
    high = o.quality if o.quality_ci_high is None else max(o.quality_ci_high, o.quality or 0.0)
    return high or 0.0


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    number: int
    config: Config
    state: Literal["complete", "pruned", "failed", "stopped"]
    measurement: TrialMeasurement | None  # of the last stage evaluated
    feasible: bool
    stage: float  # the last fraction of dev evaluated
    attrs: dict = dataclasses.field(default_factory=dict)  # Optuna user attributes (links to the warehouse)


# evaluate(config, trial number, fraction of dev) -> what the trial measured so far, or None if
# it could not be measured (failed; a spend cap reached raises BudgetExceeded instead).
Evaluate = Callable[[Config, int, float], TrialMeasurement | None]


def make_sampler(name: SamplerName, seed: int) -> optuna.samplers.BaseSampler:
    """TPE reads constraints set with `trial.set_constraint`; NSGA-II is offered for comparison."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna")
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, constant_liar=True, multivariate=True, group=True)


def feasible_front(outcomes: Sequence[TrialOutcome]) -> list[TrialOutcome]:
    done = [o for o in outcomes if o.state == "complete" and o.feasible and o.measurement is not None]
    points = [_point(o.number, o.measurement) for o in done]
    keep = {p.key for p in pareto_front(points)}
    return [o for o in done if o.number in keep]


def latency_noise(m: TrialMeasurement) -> float:
    """Half-width of the p95's 95% interval (0 when it has none: compared as measured)."""
    if m.latency_p95_ci_low is None or m.latency_p95_ci_high is None:
        return 0.0
    return max(0.0, (m.latency_p95_ci_high - m.latency_p95_ci_low) / 2)


def _point(key: int, m: TrialMeasurement) -> Point:
    return Point(key, m.quality, m.cost_per_1k_usd, m.latency_p95_s, latency_noise(m))


def hopeless(measurement: TrialMeasurement, front: Sequence[TrialOutcome]) -> bool:
    """Even at its optimistic point (top of its quality interval, bottom of its p95 interval, at
    its observed cost), a front member dominates it."""
    m = measurement
    fastest = m.latency_p95_s if m.latency_p95_ci_low is None else min(m.latency_p95_s, m.latency_p95_ci_low)
    optimistic = Point(-1, m.quality if m.quality_ci_high is None else m.quality_ci_high, m.cost_per_1k_usd, fastest)
    return any(dominates(_point(o.number, o.measurement), optimistic) for o in front if o.measurement is not None)


def naive_order(models: Sequence[str], naive_cost: Mapping[str, float | None] | None = None) -> list[str]:
    """The candidate models, cheapest naive swap first (unpriced last), ties by model id: an order
    a file cannot change. Cheapest first because the default policy prefers the cheapest accepted
    config: a cheap swap that holds quality is the decision, and a dear one is only the fallback
    the search measures next."""
    cost = naive_cost or {}
    return sorted(dict.fromkeys(models), key=lambda m: (cost.get(m) is None, cost.get(m) or 0.0, m))


@dataclasses.dataclass
class SearchResult:
    outcomes: list[TrialOutcome]
    stopped_by: str | None  # None | "max_trials" | "max_wall_s" | "budget" | "provider_down" | "space_exhausted"


def run_search(
    study: optuna.Study,
    space: SearchSpace,
    incumbent: Config,
    candidate_models: Sequence[str],
    evaluate: Evaluate,
    *,
    seed: int,
    max_trials: int,
    max_wall_s: float | None = None,
    stages: Sequence[float] = DEFAULT_STAGES,
    limits: Limits = Limits(),
    parallel: int = 1,
    sampler: SamplerName = "tpe",
    on_outcome: Callable[[TrialOutcome], None] | None = None,
    recover: Callable[[int, Config], TrialOutcome | None] | None = None,
    trial_attrs: Callable[[int], dict] | None = None,
    naive_cost: Mapping[str, float | None] | None = None,
) -> SearchResult:
    """Ask/tell until a budget ends. Already finished trials of `study` (a resumed study) count
    toward `max_trials` and the front. `on_outcome` (the record) runs before Optuna is told, so
    after a crash between the two, `recover(number, config)` returns the recorded outcome of a
    trial Optuna still thinks is RUNNING; trials with no record are failed and asked again.
    `trial_attrs(number)` gives the Optuna user attributes of a measured trial (links to the record).
    `naive_cost` (model -> USD of one naive-swap request) orders the models: `naive_order`."""
    started = time.monotonic()
    candidate_models = _recorded_order(study, naive_order(candidate_models, naive_cost))
    stages = sorted(set(stages) | {1.0})
    outcomes: list[TrialOutcome] = []
    _recover(study, space, incumbent, candidate_models, limits, recover)
    for model in candidate_models:
        params = naive_swap_params(incumbent, model)
        if not any(t.params == params for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial(params, skip_if_exists=True)
    prior = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.user_attrs.get("evaluated")]
    for frozen in prior:
        outcomes.append(_outcome_from_frozen(frozen, space, incumbent, candidate_models))

    def one(trial: optuna.Trial, config: Config) -> TrialOutcome:
        measurement: TrialMeasurement | None = None
        stage = 0.0
        for stage in stages:
            measurement = evaluate(config, trial.number, stage)
            if measurement is None:
                return TrialOutcome(trial.number, config, "failed", None, False, stage)
            if stage < 1.0 and (hopeless(measurement, feasible_front(outcomes)) or limits.no_better_than_trivial(measurement)):
                return TrialOutcome(trial.number, config, "pruned", measurement, False, stage)
        assert measurement is not None
        feasible = all(v <= 0 for v in limits.violations(measurement).values())
        return TrialOutcome(trial.number, config, "complete", measurement, feasible, stage)

    points = _Points(space, incumbent, candidate_models)
    stopped_by = None
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        while True:
            finished = _finished(study)
            if finished >= max_trials:
                stopped_by = "max_trials"
                break
            if max_wall_s is not None and time.monotonic() - started > max_wall_s:
                stopped_by = "max_wall_s"
                break
            batch = []
            for offset in range(min(parallel, max_trials - finished)):
                asked = _ask_new(study, space, incumbent, candidate_models, sampler, seed * 1_000_003 + finished + offset,
                                 {o.config.config_hash() for o in outcomes if o.config is not None} | {c.config_hash() for _, c in batch},
                                 points)
                if asked is None:
                    break
                batch.append(asked)
            if not batch:
                stopped_by = "space_exhausted"
                break
            # each thread runs in a copy of this context (the caller's run context, e.g. Prefect's);
            # sampling stays in this thread: Optuna caches the trial list per thread
            futures = [(trial, pool.submit(contextvars.copy_context().run, one, trial, config)) for trial, config in batch]
            stop = None
            for trial, future in futures:
                try:
                    outcome = future.result()
                except (BudgetExceeded, EndpointDown) as exc:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    stop = stop or ("budget" if isinstance(exc, BudgetExceeded) else "provider_down")
                    continue
                if trial_attrs is not None:
                    outcome = dataclasses.replace(outcome, attrs=trial_attrs(outcome.number))
                if on_outcome:
                    on_outcome(outcome)
                _tell(study, trial, outcome, limits, stages)
                outcomes.append(outcome)
            if stop:
                stopped_by = stop
                break
    return SearchResult(outcomes=outcomes, stopped_by=stopped_by)


def _recorded_order(study: optuna.Study, models: list[str]) -> list[str]:
    """The models in the order a resumed study's trials recorded them as Optuna's choices (Optuna
    refuses a categorical whose choices changed order), else `models`: a study begun before the
    models were ordered by `naive_order` resumes as it began."""
    for t in study.get_trials(deepcopy=False):
        dist = t.distributions.get("model")
        if dist is not None and set(dist.choices) == set(models):
            return list(dist.choices)
    return models


DUPLICATE_ASKS = 3


class _Points:
    """Every point of the space as (Optuna params, config hash), enumerated once per search on
    first need (enumerating it for every fallback cost 40% of a 700-point search's time)."""

    def __init__(self, space: SearchSpace, incumbent: Config, models: Sequence[str]) -> None:
        self.args, self._points = (space, incumbent, models), None

    def untried(self, seen: set[str]) -> list[dict]:
        if self._points is None:
            space, incumbent, models = self.args
            self._points = [(p, config_from_params(p, space, incumbent, models).config_hash())
                            for p in all_params(space, incumbent, models)]
        return [p for p, h in self._points if h not in seen]


def _ask_new(
    study: optuna.Study, space: SearchSpace, incumbent: Config, models: Sequence[str], sampler: SamplerName,
    seed: int, seen: set[str], points: _Points,
) -> tuple[optuna.Trial, Config] | None:
    """Ask for a config not measured yet. A repeat is told PRUNED, not FAIL (nothing failed: it is
    marked `duplicate`, says which config it repeats, is not counted and never on the front; its
    answers would all come from the cache anyway); after DUPLICATE_ASKS
    repeats an untried config is enqueued, chosen at random (seeded). None: the space is exhausted."""
    for attempt in range(DUPLICATE_ASKS + 1):
        study.sampler = make_sampler(sampler, seed + 7919 * attempt)
        if attempt == DUPLICATE_ASKS:
            untried = points.untried(seen)
            if not untried:
                return None
            study.enqueue_trial(untried[random.Random(seed).randrange(len(untried))])
        trial = study.ask()
        config = suggest_config(trial, space, incumbent, models)
        if config.config_hash() not in seen:
            trial.set_user_attr("config", config.label())
            return trial, config
        trial.set_user_attr("duplicate", True)
        trial.set_user_attr("config", config.label())
        trial.set_user_attr("offramp", f"skipped: repeats {config.label()} (already measured)")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return None


def readable(outcome: TrialOutcome, stages: Sequence[float] | None = None) -> str:
    """One line for optuna-dashboard's user attributes: offramp's trial id, its role and how far
    the racing got, e.g. `trial 5 (candidate): pruned at stage 1/3 (20% of dev)`."""
    attrs = outcome.attrs
    head = f"trial {attrs['offramp_trial_id']}" if attrs.get("offramp_trial_id") is not None else "trial"
    head += f" ({attrs['role']})" if attrs.get("role") else ""
    at = f"{outcome.stage:.0%} of dev"
    if stages and outcome.stage in stages:
        at = f"stage {list(stages).index(outcome.stage) + 1}/{len(stages)} ({at})"
    what = {"complete": "measured on" if outcome.feasible else "infeasible (a hard limit) on", "pruned": "pruned at",
            "failed": "failed at", "stopped": "stopped at"}[outcome.state]
    return f"{head}: {what} {at}"


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome, limits: Limits,
          stages: Sequence[float] | None = None) -> None:
    o = outcome.measurement
    trial.set_user_attr("evaluated", True)  # a FAIL without it was interrupted, not measured
    for key, value in outcome.attrs.items():  # links to the warehouse: offramp_trial_id, role, ...
        trial.set_user_attr(key, value)
    trial.set_user_attr("stage", outcome.stage)
    trial.set_user_attr("offramp", readable(outcome, stages))
    if outcome.state == "failed" or o is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    trial.set_user_attr("feasible", outcome.feasible)
    trial.set_user_attr("latency_noise", latency_noise(o))
    for key, value in limits.violations(o).items():
        trial.set_constraint(key, value)
    if outcome.state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    study.tell(trial, [o.quality, o.cost_per_1k_usd, o.latency_p95_s])


def _finished(study: optuna.Study) -> int:
    """Trials that were measured (complete, pruned, or failed when evaluated); a trial a crash
    interrupted does not count, so a resumed study runs as many trials, with the same seeds."""
    states = optuna.trial.TrialState
    return sum(
        1 for t in study.get_trials(deepcopy=False)
        if (t.state in (states.COMPLETE, states.PRUNED) and not t.user_attrs.get("duplicate"))
        or (t.state == states.FAIL and t.user_attrs.get("evaluated"))
    )


def _recover(study, space, incumbent, candidate_models, limits, recover) -> None:
    """Trials a crash left RUNNING: told their recorded outcome if they have one, else failed
    and their params enqueued again (the cache makes the calls they had paid free)."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        config = _config_of(t, space, incumbent, candidate_models)
        outcome = recover(t.number, config) if recover is not None and config is not None else None
        if outcome is not None:
            _tell(study, optuna.Trial(study, t._trial_id), outcome, limits)
            continue
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        retry = t.system_attrs.get("fixed_params") or t.params  # an enqueued trial (a naive swap) keeps all its params
        if retry:
            study.enqueue_trial(retry, skip_if_exists=False)


def _config_of(t: optuna.trial.FrozenTrial, space, incumbent, models) -> Config | None:
    """The trial's config; None when it has none yet (a crash can land while its parameters
    are being suggested, leaving only some of them)."""
    if not t.params:
        return None
    try:
        return config_from_params(t.params, space, incumbent, models)
    except ValueError:
        return None


def _outcome_from_frozen(t: optuna.trial.FrozenTrial, space, incumbent, models) -> TrialOutcome:
    config = _config_of(t, space, incumbent, models)
    if t.state == optuna.trial.TrialState.COMPLETE and t.values:
        q, c, l = t.values
        noise = float(t.user_attrs.get("latency_noise", 0.0))
        measurement = TrialMeasurement(quality=q, quality_ci_low=q, quality_ci_high=q, cost_per_1k_usd=c, latency_p95_s=l,
                                       latency_p95_ci_low=l - noise, latency_p95_ci_high=l + noise, error_rate=0.0)
        return TrialOutcome(t.number, config, "complete", measurement, bool(t.user_attrs.get("feasible", True)), t.user_attrs.get("stage", 1.0))
    state = "pruned" if t.state == optuna.trial.TrialState.PRUNED else "failed"
    return TrialOutcome(t.number, config, state, None, False, t.user_attrs.get("stage", 0.0))
