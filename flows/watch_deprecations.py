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
from dataclasses import dataclass, field

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from offramp.flows.params import WatchParams
from offramp.tasks.watch.deprecations import Assessment, assess, today_utc
from offramp.tasks.watch.registry import discover
from offramp.tasks.watch.steps import emit_deprecations, gather_notices
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
    gathered = gather_notices(wh.path, price_map=params.price_map, notices_file=params.notices_file,
                              provider_apis=list(params.provider_apis))
    summary.problems += gathered.problems
    summary.changes = gathered.changes
    summary.assessments = assess(
        features, gathered.notices, gathered.price_map, today=summary.today, horizon_days=params.horizon_days,
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
        sent = emit_deprecations(due, wh.path)
        summary.emitted += sent.emitted
        summary.pending += sent.pending
        summary.problems += sent.problems
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
