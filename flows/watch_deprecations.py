"""Flow `watch-deprecations`: which features use a model that retires soon; one event each.

registry (feature.yaml files + releases)
-> sources (litellm's map, the user's notices file, the notices recorded by `offramp notify`,
   opt-in: a provider's models API) -> `deprecations` + `deprecation_history` in the warehouse
-> per (feature, model in use): retiring / retired / later / unknown
-> one Prefect event `offramp.model.deprecation` per (feature, incumbent model) retiring within
   its provider's horizon, unless one was already emitted for the same retirement date
-> a markdown artifact.

A bad entry anywhere (a spec, a notice, a map entry) is reported and skipped, never fatal.
The `migrate-feature` deployment (`offramp serve`) is triggered by the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from offramp.errors import UserError
from offramp.flows.params import WatchParams
from offramp.tasks.watch.deprecations import (
    EVENT,
    Assessment,
    Notice,
    assess,
    load_notices_file,
    load_price_map,
    map_notices,
    provider_api_notices,
    today_utc,
)
from offramp.tasks.watch.registry import discover
from offramp.warehouse import Warehouse, records, warehouse_path


@dataclass
class WatchSummary:
    today: dt.date
    features: int = 0
    assessments: list[Assessment] = field(default_factory=list)
    emitted: list[dict] = field(default_factory=list)  # events sent now
    already: list[Assessment] = field(default_factory=list)  # emitted before, same date: not again
    pending: list[Assessment] = field(default_factory=list)  # actionable, not emitted (dry run or failure)
    changes: list[dict] = field(default_factory=list)  # new or changed retirement dates seen by this run
    problems: list[str] = field(default_factory=list)


@task(cache_policy=NO_CACHE)
def gather_notices(params: WatchParams, wh: Warehouse) -> tuple[list[Notice], Mapping[str, Any], list[str], list[dict]]:
    """Every source's notices now (recorded, with history); problems as lines."""
    problems: list[str] = []
    try:
        price_map = load_price_map(params.price_map)
    except UserError as exc:
        problems.append(str(exc))
        price_map = {}
    notices, map_problems = map_notices(price_map)
    problems += map_problems
    if params.notices_file:
        from_file, file_problems = load_notices_file(params.notices_file)
        notices += from_file
        problems += file_problems
    for provider in params.provider_apis:
        from_api, api_problems = provider_api_notices(provider, price_map)
        notices += from_api
        problems += api_problems
    changes = records.record_deprecations(wh, [n.row() for n in notices])
    notices += [Notice(r["model"], r["retires_on"], r["source"], r["replacement"], r["source_ref"])
                for r in records.current_deprecations(wh, source="notice")]
    return notices, price_map, problems, changes


def event_payload(a: Assessment) -> dict:
    return {
        "feature": a.feature, "feature_dir": a.feature_dir, "model": a.model, "retires_on": a.retires_on.isoformat(),
        "days_left": a.days_left, "replacement": a.replacement, "source": a.source, "source_ref": a.source_ref,
        "search_space": a.search_space, "horizon_days": a.horizon_days,
    }


def deprecation_event(a: Assessment):
    from prefect.events import Event

    return Event(
        event=EVENT,
        resource={"prefect.resource.id": f"offramp.feature.{a.feature}", "prefect.resource.name": a.feature},
        related=[{"prefect.resource.id": f"offramp.model.{a.model}", "prefect.resource.role": "model",
                  "prefect.resource.name": a.model}],
        payload=event_payload(a),
    )


def send_events(events: list) -> None:
    """To the Prefect API in PREFECT_API_URL, over one connection; raises if it cannot be reached."""
    from prefect.events.clients import get_events_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def send() -> None:
        async with get_events_client(reconnection_attempts=2) as client:
            for event in events:
                await client.emit(event)

    run_coro_as_sync(send())


