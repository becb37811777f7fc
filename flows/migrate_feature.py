"""Flow `migrate-feature`: one study that moves a feature off a retiring model.

load feature -> fixed-seed splits -> incumbent on dev (its outputs are the behavioural snapshot)
-> multi-objective search with Optuna (naive swaps first, then sampled configs; trials raced on
growing slices of dev; budgets: trials, wall time, USD) -> front (quality, cost, p95 latency;
feasible trials only) -> incumbent and front configs on the held-out test split -> selection
(tasks.select) -> markdown + table artifacts.

A study is resumable: its id is derived from its parameters, so running the same command again
after a crash continues it (completed trials kept, paid calls served from the cache).
Trials are tasks inside this one flow (a subflow per trial would cost ~1 s each).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from offramp.errors import BudgetExceeded, UserError
from offramp.flows.params import MigrateParams
from offramp.search_spaces.schema import Config, Price, SearchSpace, SpaceError, load_space
from offramp.tasks.evidence.judge import judge_front
from offramp.tasks.evidence.report import front_table, load_report, markdown, write_html
from offramp.tasks.feature.metrics import build_metric
from offramp.tasks.feature.spec import Feature, load_feature, load_spec, split_examples
from offramp.tasks.gateway import local_models
from offramp.tasks.gateway.llm import LOCAL_PREFIX, Budget, Gateway
from offramp.tasks.gateway.plugins import load_plugins
from offramp.tasks.gateway.prices import PriceBook, load_price_file
from offramp.tasks.search.ask_tell import DIRECTIONS
from offramp.tasks.study.search import configs_by_trial_id, search_study, study_front
from offramp.tasks.study.trials import LISTENERS, StudyContext, TrialRun, TrialSummary, evaluate_full, notify
from offramp.warehouse import Warehouse, records, state_dir, warehouse_path

__all__ = ["LISTENERS", "StudySummary", "migrate_feature", "preflight"]


@dataclass
class StudySummary:
    study_id: str
    feature: str
    incumbent_model: str
    warehouse: str
    status: str = "completed"
    stopped_by: str | None = None
    resumed: bool = False
    trials: list[TrialSummary] = field(default_factory=list)
    front: list[int] = field(default_factory=list)
    selection: dict | None = None
    report_path: str | None = None


def _run_name() -> str:
    """`migrate <feature> off <model>`: what the UI's run list should say."""
    params = flow_run.parameters.get("params") or {}
    if isinstance(params, MigrateParams):
        params = params.model_dump()
    feature_dir = str(params.get("feature_dir", "feature"))
    name, model = feature_dir.rstrip("/").split("/")[-1], params.get("deprecated_model")
    try:
        spec = load_spec(Path(feature_dir).expanduser().resolve() / "feature.yaml")
        name, model = spec.name, model or spec.incumbent.model
    except UserError:
        pass  # the run fails in preflight with the full message; the name stays a hint
    return f"migrate {name} off {model or 'its incumbent model'}"


def optuna_storage_url(params: MigrateParams) -> str:
    return params.optuna_storage or f"sqlite:///{state_dir() / 'optuna.db'}"


def study_key(params: MigrateParams, feature: Feature, space: SearchSpace, seed: int) -> str:
    """What makes two runs the same study (so a rerun resumes it): feature, space, budgets,
    search settings and seed; not how calls are made (concurrency) or who triggered it."""
    payload = params.model_dump(mode="json", exclude={"trigger", "event_id", "gateway", "start_local_models", "new_study", "feature_dir", "space"})
    payload.update(spec=feature.spec.spec_hash(), space=space.model_dump(mode="json"), seed=seed)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def preflight(params: MigrateParams) -> tuple[Feature, SearchSpace, dict[str, Price]]:
    """Load and check everything a study needs before a single call is paid (and before Prefect
    starts, when called from the CLI): feature, metric, search space, prices of every model."""
    load_plugins()
    feature = load_feature(params.feature_dir)
    build_metric(feature)  # imports a user metric now, not mid-study
    space = _load_space(params, feature)
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
    space = _with_replacement(space, params.replacement_model, incumbent, prices, zoo)
    if not [m for m in space.models if m != incumbent]:
        raise UserError(f"search space {space.name!r}: every model in it is the retiring one ({incumbent}); add candidates")
    _open_storage(optuna_storage_url(params))
    return feature, space, overrides


def _load_space(params: MigrateParams, feature: Feature) -> SearchSpace:
    """The space asked for, else the feature's own `search_space` (relative to its feature.yaml),
    else the bundled local zoo."""
    ref = params.space
    if ref is None and feature.spec.search_space:
        relative = feature.spec_path.parent / feature.spec.search_space
        ref = str(relative) if relative.exists() else feature.spec.search_space
    try:
        return load_space(ref or "local-zoo")
    except SpaceError as exc:
        raise UserError(str(exc)) from None


