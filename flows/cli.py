"""`offramp`: a thin command line over the flows and tasks.

Heavy libraries (prefect, litellm) are imported inside the commands that need them, so
`offramp sql` and `offramp --help` start fast.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from offramp.tasks.evidence.terminal import fmt as _fmt
from offramp.util import safe_url
from offramp.warehouse.home import OfframpSettings, configure_environment

# Typer's pretty tracebacks print every frame's locals (an API key in a variable, pages of a
# dataset); a bug gets Python's own traceback instead.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
models_app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the bundled local model servers.")
app.add_typer(models_app, name="models")
T = TypeVar("T")
# Not a terminal (CI, a pipe): rich would wrap at 80 columns; tables read better wider.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


# Set by `--debug`: main() re-raises an OfframpError (full traceback) instead of printing one line.
_DEBUG = False


@app.callback()
def _root(
    home: Annotated[Optional[Path], typer.Option("--home", help="state dir (default: $OFFRAMP_HOME or ./.offramp)")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="on an error, print the full traceback instead of one line")] = False,
) -> None:
    """offramp: migrate LLM features off retiring models, measured and on evidence."""
    global _DEBUG
    _DEBUG = debug
    if home is not None:
        os.environ["OFFRAMP_HOME"] = str(home)
    configure_environment()




class _ProgressView:
    """Rich progress: one bar per trial, fed by the flow's progress events."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.tasks: dict[int, int] = {}

    def __call__(self, event: str, data: dict) -> None:
        if event == "trial_started":
            description = f"trial {data['trial_id']:>2} {data['split']:<4} {data['label']}"
            self.tasks[data["trial_id"]] = self.progress.add_task(description, total=data["total"])
        elif event == "call_done" and data["trial_id"] in self.tasks:
            self.progress.advance(self.tasks[data["trial_id"]])
        elif event == "trial_finished":
            t = data["trial"]
            task_id = self.tasks.get(t.trial_id)
            if task_id is not None:
                quality = "failed" if t.measurement.quality is None else f"quality {t.measurement.quality:.3f}"
                self.progress.update(task_id, description=f"trial {t.trial_id:>2} {t.split:<4} {t.label}  [bold]{quality}[/]")


def _run_migration(params) -> object:
    # The progress bars say what happens; Prefect's per-task INFO lines would interleave with them.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from offramp.flows import migrate_feature as mf

    mf.preflight(mf.study_inputs(params))  # bad input fails here, fast, before Prefect starts

    view = _ProgressView()
    mf.LISTENERS.append(view)
    try:
        with view.progress:
            return mf.migrate_feature(params)
    finally:
        mf.LISTENERS.remove(view)


def _print_study(summary) -> None:
    """After a study: the report (from the warehouse), where it is, and a query to paste."""
    from offramp.tasks.evidence.report import load_report
    from offramp.tasks.evidence.terminal import render_report
    from offramp.warehouse import Warehouse

    if summary.resumed:
        console.print(f"(resumed an interrupted study: {summary.study_id})")
    render_report(console, load_report(Warehouse(summary.warehouse), summary.study_id))
    console.print(f"Warehouse: {summary.warehouse}")
    if summary.report_path:
        console.print(f"Report: {summary.report_path}  (terminal: offramp report {summary.study_id})")
    console.print("Ask it anything, e.g.:")
    console.print(
        f"  offramp sql \"select trial_id, role, model, strategy, dev_quality, test_quality, cost_per_1k_usd, latency_p95_s, "
        f"on_front, selected from v_leaderboard where study_id = '{summary.study_id}' order by rank\"",
        soft_wrap=True,
    )