def api_url() -> str | None:
    """The Prefect API events go to, without credentials."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return url.split("@")[-1] if url else None


@task(cache_policy=NO_CACHE)
def emit_deprecations(due: list[Assessment], wh: Warehouse, summary: WatchSummary) -> None:
    logger = get_run_logger()
    for a in due:
        event = deprecation_event(a)
        try:
            send_events([event])
        except Exception as exc:  # noqa: BLE001 - the next run tries again: nothing is recorded
            summary.problems.append(f"event for {a.feature} / {a.model} not emitted: {type(exc).__name__}: {exc}")
            summary.pending.append(a)
            continue
        row = dict(event_id=str(event.id), feature=a.feature, model=a.model, retires_on=a.retires_on,
                   replacement=a.replacement, source=a.source, days_left=a.days_left, horizon_days=a.horizon_days,
                   api_url=api_url())
        records.record_deprecation_event(wh, **row)
        summary.emitted.append(row)
        logger.info("emitted %s for %s / %s (retires %s)", EVENT, a.feature, a.model, a.retires_on)


def _run_name() -> str:
    return f"watch deprecations {today_utc()}"


@flow(name="watch-deprecations", flow_run_name=_run_name, log_prints=False)
def watch_deprecations(params: WatchParams = WatchParams()) -> WatchSummary:
    """Check every feature's models against the retirement notices; emit one event per feature
    whose incumbent model retires within the horizon (once per retirement date)."""
    logger = get_run_logger()
    summary = WatchSummary(today=today_utc())
    wh = Warehouse(warehouse_path())
    features, summary.problems = discover(params.features_root, releases=params.releases_dir)
    summary.features = len(features)
    for f in features:  # the registry, for SQL: v_features
        records.upsert_feature(wh, name=f.name, description=f.description, spec_path=f.spec_path,
                               spec_hash=f.spec_hash, spec=f.spec)
    notices, price_map, problems, summary.changes = gather_notices(params, wh)
    summary.problems += problems
    summary.assessments = assess(
        features, notices, price_map, today=summary.today, horizon_days=params.horizon_days,
        provider_horizon_days=params.provider_horizon_days,
    )
    done = records.emitted_deprecations(wh)
    due = []
    for a in summary.assessments:
        if not a.actionable:
            continue
        if not a.migratable:
            summary.problems.append(
                f"{a.feature}: its release pins {a.model}, which retires on {a.retires_on}, but migrate-feature starts "
                f"from feature.yaml's incumbent ({next(x.model for x in summary.assessments if x.feature == a.feature and x.migratable)}); "
                "set the incumbent to the released config to migrate it"
            )
        elif (a.feature, a.model, a.retires_on) in done:
            summary.already.append(a)
        else:
            due.append(a)
    if params.emit:
        emit_deprecations(due, wh, summary)
    else:
        summary.pending += due
    for line in summary.problems:
        logger.warning(line)
    create_markdown_artifact(key="deprecation-watch", markdown=watch_markdown(summary),
                             description=f"Deprecation watch of {summary.today}")
    return summary


def watch_markdown(s: WatchSummary) -> str:
    lines = [
        f"# Deprecation watch, {s.today}",
        "",
        f"{s.features} feature(s); {len(s.emitted)} event(s) emitted now, {len(s.already)} already emitted before "
        f"(same date), {len(s.pending)} due but not emitted, {len(s.changes)} new or changed notice(s).",
        "",
        "| feature | model | role | status | retires on | days left | horizon | source | replacement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in s.assessments:
        lines.append(f"| {a.feature} | {a.model} | {a.role} | {a.status} | {a.retires_on or '-'} | "
                     f"{'-' if a.days_left is None else a.days_left} | {a.horizon_days} | {a.source_text} | {a.replacement or '-'} |")
    if s.problems:
        lines += ["", "## Problems (skipped, the rest went on)", ""] + [f"- {p}" for p in s.problems]
    lines += ["", "SQL: `select * from v_deprecations where in_force and days_left < 180`"]
    return "\n".join(lines)
