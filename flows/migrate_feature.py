"""Flow `migrate-feature`: one study that moves a feature off a retiring model.

load feature -> fixed-seed splits -> incumbent on dev (its outputs are the behavioural snapshot)
-> naive swaps (the incumbent's prompt and settings on each candidate model) and the search
space's grid on dev -> front (quality, cost, p95 latency) -> incumbent and front configs on the
held-out test split -> selection (tasks.select) -> markdown + table artifacts.
Trials are tasks inside this one flow (a subflow per trial would cost ~1 s each).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.params import GatewayParams, MigrateParams
from search_spaces.schema import Config, Price, SearchSpace, SpaceError, load_space
from tasks import local_models
from tasks.errors import UserError
from tasks.evaluate import evaluate_config
from tasks.features import Example, Feature, Splits, load_feature, split_examples
from tasks.llm import LOCAL_PREFIX, Budget, Gateway, LLMResult
from tasks.metrics import build_metric
from tasks.pareto import Point, pareto_front
from tasks.prices import PriceBook, load_price_file
from tasks.programs import Compiled, compile_key, compile_program
from tasks.prompts import choose_demos
from tasks.select import Candidate, Selection, select_release
from warehouse import Warehouse, state_dir, warehouse_path
from warehouse import records


@dataclass(frozen=True)
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


class StudyStopped(Exception):
    """The spend cap stopped the study: it ends cleanly as `stopped_by_budget`."""


@dataclass
class StudySummary:
    study_id: str
    feature: str
    incumbent_model: str
    warehouse: str
    status: str = "completed"
    trials: list[TrialSummary] = field(default_factory=list)
    front: list[int] = field(default_factory=list)
    selection: dict | None = None


# Progress listeners (the CLI's progress bar). Called from the flow's thread and the gateway's pool.
ProgressListener = Callable[[str, dict], None]
LISTENERS: list[ProgressListener] = []


def _notify(event: str, **data: object) -> None:
    for listener in LISTENERS:
        listener(event, data)


def _run_name() -> str:
    params = flow_run.parameters.get("params") or {}
    if isinstance(params, MigrateParams):
        params = params.model_dump()
    feature_dir = str(params.get("feature_dir", "feature")).rstrip("/").split("/")[-1]
    return f"migrate {feature_dir} off {params.get('deprecated_model') or 'incumbent model'}"


def new_study_id(feature: str) -> str:
    return f"{feature}-{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def preflight(params: MigrateParams) -> tuple[Feature, SearchSpace, dict[str, Price]]:
    """Load and check everything a study needs before a single call is paid (and before Prefect
    starts, when called from the CLI): feature, metric, search space, prices of every model."""
    feature = load_feature(params.feature_dir)
    build_metric(feature)  # imports a user metric now, not mid-study
    try:
        space = load_space(params.space)
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    incumbent = feature.spec.incumbent.model
    if params.deprecated_model and params.deprecated_model != incumbent:
        raise UserError(
            f"{feature.spec_path}: field `incumbent.model` is {incumbent!r}, but the deprecated model given is "
            f"{params.deprecated_model!r}: this feature does not use it, so there is nothing to migrate"
        )
    overrides = {**(load_price_file(params.prices_file) if params.prices_file else {}), **space.prices}
    prices = PriceBook(overrides)
    zoo = local_models.zoo()
    problems = []
    for model in dict.fromkeys([incumbent, *space.models, *space.optimizer_models()]):
        try:
            if model.startswith(LOCAL_PREFIX) and model[len(LOCAL_PREFIX) :] not in zoo:
                raise UserError(f"model {model!r}: no such local model; known: {sorted('local/' + a for a in zoo)}")
            prices.check(model)
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError(" ".join(problems))
    if not [m for m in space.models if m != incumbent]:
        raise UserError(f"search space {space.name!r}: every model in it is the retiring one ({incumbent}); add candidates")
    return feature, space, overrides


@task(cache_policy=NO_CACHE)
def prepare(params: MigrateParams) -> tuple[Feature, SearchSpace, dict[str, Price]]:
    return preflight(params)


@task(cache_policy=NO_CACHE)
def ensure_local_models(models: list[str], start: bool) -> None:
    aliases = sorted({m[len(LOCAL_PREFIX) :] for m in models if m.startswith(LOCAL_PREFIX)})
    if not aliases:
        return
    running = {s.alias for s in local_models.status(state_dir()) if s.healthy}
    missing = [a for a in aliases if a not in running]
    if missing and not start:
        raise UserError(f"local model server(s) not up: {missing}. Run `offramp models up {' '.join(missing)}`.")
    if missing:
        get_run_logger().info("starting local model servers: %s", missing)
        local_models.up(missing, state_dir())


def _summary(trial_id: int, role: str, split: str, config: Config, a: records.TrialAggregates,
             source_trial_id: int | None, program_hash: str | None) -> TrialSummary:
    return TrialSummary(
        trial_id=trial_id, role=role, split=split, label=config.label(), model=config.model, status=a.status,
        quality=a.quality, ci_low=a.quality_ci_low, ci_high=a.quality_ci_high, cost_per_1k_usd=a.cost_per_1k_usd,
        latency_p95_s=a.latency_p95_s, error_rate=a.error_rate, parse_failure_rate=a.parse_failure_rate,
        source_trial_id=source_trial_id, program_hash=program_hash, error=a.error,
    )


def _program(
    wh: Warehouse, feature: Feature, config: Config, train: tuple[Example, ...], gateway: Gateway, *,
    seed: int, study_id: str, trial_id: int, key: str,
) -> tuple[Compiled | None, str | None, dict | None]:
    """(compile outcome or None if reused, program hash, program state) for a DSPy strategy:
    compiled once per compile key and reused from the warehouse afterwards, by any study."""
    found = records.find_program(wh, key)
    if found is not None:
        return None, found[0], found[1]
    compiled = compile_program(
        feature.spec, build_metric(feature), config, train, gateway, seed=seed, study_id=study_id, trial_id=trial_id
    )
    if compiled.status != "compiled":
        records.insert_calls(wh, compiled.calls)
        return compiled, None, None
    records.store_program(
        wh,
        records.ProgramRecord(
            compile_key=key, program_hash=compiled.program_hash, feature=feature.spec.name, model=config.model,
            strategy=config.strategy.name, strategy_params=json.dumps(config.strategy.model_dump(mode="json"), sort_keys=True),
            settings=json.dumps(config.settings.model_dump(mode="json"), sort_keys=True), train_size=len(train), seed=seed,
            program=json.dumps(compiled.state, sort_keys=True), study_id=study_id, trial_id=trial_id,
            compile_calls=len(compiled.calls), compile_tokens=compiled.tokens, compile_cost_usd=compiled.cost_usd,
            compile_seconds=compiled.seconds,
        ),
        compiled.calls,
    )
    return compiled, compiled.program_hash, compiled.state


@task(cache_policy=NO_CACHE, task_run_name="trial {trial_id} {role} on {split}: {config.model}")
def evaluate_trial(
    feature: Feature,
    config: Config,
    examples: tuple[Example, ...],
    train: tuple[Example, ...],
    *,
    study_id: str,
    trial_id: int,
    role: str,
    split: str,
    gateway_params: GatewayParams,
    price_overrides: dict[str, Price],
    seed: int,
    max_spend_usd: float | None = None,
    source_trial_id: int | None = None,
) -> TrialSummary:
    """Compile the config's prompt strategy if it needs it (on train), evaluate it on one split,
    and store the trial with all its calls. Stops cleanly, with the calls it paid for recorded,
    when the study's spend cap is reached."""
    wh = Warehouse(warehouse_path())
    spec = feature.spec
    budget = Budget(max_spend_usd, records.study_spend(wh, study_id)) if max_spend_usd is not None else None
    gateway = Gateway(
        wh, PriceBook(price_overrides), home=state_dir(), concurrency=gateway_params.concurrency,
        timeout_s=gateway_params.timeout_s, max_retries=gateway_params.max_retries,
        use_cache=gateway_params.use_cache, budget=budget,
    )
    key = compile_key(spec, config, train, seed) if config.strategy.name != "incumbent" else None
    records.start_trial(
        wh, study_id=study_id, trial_id=trial_id, role=role, split=split, source_trial_id=source_trial_id,
        config_hash=config.config_hash(), model=config.model, settings=config.settings.model_dump(mode="json"),
        strategy=config.strategy.name, compile_key=key,
    )
    _notify("trial_started", trial_id=trial_id, label=config.label(), role=role, split=split, total=len(examples))

    def on_result(_: int, result: LLMResult) -> None:
        _notify("call_done", trial_id=trial_id, error=result.error is not None, cache_hit=result.cache_hit)

    program_hash: str | None = None
    reused: bool | None = None
    try:
        program = None
        demos = choose_demos(spec, train, config.settings.demos, seed) if config.strategy.name == "incumbent" else []
        if key is not None:
            compiled, program_hash, program = _program(
                wh, feature, config, train, gateway, seed=seed, study_id=study_id, trial_id=trial_id, key=key
            )
            reused = compiled is None
            if compiled is not None and compiled.status != "compiled":
                a = records.failed_aggregates(len(examples), compiled.status, f"compilation: {compiled.error}")
                records.finish_trial(wh, study_id=study_id, trial_id=trial_id, aggregates=a, calls=[])
                summary = _summary(trial_id, role, split, config, a, source_trial_id, None)
                _notify("trial_finished", summary=summary)
                return summary
        evaluation = evaluate_config(
            spec, build_metric(feature), config, examples, gateway, demos=demos, program=program,
            study_id=study_id, trial_id=trial_id, seed=seed, on_result=on_result,
        )
    except BaseException as exc:
        a = records.failed_aggregates(len(examples), "failed", f"{type(exc).__name__}: {exc}")
        records.finish_trial(wh, study_id=study_id, trial_id=trial_id, aggregates=a, calls=[], program_hash=program_hash)
        raise
    a = evaluation.aggregates
    if budget is not None and budget.exhausted:
        # a partial evaluation is not a measurement of the config: keep its calls, not its numbers
        a = records.failed_aggregates(len(examples), "stopped_by_budget", f"spend cap ${max_spend_usd} reached mid-trial")
    records.finish_trial(
        wh, study_id=study_id, trial_id=trial_id, aggregates=a, calls=evaluation.calls,
        program_hash=program_hash, reused_program=reused,
    )
    summary = _summary(trial_id, role, split, config, a, source_trial_id, program_hash)
    _notify("trial_finished", summary=summary)
    return summary