@app.command()
def migrate(
    feature_dir: Annotated[Path, typer.Argument(help="folder holding feature.yaml")],
    deprecated: Annotated[Optional[str], typer.Option("--deprecated", help="the retiring model (the incumbent's)")] = None,
    space: Annotated[Optional[str], typer.Option(
        "--space", help="search space YAML, or a name under search_spaces/ (default: the feature's search_space, else local-zoo)"
    )] = None,
    max_examples: Annotated[Optional[int], typer.Option("--max-examples", min=1, help="cap dev and test sizes")] = None,
    prices: Annotated[Optional[Path], typer.Option("--prices", help="YAML of model prices overriding litellm's map")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="calls in flight at once")] = 4,
    seed: Annotated[Optional[int], typer.Option("--seed", help="split/demo seed (default: the feature's)")] = None,
    max_spend: Annotated[Optional[float], typer.Option("--max-spend", help="spend cap in USD for the whole study")] = None,
    max_trials: Annotated[int, typer.Option("--max-trials", min=1, help="search trials (naive swaps included)")] = 16,
    max_wall: Annotated[Optional[float], typer.Option("--max-wall", help="seconds after which no new trial starts")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="trials evaluated at once")] = 1,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe | nsga2 | random")] = "tpe",
    racing: Annotated[bool, typer.Option("--racing/--no-racing", help="stop hopeless trials early")] = True,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL (default: sqlite in the state dir)")] = None,
    new_study: Annotated[bool, typer.Option("--new-study", help="do not resume an interrupted identical study")] = False,
) -> None:
    """Run a migration study now (ephemeral Prefect, or the server in PREFECT_API_URL). Running
    the same command again after a crash resumes the study."""
    from offramp.flows.params import GatewayParams, MigrateParams

    params = _checked("migrate", lambda: MigrateParams(
        feature_dir=str(feature_dir), deprecated_model=deprecated, space=space, max_examples=max_examples,
        prices_file=str(prices) if prices else None, seed=seed, trigger="cli", max_spend_usd=max_spend,
        max_trials=max_trials, max_wall_s=max_wall, parallel=parallel, sampler=sampler, racing=racing,
        optuna_storage=storage, new_study=new_study, gateway=GatewayParams(concurrency=concurrency),
    ))
    _print_study(_run_migration(params))


@app.command()
def demo(
    max_examples: Annotated[int, typer.Option("--max-examples", min=1, help="dev and test size cap")] = 40,
    max_trials: Annotated[int, typer.Option("--max-trials", min=1, help="search trials")] = 10,
    keep_models: Annotated[bool, typer.Option("--keep-models", help="leave the model servers running")] = False,
) -> None:
    """Offline, on the real local models: migrate the bundled bank-support-routing feature off its
    retiring model (SmolLM2 135M) and print the front and the chosen config."""
    from offramp.flows.params import GatewayParams, MigrateParams
    from offramp.tasks.gateway import local_models
    from offramp.warehouse import state_dir

    home = state_dir()
    bundled = resources.files("offramp.features") / "bank-support-routing"
    console.print(f"[bold]offramp demo[/]: state in {home}")
    already = {s.alias for s in local_models.status(home) if s.healthy}
    with console.status("starting the local model servers (llama.cpp)..."):
        started = local_models.up(None, home)
    console.print("models up: " + ", ".join(f"{s.alias} ({s.api_base})" for s in started))
    try:
        params = _checked("demo", lambda: MigrateParams(
            feature_dir=str(bundled), deprecated_model="local/smollm2-135m", space="local-zoo",
            max_examples=max_examples, max_trials=max_trials, trigger="demo", gateway=GatewayParams(concurrency=2),
        ))
        _print_study(_run_migration(params))
    finally:
        if not keep_models:
            stopped = local_models.down([a for a in local_models.zoo() if a not in already], home)
            if stopped:
                console.print(f"stopped the model servers this demo started: {', '.join(stopped)}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="one SQL statement (read-only)")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Query the warehouse, read-only (works while a study is writing)."""
    from offramp.warehouse import Warehouse, warehouse_path

    if fmt not in ("table", "csv", "json"):
        raise _usage(f"--format must be table, csv or json, not {fmt!r}")
    import duckdb

    try:
        columns, rows = Warehouse(warehouse_path()).fetch(query)
    except duckdb.Error as exc:
        raise _usage(f"query failed: {exc}") from None
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    elif fmt == "json":
        sys.stdout.write(json.dumps([dict(zip(columns, row)) for row in rows], default=str, indent=1) + "\n")
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*[_fmt(v, 4) for v in row])
        console.print(table)


@app.command()
def report(
    study_id: Annotated[str, typer.Argument(help="the study id (offramp sql \"select id from studies\")")],
    html_path: Annotated[Optional[Path], typer.Option("--html", help="also write the HTML report here")] = None,
) -> None:
    """The migration report of a study: front, paired comparisons with the incumbent, slices,
    flips, the decision and why (the same facts as the HTML report and the Prefect artifact)."""
    from offramp.errors import NoSuchStudy
    from offramp.tasks.evidence.report import load_report, write_html
    from offramp.tasks.evidence.terminal import render_report
    from offramp.warehouse import Warehouse, warehouse_path

    try:
        r = load_report(Warehouse(warehouse_path()), study_id)
    except NoSuchStudy as exc:
        raise _usage(str(exc)) from None
    render_report(console, r)
    if html_path is not None:
        console.print(f"HTML report: {write_html(r, html_path)}")


