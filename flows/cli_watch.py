"""The commands of the deprecation watch and the deployments: `offramp notify`, `offramp watch`,
`offramp serve`. They register on the one `offramp` app (`offramp.flows.cli`), which imports this
module; like the rest of the CLI they are thin layers over flows and tasks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from offramp.flows.cli import _checked, _fmt, _usage, app, console, err_console
from offramp.util import safe_url
from offramp.warehouse.home import OfframpSettings

FeaturesOption = Annotated[Path | None, typer.Option(
    "--features", help="folder whose subfolders hold feature.yaml files (default: $OFFRAMP_FEATURES or ./features)")]
NoticesOption = Annotated[Path | None, typer.Option(
    "--notices", help="YAML file of your own retirement notices (default: $OFFRAMP_NOTICES)")]
ProviderHorizonOption = Annotated[list[str] | None, typer.Option(
    "--provider-horizon", help="PROVIDER=DAYS, a provider's own horizon (repeatable), e.g. openai=300")]


def _notices_file(explicit: Path | None) -> str | None:
    value = explicit or OfframpSettings().notices
    return str(Path(value).expanduser().resolve()) if value else None


def _check_prefect_server() -> str | None:
    """The PREFECT_API_URL in use (None: none set), after checking that it answers."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return None
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        from offramp.errors import UserError

        raise UserError(
            f"the Prefect server at PREFECT_API_URL={safe_url(url)} does not answer ({type(problem).__name__}: {problem}). "
            "Start it (`prefect server start`), fix PREFECT_API_URL, or unset it to run on a temporary server."
        )
    return url


@app.command()
def notify(
    model: Annotated[str, typer.Argument(help="the retiring model, as features name it (a litellm id)")],
    retires: Annotated[str | None, typer.Option("--retires", help="the day it is turned off, YYYY-MM-DD")] = None,
    replacement: Annotated[str | None, typer.Option("--replacement", help="the successor the provider suggests")] = None,
    source: Annotated[str | None, typer.Option("--source", help="where it was announced (URL)")] = None,
    features: FeaturesOption = None,
    already_retired: Annotated[bool, typer.Option("--already-retired", help="accept a date in the past")] = False,
    force: Annotated[bool, typer.Option("--force", help="record a model no source and no feature knows")] = False,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="remove your notice for MODEL (history keeps it)")] = False,
) -> None:
    """Record a retirement notice (an email, a changelog). The next `offramp watch` acts on it;
    it beats litellm's map for that model. Notifying the same model again replaces its date."""
    from pydantic import ValidationError

    from offramp.errors import UserError
    from offramp.tasks.watch.deprecations import NoticeEntry, check_user_notice, load_price_map, today_utc
    from offramp.tasks.watch.registry import discover, features_root
    from offramp.warehouse import Warehouse, records, warehouse_path

    if withdraw:
        removed = records.withdraw_notice(Warehouse(warehouse_path()), model)
        if removed is None:
            raise UserError(f"offramp notify --withdraw: there is no notice of yours for {model!r} (see v_deprecations, source 'notice')")
        console.print(f"notice for {model} (retires {removed['retires_on']}) withdrawn; other sources still count.")
        return
    if retires is None:
        raise _usage("offramp notify: --retires YYYY-MM-DD is required (or --withdraw)")
    try:
        entry = NoticeEntry(model=model, retires_on=retires, replacement=replacement, source=source)
    except ValidationError as exc:
        from offramp.search_spaces.validation import problems

        text = problems(exc).replace("field `retires_on`", "--retires").replace("field `model`", "MODEL")
        raise UserError(f"offramp notify: {text} (e.g. --retires 2027-03-31)") from None
    registered, _ = discover(features_root(features))
    check_user_notice(
        entry, today=today_utc(), price_map=load_price_map(),
        models_in_use=[m for f in registered for m in f.models()], already_retired=already_retired, force=force,
    )
    changes = records.record_deprecations(Warehouse(warehouse_path()), [{
        "model": entry.model, "source": "notice", "retires_on": entry.retires_on, "replacement": entry.replacement,
        "source_ref": entry.source or "offramp notify",
    }])
    what = changes[0]["change"].replace("_", " ") if changes else "unchanged"
    console.print(f"notice for {entry.model}: retires {entry.retires_on} ({what}). `offramp watch` acts on it.")