def _with_replacement(space: SearchSpace, replacement: str | None, incumbent: str, prices: PriceBook, zoo) -> SearchSpace:
    """The provider's suggested successor joins the candidates when offramp can call and price it;
    otherwise the study goes on without it (a triggered run should not die on a vendor's hint)."""
    if not replacement or replacement in space.models or replacement == incumbent:
        return space
    try:
        if replacement.startswith(LOCAL_PREFIX) and replacement[len(LOCAL_PREFIX) :] not in zoo:
            raise UserError(f"no such local model {replacement!r}")
        prices.check(replacement)
    except UserError as exc:
        logging.getLogger("offramp").warning("replacement model %s left out of the search: %s", replacement, exc)
        return space
    return space.model_copy(update={"models": [*space.models, replacement]})


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


def _open_storage(url: str) -> optuna.storages.BaseStorage:
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the user's URL
        raise UserError(f"Optuna storage {url.split('@')[-1]!r} cannot be opened: {exc}; expected sqlite:///path or postgresql://...") from None


def _choose_study_id(wh: Warehouse, base: str, new_study: bool) -> tuple[str, bool]:
    """(study id, resumed): the latest study with this key if it did not complete, else a new one."""
    n = 1
    while True:
        candidate = base if n == 1 else f"{base}-{n}"
        found = records.find_study(wh, candidate)
        if found is None:
            return candidate, False
        if found[0] in ("running", "failed") and not new_study:
            return candidate, True
        n += 1


def _summary_from_row(row: dict, config: Config) -> TrialSummary:
    return TrialSummary(
        trial_id=row["trial_id"], role=row["role"], split=row["split"], label=config.label(), model=config.model,
        status=row["status"], quality=row["quality"], ci_low=row["quality_ci_low"], ci_high=row["quality_ci_high"],
        cost_per_1k_usd=row["cost_per_1k_usd"], latency_p95_s=row["latency_p95_s"], error_rate=row["error_rate"],
        parse_failure_rate=row["parse_failure_rate"], source_trial_id=row["source_trial_id"],
        program_hash=row["program_hash"], error=row["error"], optuna_number=row["optuna_number"], stage=row["stage"],
    )