def plan_dev_trials(feature: Feature, space: SearchSpace, splits: Splits, seed: int) -> list[tuple[str, Config]]:
    """(role, config) for the dev split: the incumbent, the naive swaps, then the grid (minus
    configs already planned)."""
    inc = feature.spec.incumbent
    incumbent = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings)
    plan: list[tuple[str, Config]] = [("incumbent", incumbent)]
    seen = {incumbent.config_hash()}
    for model in space.models:
        if model == inc.model:
            continue
        swap = incumbent.model_copy(update={"model": model})
        plan.append(("naive_swap", swap))
        seen.add(swap.config_hash())
    for config in space.grid(incumbent, exclude_models={inc.model}):
        if config.config_hash() not in seen:
            plan.append(("candidate", config))
            seen.add(config.config_hash())
    needed = max((max(c.settings.demos, c.strategy.k) for _, c in plan), default=0)
    if needed > len(splits.train):
        raise UserError(
            f"{feature.spec_path}: field `splits.train`: {len(splits.train)} train examples, but the plan asks "
            f"for up to {needed} demos"
        )
    if any(c.strategy.compiles for _, c in plan) and len(splits.train) < 3:
        raise UserError(f"{feature.spec_path}: field `splits.train`: compiling strategies need at least 3 train examples")
    return plan