@app.command()
def watch(
    features: FeaturesOption = None,
    notices: NoticesOption = None,
    price_map: Annotated[Path | None, typer.Option("--price-map", help="a litellm price map JSON instead of the bundled one")] = None,
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=0, help="act on retirements this many days ahead")] = 120,
    provider_horizon: ProviderHorizonOption = None,
    provider_api: Annotated[list[str] | None, typer.Option(
        "--provider-api", help="also read a provider's models API (online): openai (key: OPENAI_API_KEY)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="record and report, emit no event")] = False,
) -> None:
    """Run the deprecation watch once, now: which features use a model that retires soon. With a
    Prefect server (PREFECT_API_URL) it emits one event per feature and retiring model, which
    starts `migrate-feature` where `offramp serve` runs; without one it reports what it would emit."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from offramp.flows.params import WatchParams
    from offramp.tasks.watch.registry import features_root

    horizons = _provider_horizons(provider_horizon)
    url = _check_prefect_server()
    emit = bool(url) and not dry_run
    params = _checked("watch", lambda: WatchParams(
        features_root=str(features_root(features)), notices_file=_notices_file(notices),
        price_map=str(price_map.resolve()) if price_map else None, horizon_days=horizon_days,
        provider_horizon_days=horizons, provider_apis=provider_api or [], emit=emit,
    ))
    from offramp.flows.watch_deprecations import watch_deprecations

    summary = watch_deprecations(params)
    _print_watch(summary, emitted_to=url if emit else None)
    if summary.problems:
        raise typer.Exit(code=1)


def _provider_horizons(items: list[str] | None) -> dict[str, int]:
    horizons = {}
    for item in items or []:
        name, _, days = item.partition("=")
        if not name or not days.isdigit():
            raise _usage(f"--provider-horizon {item!r}: expected PROVIDER=DAYS, e.g. openai=300")
        horizons[name] = int(days)
    return horizons


def _print_watch(s, emitted_to: str | None) -> None:
    table = Table(title=f"Models in use, {s.today}")
    for column in ("feature", "model", "role", "status", "retires on", "days left", "horizon", "source"):
        table.add_column(column)
    colour = {"retiring": "yellow", "retired": "red", "later": "green", "unknown": "dim"}
    for a in s.assessments:
        table.add_row(a.feature, a.model, a.role, f"[{colour[a.status]}]{a.status}[/]", _fmt(a.retires_on),
                      _fmt(a.days_left), str(a.horizon_days), a.source_text)
    console.print(table)
    for row in s.emitted:
        console.print(f"emitted offramp.model.deprecation for {row['feature']} / {row['model']} -> {emitted_to} (event {row['event_id']})")
    for a in s.already:
        console.print(f"already emitted for {a.feature} / {a.model} (retires {a.retires_on}): not again until the date changes")
    for a in s.pending:
        reason = "no Prefect server (set PREFECT_API_URL)" if emitted_to is None else "see problems"
        console.print(f"[yellow]due, not emitted[/] ({reason}): {a.feature} / {a.model}, retires {a.retires_on}")
    for change in s.changes:
        if change["source"] != "litellm" or any(change["model"] == a.model for a in s.assessments):
            console.print(f"notice {change['change'].replace('_', ' ')}: {change['model']} ({change['source']}) retires {change['retires_on']}")
    new_in_map = sum(1 for c in s.changes if c["source"] == "litellm")
    if new_in_map:
        console.print(f"{new_in_map} dated model(s) new or changed in litellm's map: offramp sql \"select * from v_deprecations\"")
    for line in s.problems:
        err_console.print(f"[bold yellow]problem:[/] {line}", soft_wrap=True)


@app.command()
def serve(
    features: FeaturesOption = None,
    notices: NoticesOption = None,
    cron: Annotated[str, typer.Option("--cron", help="when the watch runs (UTC)")] = "0 6 * * *",
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=0, help="the watch's horizon")] = 120,
    provider_horizon: ProviderHorizonOption = None,
    max_trials: Annotated[int, typer.Option("--max-trials", min=1, help="per triggered study")] = 16,
    max_spend: Annotated[float | None, typer.Option("--max-spend", help="USD cap per triggered study")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="flow runs at once (default: no limit)")] = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="selection policy YAML for triggered studies")] = None,
) -> None:
    """Register and serve the deployments on the Prefect server in PREFECT_API_URL: migrate-feature
    (started by deprecation events, or by hand from the UI) and watch-deprecations (on a
    schedule). Runs until interrupted; flow runs execute in this machine's processes."""
    from offramp.flows.deployments import build, serve as serve_deployments
    from offramp.flows.params import WatchParams
    from offramp.tasks.watch.registry import features_root

    url = _check_prefect_server()
    if url is None:
        raise _usage("offramp serve needs a Prefect server: `prefect server start`, then "
                     "`export PREFECT_API_URL=http://127.0.0.1:4200/api`")
    watch_params = _checked("serve", lambda: WatchParams(
        features_root=str(features_root(features)), notices_file=_notices_file(notices),
        horizon_days=horizon_days, provider_horizon_days=_provider_horizons(provider_horizon),
    ))
    defaults = {"max_trials": max_trials, "max_spend_usd": max_spend}
    if policy is not None:
        from offramp.tasks.evidence.policy import load_policy

        load_policy(policy)  # a bad file fails here, not in every triggered run
        defaults["policy_file"] = str(policy.expanduser().resolve())
    deployments = build(watch=watch_params, migrate_defaults=defaults, cron=cron)
    ui = safe_url(url).removesuffix("/api")
    console.print(f"serving migrate-feature/on-deprecation and watch-deprecations/daily on {ui} (Ctrl-C stops)")
    serve_deployments(deployments, limit=limit)


# The flow parameter (pydantic field) each command-line option sets, to name the option in errors.
