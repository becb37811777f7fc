"""The Prefect tasks of the `watch-deprecations` flow: values in, values out.

- `gather_notices`: every source's notices now (litellm's map, the user's notices file, a
  provider's models API, the notices recorded by `offramp notify`), recorded in the warehouse
  with their history;
- `emit_deprecations`: one Prefect event `offramp.model.deprecation` per due (feature, model),
  each recorded once emitted (an event that cannot be sent is reported and tried again next run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from offramp.errors import UserError
from offramp.tasks.watch.deprecations import (
    EVENT,
    Assessment,
    Notice,
    load_notices_file,
    load_price_map,
    map_notices,
    provider_api_notices,
)
from offramp.util import safe_url
from offramp.warehouse import Warehouse, records


@dataclasses.dataclass(frozen=True)
class Gathered:
    notices: list[Notice]
    price_map: Mapping[str, Any]
    problems: list[str]
    changes: list[dict]  # new or changed retirement dates seen by this run


@task(cache_policy=NO_CACHE)
def gather_notices(warehouse: Path, *, price_map: str | None, notices_file: str | None, provider_apis: list[str]) -> Gathered:
    """Every source's notices now (recorded, with history); problems as lines."""
    wh = Warehouse(warehouse)
    problems: list[str] = []
    try:
        prices = load_price_map(price_map)
    except UserError as exc:
        problems.append(str(exc))
        prices = {}
    notices, map_problems = map_notices(prices)
    problems += map_problems
    if notices_file:
        from_file, file_problems = load_notices_file(notices_file)
        notices += from_file
        problems += file_problems
    for provider in provider_apis:
        from_api, api_problems = provider_api_notices(provider, prices)
        notices += from_api
        problems += api_problems
    changes = records.record_deprecations(wh, [n.row() for n in notices])
    notices += [Notice(r["model"], r["retires_on"], r["source"], r["replacement"], r["source_ref"])
                for r in records.current_deprecations(wh, source="notice")]
    return Gathered(notices, prices, problems, changes)


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
    return safe_url(url) if url else None


@dataclasses.dataclass(frozen=True)
class Emitted:
    emitted: list[dict]  # the events sent now, as recorded
    pending: list[Assessment]  # due, not sent (the next run tries again)
    problems: list[str]


@task(cache_policy=NO_CACHE)
def emit_deprecations(due: list[Assessment], warehouse: Path) -> Emitted:
    """One event per due assessment; each recorded once sent."""
    logger = get_run_logger()
    wh = Warehouse(warehouse)
    emitted, pending, problems = [], [], []
    for a in due:
        event = deprecation_event(a)
        try:
            send_events([event])
        except Exception as exc:  # noqa: BLE001 - the next run tries again: nothing is recorded
            problems.append(f"event for {a.feature} / {a.model} not emitted: {type(exc).__name__}: {exc}")
            pending.append(a)
            continue
        row = dict(event_id=str(event.id), feature=a.feature, model=a.model, retires_on=a.retires_on,
                   replacement=a.replacement, source=a.source, days_left=a.days_left, horizon_days=a.horizon_days,
                   api_url=api_url())
        records.record_deprecation_event(wh, **row)
        emitted.append(row)
        logger.info("emitted %s for %s / %s (retires %s)", EVENT, a.feature, a.model, a.retires_on)
    return Emitted(emitted, pending, problems)