def _table_rows(trials: list[TrialSummary], front: set[int], selected: int | None) -> list[dict]:
    rows = []
    for t in trials:
        rows.append({
            "trial": t.trial_id, "role": t.role, "split": t.split, "config": t.label,
            "quality": None if t.quality is None else round(t.quality, 4),
            "ci95": None if t.ci_low is None else f"[{t.ci_low:.3f}, {t.ci_high:.3f}]",
            "cost_per_1k_usd": None if t.cost_per_1k_usd is None else round(t.cost_per_1k_usd, 6),
            "p95_latency_s": None if t.latency_p95_s is None else round(t.latency_p95_s, 3),
            "error_rate": t.error_rate, "parse_failures": t.parse_failure_rate,
            "on_front": t.trial_id in front, "selected": t.trial_id == selected,
        })
    return rows


def _markdown(summary: StudySummary, selection: Selection, test_by_source: dict[int, TrialSummary]) -> str:
    by_id = {t.trial_id: t for t in summary.trials}
    lines = [
        f"# Migration study `{summary.study_id}`",
        f"Feature **{summary.feature}**, moving off **{summary.incumbent_model}**.",
        "",
        "Front: dev split (search). Selection: held-out test split.",
        "",
        "| trial | config | dev quality (95% CI) | test quality | $ / 1k req | p95 latency s |",
        "|---|---|---|---|---|---|",
    ]
    for trial_id in summary.front:
        t = by_id[trial_id]
        test = test_by_source.get(trial_id)
        lines.append(
            f"| {t.trial_id} | {t.label} | {t.quality:.3f} ({t.ci_low:.3f}-{t.ci_high:.3f}) | "
            f"{'' if test is None or test.quality is None else f'{test.quality:.3f}'} | {t.cost_per_1k_usd:.5f} | {t.latency_p95_s:.3f} |"
        )
    lines += ["", f"**Rule:** {selection.rule}", "", f"**Decision:** {selection.reason}", ""]
    for v in selection.verdicts:
        lines.append(f"- trial {v['trial_id']} ({v['config']}): {'accepted' if v['accepted'] else 'rejected'}: {v['why']}")
    lines += ["", f"Query it: `offramp sql \"select * from v_leaderboard where study_id = '{summary.study_id}'\"`"]
    return "\n".join(lines)


