"""Flow `migrate-feature`: one study that moves a feature off a retiring model.

prepare (feature, space, prices, storage; the local models it needs) -> fixed-seed splits ->
the incumbent on dev (its outputs are the behavioural snapshot) -> multi-objective search with
Optuna (naive swaps first, cheapest first, then sampled configs; trials raced on growing slices of
dev; budgets: trials, wall time, USD) -> front (quality, cost, p95 latency within noise tied; feasible
trials only, none no better than the trivial answer) -> incumbent, the front configs that can still win
and every naive swap on the held-out test split (tasks.evidence.confirm) -> paired comparisons and the selection -> report.

This module composes; the work is in `offramp.tasks`. Trials are tasks inside this one flow
(`evaluate_examples`, `compile_strategy`: values in, values out, so the flow's task runner may be
threads or processes); this process alone writes the warehouse. A study is resumable: its id is
derived from its parameters, so the same command after a crash continues it.
"""

from __future__ import annotations

import dataclasses
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from prefect import flow, get_run_logger
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run
from prefect.states import Cancelled, State
from prefect.task_runners import ThreadPoolTaskRunner

from offramp import stopping
from offramp.errors import BudgetExceeded, EndpointDown, UserError
from offramp.flows.outcome import final_state
from offramp.flows.params import MigrateParams
from offramp.search_spaces.schema import Config
from offramp.tasks.evidence.discovered import discover_front, discover_samples
from offramp.tasks.evidence.judge import confirm_front, label_report
from offramp.tasks.evidence.power import record_power, study_power
from offramp.tasks.evidence.render import publish
from offramp.tasks.evidence.report import failed_trials
from offramp.tasks.feature.metrics import build_metric
from offramp.tasks.feature.spec import load_spec
from offramp.tasks.feature.trivial import trivial_baseline
from offramp.tasks.gateway import journal, model_leases
from offramp.tasks.gateway.llm import Budget, GatewayConfig
from offramp.tasks.gateway.prices import PriceBook
from offramp.tasks.search.ask_tell import DIRECTIONS, Limits
from offramp.tasks.study.calibrate import calibrate_judge
from offramp.tasks.study.composite_trials import build_composites, confirm_composite, confirmable
from offramp.tasks.study.money import Needs, cap_spent_notice, check_cap, estimate_needs, resolve_cap
from offramp.tasks.study.prepare import (
    Prepared,
    StudyInputs,
    choose_study_id,
    ensure_local_models,
    open_storage,
    preflight,
    prepare,
)
from offramp.tasks.study.probe import check_endpoints
from offramp.tasks.study.samples import run_samples_stage
from offramp.tasks.study.search import SearchSettings, configs_by_trial_id, search_study, study_front
from offramp.tasks.study.trials import LISTENERS, StudyContext, TrialRun, evaluate_full, notify
from offramp.util import content_hash, safe_url
from offramp.warehouse import Warehouse, records, state_dir, warehouse_path
from offramp.warehouse.records import Trial

__all__ = ["LISTENERS", "StudySummary", "check_spend_cap", "migrate_feature", "preflight", "study_inputs"]


@dataclass
class StudySummary:
    study_id: str
    feature: str
    incumbent_model: str
    warehouse: str
    status: str = "completed"
    stopped_by: str | None = None
    resumed: bool = False
    trials: list[Trial] = field(default_factory=list)
    front: list[int] = field(default_factory=list)
    selection: dict | None = None
    report_path: str | None = None
    error: str | None = None  # why a study that did not complete stopped (provider_down, all_trials_failed)
    notice: str | None = None  # one line the user must read (e.g. the cap is spent and how to raise it)


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


def study_inputs(params: MigrateParams) -> StudyInputs:
    return StudyInputs(
        feature_dir=params.feature_dir, deprecated_model=params.deprecated_model, space=params.space,
        replacement_model=params.replacement_model, prices_file=params.prices_file, storage_url=params.optuna_storage,
        max_examples=params.max_examples, seed=params.seed, policy=params.policy, policy_file=params.policy_file,
    )