@app.command()
def promote(
    study_id: Annotated[str, typer.Argument(help="the study whose config to pin")],
    trial: Annotated[Optional[int], typer.Option("--trial", help="a dev trial of the study (default: its selection)")] = None,
    force: Annotated[bool, typer.Option("--force", help="promote a trial that is not on the front")] = False,
    releases_dir: Annotated[Optional[Path], typer.Option("--releases-dir", help="default: $OFFRAMP_RELEASES or ./releases")] = None,
) -> None:
    """Pin a study's chosen config as the feature's current release (releases/<feature>.json)."""
    from offramp.tasks.watch.releases import promote as pin
    from offramp.warehouse import Warehouse, warehouse_path

    path, entry, warnings = pin(Warehouse(warehouse_path()), study_id, trial_id=trial, force=force, directory=releases_dir)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"{entry['feature']}: release v{entry['version']} = trial {entry['trial_id']} of {study_id} "
                  f"({entry['model']}, {entry['strategy']['name']}) written to {path}")
    console.print(f"Load it: from offramp import load_release; program = load_release(\"{path}\")", soft_wrap=True)


@app.command()
def releases(
    feature: Annotated[str, typer.Argument(help="feature name")],
    releases_dir: Annotated[Optional[Path], typer.Option("--releases-dir")] = None,
) -> None:
    """List a feature's releases; * marks the current one."""
    from offramp.tasks.watch.releases import list_releases

    current, items = list_releases(feature, directory=releases_dir)
    table = Table("version", "action", "study", "trial", "model", "strategy", "test quality", "$ / 1k", "created")
    for r in items:
        m = r.get("metrics", {})
        table.add_row(f"{r['version']}{' *' if r['version'] == current else ''}", r["action"], r["study_id"], str(r["trial_id"]),
                      r["model"], r["strategy"]["name"], _fmt(m.get("test_quality")), _fmt(m.get("cost_per_1k_usd"), 5), r["created_at"])
    console.print(table)


@app.command()
def rollback(
    feature: Annotated[str, typer.Argument(help="feature name")],
    releases_dir: Annotated[Optional[Path], typer.Option("--releases-dir")] = None,
) -> None:
    """Pin the previous release again (recorded as a new version)."""
    from offramp.tasks.watch.releases import rollback as unpin
    from offramp.warehouse import Warehouse, warehouse_path

    path, entry = unpin(Warehouse(warehouse_path()), feature, directory=releases_dir)
    console.print(f"{feature}: v{entry['version']} re-pins v{entry['rolled_back_to']} (trial {entry['trial_id']} of "
                  f"{entry['study_id']}, {entry['model']}) in {path}")


@models_app.command("up")
def models_up(aliases: Annotated[Optional[list[str]], typer.Argument(help="default: all")] = None) -> None:
    """Start local model servers (one process each, on 127.0.0.1)."""
    from offramp.tasks.gateway import local_models
    from offramp.warehouse import state_dir

    for s in local_models.up(aliases or None, state_dir()):
        console.print(f"{s.alias}: up at {s.api_base} (pid {s.pid}); litellm model id: local/{s.alias}")


@models_app.command("down")
def models_down(aliases: Annotated[Optional[list[str]], typer.Argument(help="default: all")] = None) -> None:
    """Stop local model servers (by PID)."""
    from offramp.tasks.gateway import local_models
    from offramp.warehouse import state_dir

    stopped = local_models.down(aliases or None, state_dir())
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@models_app.command("status")
def models_status() -> None:
    """Which local models exist and which servers run."""
    from offramp.tasks.gateway import local_models
    from offramp.warehouse import state_dir

    table = Table("model id", "running", "healthy", "pid", "api base")
    for s in local_models.status(state_dir()):
        table.add_row(f"local/{s.alias}", str(s.running), str(s.healthy), _fmt(s.pid), s.api_base or "-")
    console.print(table)


FeaturesOption = Annotated[Optional[Path], typer.Option(
    "--features", help="folder whose subfolders hold feature.yaml files (default: $OFFRAMP_FEATURES or ./features)")]