@flow(name="migrate-feature", flow_run_name=_run_name, log_prints=False)
def migrate_feature(params: MigrateParams) -> StudySummary:
    """Migrate one feature off a retiring model: the incumbent as baseline, a multi-objective
    search on dev, the front confirmed on the held-out test split, a selection, a report."""
    logger = get_run_logger()
    feature, space, price_overrides = prepare(params)
    spec = feature.spec
    seed = spec.splits.seed if params.seed is None else params.seed
    splits = split_examples(feature, max_examples=params.max_examples, seed=seed)
    inc = spec.incumbent
    incumbent = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings)
    candidate_models = [m for m in space.models if m != inc.model]
    _check_train_size(feature, space, incumbent, len(splits.train))
    storage_url = optuna_storage_url(params)
    storage = _open_storage(storage_url)
    ensure_local_models([inc.model, *candidate_models, *space.optimizer_models()], params.start_local_models)

    wh = Warehouse(warehouse_path())
    study_id, resumed = _choose_study_id(wh, f"{spec.name}-{study_key(params, feature, space, seed)}", params.new_study)
    records.upsert_feature(
        wh, name=spec.name, description=spec.description, spec_path=str(feature.spec_path),
        spec_hash=spec.spec_hash(), spec=spec.model_dump(mode="json"),
    )
    if resumed:
        records.resume_study(wh, study_id)
        logger.info("resuming study %s", study_id)
    else:
        records.start_study(
            wh, study_id=study_id, feature=spec.name, deprecated_model=params.deprecated_model or inc.model,
            incumbent_model=inc.model, trigger=params.trigger, space_name=space.name,
            space=space.model_dump(mode="json"), params=params.model_dump(mode="json"), seed=seed,
            max_spend_usd=params.max_spend_usd, optuna_storage=storage_url.split("@")[-1],
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_id, directions=DIRECTIONS, load_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["quality", "cost_per_1k_usd", "latency_p95_s"])
    study.set_user_attr("offramp_study_id", study_id)
    study.set_user_attr("warehouse", str(wh.path))

    budget = Budget(params.max_spend_usd, records.study_spend(wh, study_id)) if params.max_spend_usd else None
    g = params.gateway
    gateway = Gateway(
        wh, PriceBook(price_overrides), home=state_dir(), concurrency=g.concurrency, timeout_s=g.timeout_s,
        max_retries=g.max_retries, use_cache=g.use_cache, budget=budget,
    )
    previous = records.study_trials(wh, study_id)
    ctx = StudyContext(
        wh=wh, feature=feature, metric=build_metric(feature), train=splits.train, seed=seed, study_id=study_id,
        gateway=gateway, next_trial_id=max((r["trial_id"] for r in previous), default=-1) + 1,
    )
    summary = StudySummary(study_id=study_id, feature=spec.name, incumbent_model=inc.model, warehouse=str(wh.path), resumed=resumed)
    notify("study_started", study_id=study_id, trials=params.max_trials, dev=len(splits.dev), test=len(splits.test))
    done = {(r["role"], r["split"], r["source_trial_id"], r["optuna_number"]): r for r in previous if r["status"] == "completed"}

    def baseline(role: str, split: str, config: Config, examples, source: int | None) -> TrialSummary:
        row = done.get((role, split, source, None))
        if row is not None:  # a resumed study keeps what it measured
            return _summary_from_row(row, config)
        run = TrialRun(ctx.allocate_trial_id(), role, split, config, examples, source_trial_id=source)
        result = evaluate_full(ctx, run)
        if result.status == "stopped_by_budget":
            raise BudgetExceeded(result.error or "spend cap reached")
        return result

    try:
        incumbent_dev = baseline("incumbent", "dev", incumbent, splits.dev, None)
        summary.trials.append(incumbent_dev)
        if incumbent_dev.status != "completed":
            raise RuntimeError(f"the incumbent could not be evaluated on dev: {incumbent_dev.error}")
        result = search_study(ctx, params, space, incumbent, candidate_models, splits.dev, study, seed)
        summary.stopped_by = result
        if result == "budget":
            raise BudgetExceeded("spend cap reached during the search")
        summary.front = study_front(wh, study_id, study)
        configs = configs_by_trial_id(space, incumbent, candidate_models, study)
        summary.trials = [incumbent_dev] + [
            _summary_from_row(row, configs[row["trial_id"]])
            for row in records.study_trials(wh, study_id)
            if row["split"] == "dev" and row["trial_id"] in configs
        ]
        incumbent_test = baseline("incumbent", "test", incumbent, splits.test, incumbent_dev.trial_id)
        summary.trials.append(incumbent_test)
        test_by_source: dict[int, TrialSummary] = {}
        by_id = {t.trial_id: t for t in summary.trials}
        for dev_id in summary.front:
            role = by_id[dev_id].role
            test_by_source[dev_id] = baseline(role, "test", configs[dev_id], splits.test, dev_id)
            summary.trials.append(test_by_source[dev_id])
        if incumbent_test.status != "completed":
            raise RuntimeError(f"the incumbent could not be evaluated on the test split: {incumbent_test.error}")
        selection, _ = judge_front(
            wh, study_id, feature, splits.test, incumbent_test, test_by_source, by_id, params.policy, seed
        )
        summary.selection = selection.to_dict()
        records.finish_study(wh, study_id, status="completed", selected_trial_id=selection.trial_id,
                             selection=selection.to_dict(), stopped_by=summary.stopped_by)
    except BudgetExceeded as exc:
        logger.warning("study %s stopped by its spend cap: %s", study_id, exc)
        records.finish_study(wh, study_id, status="stopped_by_budget", error=str(exc)[:2000], stopped_by="budget")
        summary.status, summary.stopped_by = "stopped_by_budget", "budget"
        notify("study_finished", summary=summary)
        return summary
    except BaseException as exc:
        records.finish_study(wh, study_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise

    _publish(summary, wh)
    notify("study_finished", summary=summary)
    return summary


def _check_train_size(feature: Feature, space: SearchSpace, incumbent: Config, n_train: int) -> None:
    needed = max([incumbent.settings.demos, *[k for o in space.strategies.values() for k in o.k]], default=0)
    if needed > n_train:
        raise UserError(
            f"{feature.spec_path}: field `splits.train`: {n_train} train examples, but the search asks for up to {needed} demos"
        )
    compiles = any(name in ("few_shot", "mipro", "gepa") for name in space.strategies)
    if compiles and n_train < 3:
        raise UserError(f"{feature.spec_path}: field `splits.train`: compiling strategies need at least 3 train examples")


def _publish(summary: StudySummary, wh: Warehouse) -> None:
    """The report, from the warehouse's views: markdown + table artifacts on the flow run, and a
    standalone HTML file under the state dir."""
    report = load_report(wh, summary.study_id)
    summary.report_path = str(write_html(report, state_dir() / "reports" / f"{summary.study_id}.html"))
    create_table_artifact(
        key="migration-front", table=front_table(report),
        description=f"Study {summary.study_id}: every dev trial; on_front marks the Pareto front",
    )
    create_markdown_artifact(
        key="migration-report", markdown=markdown(report) + f"\n\nHTML report: `{summary.report_path}`",
        description=f"Study {summary.study_id}: front, paired comparisons with the incumbent, selection",
    )