def study_key(params: MigrateParams, prepared: Prepared) -> str:
    """What makes two runs the same study (so a rerun resumes it): feature, space, search
    budgets and settings, seed; not how calls are made (concurrency), who triggered it, nor the
    spend cap (the cap belongs to the study across its runs: see tasks/study/money.py)."""
    payload = params.model_dump(mode="json", exclude={
        "trigger", "event_id", "gateway", "start_local_models", "new_study", "feature_dir", "space", "max_spend_usd", "raise_cap",
    })
    space = prepared.space.model_dump(mode="json")
    if not space.get("endpoints"):
        space.pop("endpoints", None)  # a space without declared models keys its studies as before endpoints existed
    if space.get("composites", True):
        space.pop("composites", None)  # the default keys its studies as before composites existed
    if not space["settings"].get("adapter"):
        space["settings"].pop("adapter", None)  # likewise a space that lists no output adapter
    payload.update(spec=prepared.feature.spec.spec_hash(), space=space, seed=prepared.seed)
    return content_hash(payload, length=10, compact=False)


def _in_process_runner() -> bool:
    """Whether this flow's tasks run in its own process (threads): then they may write the
    response cache themselves, as soon as an answer is paid; otherwise they hand it back."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context is None or isinstance(context.task_runner, ThreadPoolTaskRunner)


@flow(name="migrate-feature", flow_run_name=_run_name, log_prints=False)
def migrate_feature(params: MigrateParams) -> StudySummary:
    """Migrate one feature off a retiring model: the incumbent as baseline, a multi-objective
    search on dev, the front confirmed on the held-out test split, a selection, a report. The run
    ends COMPLETED, its state named and worded by the decision (`flows/outcome.py`); stopped on
    request (`offramp.stopping`), it ends CANCELLED (the caller gets CancelledRun). However it ends,
    the local model servers it started (and no other study uses) are stopped."""
    holder = f"{flow_run.id or 'run'}-{uuid.uuid4().hex[:8]}"
    try:
        outcome = _migrate(params, holder)
    finally:
        try:
            stopped = model_leases.release(state_dir(), holder)
        except Exception as exc:  # noqa: BLE001 - never hides how the study ended; `offramp models down` stops them
            get_run_logger().warning("could not stop the local model servers this run started: %s", exc)
        else:
            if stopped:
                get_run_logger().info("stopped the local model servers this run started: %s", ", ".join(stopped))
    return outcome if isinstance(outcome, State) else final_state(outcome)


def _migrate(params: MigrateParams, holder: str) -> StudySummary | State:
    logger = get_run_logger()
    inputs = study_inputs(params)
    prepared = prepare(inputs)
    feature, space, spec = prepared.feature, prepared.space, prepared.feature.spec
    seed, splits = prepared.seed, prepared.splits  # drawn and checked by prepare
    inc = spec.incumbent
    incumbent = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings)
    candidate_models = [m for m in space.models if m != inc.model]
    storage = open_storage(inputs.optuna_storage)
    judge = [spec.metric.judge.model] if spec.metric.judge else []  # a judge metric's model is called too
    ensure_local_models([inc.model, *candidate_models, *space.optimizer_models(), *judge], params.start_local_models, holder)

    wh = Warehouse(warehouse_path())
    study_id, found = choose_study_id(wh, f"{spec.name}-{study_key(params, prepared)}", params.new_study)
    resumed = found is not None
    journal.ingest(wh, state_dir(), study_id)  # what a killed run paid for and no table holds yet
    spent = records.study_spend(wh, study_id)
    previous = records.study_trials(wh, study_id)
    needs = _needs(prepared)
    cap, cap_changed = resolve_cap(study_id, found, params.max_spend_usd, params.raise_cap, spent)
    summary = StudySummary(study_id=study_id, feature=spec.name, incumbent_model=inc.model, warehouse=str(wh.path), resumed=resumed)
    if found is not None and found.stopped_by == "budget" and not cap_changed and cap is not None:
        summary.status, summary.stopped_by = found.status, "budget"
        summary.notice = cap_spent_notice(study_id, cap, spent)
        logger.warning(summary.notice)
        return summary
    if not resumed or cap_changed:  # a plain resume keeps the cap it was accepted with
        incumbent_done = any(r["role"] == "incumbent" and r["split"] == "dev" and r["status"] == "completed" for r in previous)
        check_cap(cap, spent, needs, incumbent_done=incumbent_done)
    if cap_changed:
        records.change_cap(wh, study_id, found.max_spend_usd, cap, spent)
    records.upsert_feature(wh, name=spec.name, description=spec.description, spec_path=str(feature.spec_path),
                           spec_hash=spec.spec_hash(), spec=spec.model_dump(mode="json"))
    if resumed:
        records.resume_study(wh, study_id)
        records.charge_unfinished_trials(wh, study_id)  # the interrupted trials: what their calls cost
        logger.info("resuming study %s ($%.4f spent so far)", study_id, spent)
    else:
        records.start_study(
            wh, study_id=study_id, feature=spec.name, deprecated_model=params.deprecated_model or inc.model,
            incumbent_model=inc.model, trigger=params.trigger, space_name=space.name,
            space=space.model_dump(mode="json"), params=_recorded_params(params), seed=seed,
            max_spend_usd=cap, optuna_storage=safe_url(inputs.optuna_storage),
        )
    records.set_policy(wh, study_id, prepared.policy.identity(prepared.policy_source))
    inc_dev_quality = next((r["quality"] for r in previous if r["role"] == "incumbent" and r["split"] == "dev"
                            and r["status"] == "completed"), None)
    record_power(wh, study_id, study_power(splits.test, prepared.policy, inc_dev_quality), logger)  # before any call
    study = _optuna_study(storage, study_id, wh)

    g = params.gateway
    ctx = StudyContext(
        wh=wh, feature=feature, metric=build_metric(feature), train=splits.train, seed=seed, study_id=study_id,
        gateway=GatewayConfig(
            home=state_dir(), warehouse=wh.path, prices=prepared.prices, concurrency=g.concurrency, timeout_s=g.timeout_s,
            max_retries=g.max_retries, backoff_s=g.backoff_s, use_cache=g.use_cache, write_cache=_in_process_runner(),
            endpoints=prepared.endpoints,
            breaker_scope=f"{study_id}/{uuid.uuid4().hex[:8]}",  # a run's tasks share what they learn of endpoints
        ),
        budget=Budget(cap, spent, held_usd=needs.reserve) if cap is not None else None,
        next_trial_id=max((r["trial_id"] for r in previous), default=-1) + 1,
    )
    notify("study_started", study_id=study_id, trials=params.max_trials, dev=len(splits.dev), test=len(splits.test),
           spent_usd=ctx.budget.spent_usd if ctx.budget else 0.0, max_spend_usd=cap)
    done = {(r["role"], r["split"], r["source_trial_id"], r["optuna_number"]): r for r in previous if r["status"] == "completed"}

    def baseline(role: str, split: str, config: Config, examples, source: int | None) -> Trial:
        row = done.get((role, split, source, None))
        if row is not None:  # a resumed study keeps what it measured
            return Trial.from_row(row, config.label())
        result = evaluate_full(ctx, TrialRun(ctx.allocate_trial_id(), role, split, config, examples, source_trial_id=source))
        if result.status == "stopped_by_budget" and role == "incumbent":  # never cut by the cap; a front config may be
            raise BudgetExceeded(result.measurement.error or "spend cap reached")
        if result.status == "provider_down":
            raise EndpointDown(ctx.endpoint_down or result.measurement.error or "an endpoint is down")
        return result

    try:
        left_out = _preflight_calls(ctx, prepared, incumbent, candidate_models, logger)
        candidate_models = [m for m in candidate_models if m not in left_out]
        incumbent_dev = baseline("incumbent", "dev", incumbent, splits.dev, None)
        summary.trials.append(incumbent_dev)
        if incumbent_dev.status != "completed":
            raise RuntimeError(f"the incumbent could not be evaluated on dev: {incumbent_dev.measurement.error}")
        if inc_dev_quality is None:  # the assumed discordance, replaced by what the incumbent measured
            record_power(wh, study_id, study_power(splits.test, prepared.policy, incumbent_dev.measurement.quality), logger)
        ctx.share = 1.0 / params.parallel
        trivial = trivial_baseline(spec, ctx.metric, splits.train, splits.dev)  # the floor of the front
        logger.info("%s: a config must beat it to enter the front", trivial.describe())
        settings = SearchSettings(
            max_trials=params.max_trials, max_wall_s=params.max_wall_s, racing=params.racing, parallel=params.parallel,
            sampler=params.sampler, limits=Limits(max_error_rate=params.max_error_rate, max_latency_p95_s=params.max_latency_p95_s,
                                                  trivial_quality=trivial.quality),
        )
        summary.stopped_by = search_study(ctx, settings, space, incumbent, candidate_models, splits.dev, study,
                                           incumbent_dev=incumbent_dev.measurement)
        ctx.share = 1.0
        if ctx.budget is not None:
            ctx.budget.release_hold()  # the test phase spends what the cap held back for it
        if summary.stopped_by == "provider_down":
            raise EndpointDown(ctx.endpoint_down or "an endpoint is down")
        summary.front = study_front(wh, study_id, study)
        configs = configs_by_trial_id(space, incumbent, candidate_models, study)
        summary.trials = [incumbent_dev] + [
            Trial.from_row(row, configs[row["trial_id"]].label())
            for row in records.study_trials(wh, study_id)
            if row["split"] == "dev" and row["trial_id"] in configs
        ]
        composites = build_composites(ctx, splits.dev, {i: c.label() for i, c in configs.items()}, settings.limits) if space.composites else []
        summary.trials += composites
        incumbent_test = baseline("incumbent", "test", incumbent, splits.test, incumbent_dev.trial_id)
        summary.trials.append(incumbent_test)
        by_id = {t.trial_id: t for t in summary.trials}
        if incumbent_test.status != "completed":
            raise RuntimeError(f"the incumbent could not be evaluated on the test split: {incumbent_test.measurement.error}")
        mixed = confirmable(ctx, composites)  # cascades, routers: confirmed and judged like any front config

        def confirm(dev_id: int) -> Trial:
            if dev_id in mixed:
                return confirm_composite(ctx, by_id[dev_id], configs, splits.test)
            return baseline(by_id[dev_id].role, "test", configs[dev_id], splits.test, dev_id)

        difference = calibrate_judge(ctx, log=logger.info)  # a judged feature: its judge vs the human judgements
        naive = [t.trial_id for t in summary.trials if t.role == "naive_swap" and t.split == "dev" and t.status in ("completed", "pruned")]
        selection, test_by_source, not_confirmed = confirm_front(  # what can still win, and every naive swap, on test
            wh, study_id, feature, splits.test, incumbent_dev, incumbent_test, summary.front + mixed, by_id, confirm,
            prepared.policy, seed, policy_source=prepared.policy_source, naive_swaps=naive, difference=difference)
        discover_front(wh, study_id, feature, splits.test, incumbent_test, test_by_source, seed)  # the long tail's bad corners
        summary.front += [dev_id for dev_id in test_by_source if dev_id in mixed and dev_id not in summary.front]
        summary.trials += list(test_by_source.values())
        summary.status, summary.error, selection = _judged_with_failures(wh, study_id, selection)
        labels = label_report(wh, study_id, feature, splits.test, incumbent_dev, incumbent_test, test_by_source, by_id)
        if summary.status == "completed":  # production samples vs what the incumbent served (tasks/study/samples.py)
            run_samples_stage(ctx, incumbent, incumbent_dev, configs, test_by_source, by_id, log=logger.info)
            discover_samples(wh, study_id, feature, seed)  # where production traffic disagrees with what was served
        summary.selection = (selection.to_dict() | ({"left_out": left_out} if left_out else {})
                             | ({"not_confirmed": {str(k): v for k, v in not_confirmed.items()}} if not_confirmed else {})
                             | {"trivial": trivial.to_dict()} | ({"labels": labels} if labels else {}))
        journal.ingest(wh, state_dir(), study_id, remove_own=True)
        records.finish_study(wh, study_id, status=summary.status, selected_trial_id=selection.trial_id,
                             selection=summary.selection, stopped_by=summary.stopped_by, error=summary.error)
    except BudgetExceeded as exc:
        journal.ingest(wh, state_dir(), study_id, remove_own=True)
        logger.warning("study %s stopped by its spend cap: %s", study_id, exc)
        records.finish_study(wh, study_id, status="stopped_by_budget", error=str(exc)[:2000], stopped_by="budget")
        summary.status, summary.stopped_by = "stopped_by_budget", "budget"
        notify("study_finished", summary=summary)
        return summary
    except stopping.Interrupted as exc:  # a stop requested by offramp's CLI: the run ends CANCELLED, not crashed
        _interrupted(wh, study_id, exc)
        return Cancelled(message=f"{exc}; the same command resumes the study")  # the caller gets CancelledRun
    except (KeyboardInterrupt, TerminationSignal) as exc:  # the flow in the main thread: Prefect's own handling
        _interrupted(wh, study_id, exc)
        raise
    except EndpointDown as exc:
        # the evidence so far is kept and reported; the same command resumes the study when the endpoint is back
        logger.warning("study %s stopped: %s", study_id, exc)
        records.finish_study(wh, study_id, status="provider_down", error=str(exc)[:2000], stopped_by="provider_down")
        summary.status, summary.stopped_by, summary.error = "provider_down", "provider_down", str(exc)
        summary.report_path = str(publish(wh, study_id, state_dir() / "reports"))
        notify("study_finished", summary=summary)
        return summary
    except BaseException as exc:
        journal.ingest(wh, state_dir(), study_id, remove_own=True)
        records.finish_study(wh, study_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise

    summary.report_path = str(publish(wh, study_id, state_dir() / "reports"))
    notify("study_finished", summary=summary)
    return summary


def _interrupted(wh: Warehouse, study_id: str, exc: BaseException) -> None:
    """A stop request (SIGINT/SIGTERM; Ctrl-C or Prefect's SIGTERM when the flow runs in the main
    thread): every thread stops at its next call, the study and its running trials are recorded as
    interrupted (a rerun resumes them); the flow then stops the local model servers it started
    (`model_leases.release`, unless another study still uses them)."""
    signum = getattr(exc, "signum", None) or getattr(exc, "signal", None) or (2 if isinstance(exc, KeyboardInterrupt) else 15)
    stopping.request(signum)
    records.interrupt_study(wh, study_id, f"stopped by {stopping.signal_name(signum)}; the same command resumes it")
    notify("study_interrupted", study_id=study_id, signal=stopping.signal_name(signum))


def _preflight_calls(ctx: StudyContext, prepared: Prepared, incumbent: Config, candidates: list[str], logger) -> dict[str, str]:
    """One cheap call per model endpoint before the search (`tasks.study.probe`): the models left
    out -> the fix. Its calls count against the study's cap."""
    gateway = ctx.gateway.model_copy(update={"study_id": ctx.study_id, "purpose": "preflight"}).open()  # journaled
    gateway.budget = ctx.budget
    try:
        return check_endpoints(
            gateway, ctx.wh, feature=prepared.feature, incumbent=incumbent, candidates=candidates,
            optimizers=[m for m in prepared.space.optimizer_models() if m not in candidates and m != incumbent.model],
            train=prepared.splits.train, seed=prepared.seed, study_id=ctx.study_id, price_sources=prepared.price_sources,
            log=logger,
        )
    finally:
        if gateway.journal is not None:
            gateway.journal.close()
            if gateway.journal.path.exists():
                journal.ingest_file(ctx.wh, gateway.journal.path, remove=True)