NoticesOption = Annotated[Optional[Path], typer.Option(
    "--notices", help="YAML file of your own retirement notices (default: $OFFRAMP_NOTICES)")]
ProviderHorizonOption = Annotated[Optional[list[str]], typer.Option(
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
    retires: Annotated[Optional[str], typer.Option("--retires", help="the day it is turned off, YYYY-MM-DD")] = None,
    replacement: Annotated[Optional[str], typer.Option("--replacement", help="the successor the provider suggests")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="where it was announced (URL)")] = None,
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
    price_map: Annotated[Optional[Path], typer.Option("--price-map", help="a litellm price map JSON instead of the bundled one")] = None,
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=0, help="act on retirements this many days ahead")] = 120,
    provider_horizon: ProviderHorizonOption = None,
    provider_api: Annotated[Optional[list[str]], typer.Option(
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
    max_spend: Annotated[Optional[float], typer.Option("--max-spend", help="USD cap per triggered study")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="flow runs at once (default: no limit)")] = None,
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
    deployments = build(watch=watch_params, migrate_defaults=defaults, cron=cron)
    ui = safe_url(url).removesuffix("/api")
    console.print(f"serving migrate-feature/on-deprecation and watch-deprecations/daily on {ui} (Ctrl-C stops)")
    serve_deployments(deployments, limit=limit)


# The flow parameter (pydantic field) each command-line option sets, to name the option in errors.
_OPTION_OF_FIELD = {
    "deprecated_model": "--deprecated", "max_examples": "--max-examples", "prices_file": "--prices",
    "concurrency": "--concurrency", "seed": "--seed", "max_spend_usd": "--max-spend", "max_trials": "--max-trials",
    "max_wall_s": "--max-wall", "parallel": "--parallel", "sampler": "--sampler", "optuna_storage": "--storage",
    "horizon_days": "--horizon-days", "provider_horizon_days": "--provider-horizon", "provider_apis": "--provider-api",
}


def _checked(command: str, build: Callable[[], T]) -> T:
    """`build()` (it constructs flow parameters from options), with pydantic's ValidationError
    turned into a UserError naming the option, its field and what was expected."""
    from pydantic import ValidationError

    from offramp.errors import UserError
    from offramp.search_spaces.validation import field_path

    try:
        return build()
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            field = field_path(e["loc"])
            option = _OPTION_OF_FIELD.get(field.split(".")[0])
            where = f"option {option} (field `{field}`)" if option else f"field `{field}`"
            parts.append(f"{where}: {e['msg']}")
        raise UserError(f"offramp {command}: " + "; ".join(parts)) from None


def _usage(message: str) -> typer.Exit:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # a query or value may hold `[`
    return typer.Exit(code=2)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: a running study is marked failed (rerun resumes it) and the
    temporary Prefect server this process started is stopped (atexit) instead of orphaned."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Console entry point. An `OfframpError` is the user's to fix: its message on one line and
    exit 2 (`--debug`: the traceback). A usage mistake (unknown option or command, missing
    argument) gets click's short usage message and exit 2; bare `offramp` prints the help and
    exits 2, as click does standalone. Anything else is a bug: Python's traceback, exit 1."""
    import signal

    from rich.markup import escape

    from offramp.errors import OfframpError

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        code = app(standalone_mode=False)  # click returns an Exit's code instead of raising it
        if isinstance(code, int) and code:
            sys.exit(code)
    except OfframpError as exc:
        if _DEBUG:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # a message may hold `[`
        sys.exit(2)
    except typer.TyperException as exc:
        # Typer 0.29 vendors click (typer._click) and raises its own copies of click's exceptions,
        # all subclasses of the public TyperException: `click.ClickException` would not catch them.
        _show_usage_error(exc)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)


def _show_usage_error(exc: Exception) -> None:
    """Click's own short message: usage line, `Try ... --help`, `Error: ...`. For bare `offramp`
    (no_args_is_help) typer's rich help has already printed itself to stdout, and the error
    carries no text."""
    if type(exc).__name__ == "NoArgsIsHelpError" and not exc.format_message().strip():
        return
    show = getattr(exc, "show", None)
    if show is not None:
        show()
    else:  # pragma: no cover - every TyperException typer raises has show()
        err_console.print(f"error: {exc}", soft_wrap=True, markup=False)


if __name__ == "__main__":
    main()