@flow(name="migrate-feature", flow_run_name=_run_name, log_prints=False)
def migrate_feature(params: MigrateParams) -> StudySummary:
    """Migrate one feature off a retiring model: evaluate the incumbent, the naive swaps and the
    search space on dev, confirm the front on the held-out test split, select, report."""
    logger = get_run_logger()
    feature, space, price_overrides = prepare(params)
    spec = feature.spec
    seed = spec.splits.seed if params.seed is None else params.seed
    splits = split_examples(feature, max_examples=params.max_examples, seed=seed)
    plan = plan_dev_trials(feature, space, splits, seed)
    ensure_local_models([c.model for _, c in plan] + space.optimizer_models(), params.start_local_models)

    wh = Warehouse(warehouse_path())
    study_id = new_study_id(spec.name)
    records.upsert_feature(
        wh, name=spec.name, description=spec.description, spec_path=str(feature.spec_path),
        spec_hash=spec.spec_hash(), spec=spec.model_dump(mode="json"),
    )
    records.start_study(
        wh, study_id=study_id, feature=spec.name, deprecated_model=params.deprecated_model or spec.incumbent.model,
        incumbent_model=spec.incumbent.model, trigger=params.trigger, space_name=space.name,
        space=space.model_dump(mode="json"), params=params.model_dump(mode="json"), seed=seed,
        max_spend_usd=params.max_spend_usd,
    )
    summary = StudySummary(study_id=study_id, feature=spec.name, incumbent_model=spec.incumbent.model, warehouse=str(wh.path))
    logger.info("study %s: %d dev trials, dev=%d test=%d examples", study_id, len(plan), len(splits.dev), len(splits.test))
    _notify("study_started", study_id=study_id, trials=len(plan), dev=len(splits.dev), test=len(splits.test))
    common = dict(
        study_id=study_id, gateway_params=params.gateway, price_overrides=price_overrides, seed=seed,
        max_spend_usd=params.max_spend_usd,
    )
    try:
        configs: dict[int, Config] = {}
        for trial_id, (role, config) in enumerate(plan):
            configs[trial_id] = config
            trial = evaluate_trial(feature, config, splits.dev, splits.train, trial_id=trial_id, role=role, split="dev", **common)
            summary.trials.append(trial)
            if trial.status == "stopped_by_budget":
                raise StudyStopped(trial.error or "spend cap reached")
        dev_candidates = [t for t in summary.trials if t.role != "incumbent" and t.status == "completed"]
        front = pareto_front([Point(t.trial_id, t.quality, t.cost_per_1k_usd, t.latency_p95_s) for t in dev_candidates])
        summary.front = [p.key for p in front]

        next_id = len(plan)
        incumbent_test = evaluate_trial(
            feature, configs[0], splits.test, splits.train,
            trial_id=next_id, role="incumbent", split="test", source_trial_id=0, **common,
        )
        summary.trials.append(incumbent_test)
        test_by_source: dict[int, TrialSummary] = {}
        for offset, dev_trial_id in enumerate(summary.front, start=1):
            config = configs[dev_trial_id]
            role = next(t.role for t in summary.trials if t.trial_id == dev_trial_id)
            test_trial = evaluate_trial(
                feature, config, splits.test, splits.train,
                trial_id=next_id + offset, role=role, split="test", source_trial_id=dev_trial_id, **common,
            )
            summary.trials.append(test_trial)
            if test_trial.status == "stopped_by_budget":
                raise StudyStopped(test_trial.error or "spend cap reached")
            test_by_source[dev_trial_id] = test_trial

        by_id = {t.trial_id: t for t in summary.trials}
        candidates = [
            Candidate(
                trial_id=dev_id, label=by_id[dev_id].label, test_quality=t.quality,
                cost_per_1k_usd=by_id[dev_id].cost_per_1k_usd, latency_p95_s=by_id[dev_id].latency_p95_s,
            )
            for dev_id, t in test_by_source.items()
            if t.status == "completed"
        ]
        if incumbent_test.status != "completed":
            raise RuntimeError(f"the incumbent could not be evaluated on the test split: {incumbent_test}")
        selection = select_release(incumbent_test.quality, candidates)
        summary.selection = selection.to_dict()
        records.finish_study(
            wh, study_id, status="completed", selected_trial_id=selection.trial_id, selection=selection.to_dict()
        )
        summary.status = "completed"
    except StudyStopped as exc:
        logger.warning("study %s stopped by its spend cap: %s", study_id, exc)
        records.finish_study(wh, study_id, status="stopped_by_budget", error=str(exc)[:2000])
        summary.status = "stopped_by_budget"
        _notify("study_finished", summary=summary)
        return summary
    except BaseException as exc:
        records.finish_study(wh, study_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise

    front_set = set(summary.front)
    create_table_artifact(
        key="migration-front",
        table=_table_rows([t for t in summary.trials if t.split == "dev"], front_set, selection.trial_id),
        description=f"Study {study_id}: every dev trial; on_front marks the Pareto front",
    )
    create_markdown_artifact(
        key="migration-report", markdown=_markdown(summary, selection, test_by_source),
        description=f"Study {study_id}: front and selection",
    )
    _notify("study_finished", summary=summary)
    return summary