def _judged_with_failures(wh: Warehouse, study_id: str, selection):
    """(status, error, selection): the decision names the trials that failed and why; a study none
    of whose search trials completed ends `all_trials_failed`, not `completed`."""
    failed = failed_trials(wh, study_id)
    if failed is None:
        return "completed", None, selection
    selection = dataclasses.replace(selection, reason=f"{selection.reason} {failed}.")
    searched = [r for r in records.study_trials(wh, study_id) if r["split"] == "dev" and r["role"] != "incumbent"]
    if searched and not any(r["status"] == "completed" for r in searched):
        return "all_trials_failed", f"every search trial failed. {failed}", selection
    return "completed", None, selection


def _needs(prepared: Prepared) -> Needs:
    spec = prepared.feature.spec
    incumbent = Config(model=spec.incumbent.model, instructions=spec.incumbent.instructions, settings=spec.incumbent.settings)
    splits = prepared.splits
    return estimate_needs(prepared.feature, prepared.space, incumbent, PriceBook(prepared.prices, prepared.endpoints), splits.train, splits.dev,
                          splits.test, prepared.seed)


def check_spend_cap(params: MigrateParams, prepared: Prepared) -> None:
    """The flow's spend-cap checks, from the CLI before Prefect starts (a cap too small, a raise
    without --raise-cap: exit 2 with one line); the flow repeats them with the ledger ingested."""
    wh = Warehouse(warehouse_path())
    spec = prepared.feature.spec
    study_id, found = choose_study_id(wh, f"{spec.name}-{study_key(params, prepared)}", params.new_study)
    spent = records.study_spend(wh, study_id) if found else 0.0
    cap, changed = resolve_cap(study_id, found, params.max_spend_usd, params.raise_cap, spent)
    if found is None or changed:
        done = found is not None and any(r["role"] == "incumbent" and r["split"] == "dev" and r["status"] == "completed"
                                         for r in records.study_trials(wh, study_id))
        check_cap(cap, spent, _needs(prepared), incumbent_done=done)


def _recorded_params(params: MigrateParams) -> dict:
    """The parameters as the warehouse records them: a storage URL without its password."""
    recorded = params.model_dump(mode="json")
    if recorded.get("optuna_storage"):
        recorded["optuna_storage"] = safe_url(recorded["optuna_storage"])
    return recorded


def _optuna_study(storage: optuna.storages.BaseStorage, study_id: str, wh: Warehouse) -> optuna.Study:
    """The study's Optuna study (created, or loaded to resume), linked to the warehouse."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_id, directions=DIRECTIONS, load_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["quality", "cost_per_1k_usd", "latency_p95_s"])
    study.set_user_attr("offramp_study_id", study_id)
    study.set_user_attr("warehouse", str(wh.path))
    return study


