"""`offramp`: a thin command line over the flows and tasks.

Heavy libraries (prefect, litellm) are imported inside the commands that need them, so
`offramp sql` and `offramp --help` start fast.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from offramp import stopping
from offramp.flows import supervise
from offramp.flows.progress import ProgressLines, ProgressView, library_logs_to_file
from offramp.tasks.evidence.report import fmt as _fmt
from offramp.util import password_to_environment
from offramp.warehouse.home import configure_environment

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




def _user_errors_once(record: logging.LogRecord) -> bool:
    """Drop Prefect's "Encountered exception during execution" record (with its traceback) for a
    user error raised inside the flow (e.g. the preflight call refusing the study): `main` prints
    it as its one `error:` line. `--debug` keeps it."""
    from offramp.errors import OfframpError

    exc = record.exc_info[1] if record.exc_info else None
    return _DEBUG or not isinstance(exc, OfframpError)


def _run_migration(params) -> object:
    # The progress says what happens; Prefect's per-task INFO lines would interleave with it.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from offramp.flows import migrate_feature as mf

    logging.getLogger("prefect.flow_runs").addFilter(_user_errors_once)

    prepared = mf.preflight(mf.study_inputs(params))  # bad input fails here, fast, before Prefect starts
    mf.check_spend_cap(params, prepared)
    library_logs_to_file()
    supervise.start_prefect_server()  # its own session: a signal stops the study first, then the server
    for name in supervise.mark_dead_runs_crashed():
        err_console.print(f"flow run {name!r} was left running by a killed process: marked CRASHED", markup=False)

    if not console.is_terminal:
        lines = ProgressLines(console)
        mf.LISTENERS.append(lines)
        try:
            return supervise.run_flow(lambda: mf.migrate_feature(params))
        finally:
            mf.LISTENERS.remove(lines)
    view = ProgressView(console)
    mf.LISTENERS.append(view)
    try:
        with view.progress:
            return supervise.run_flow(lambda: mf.migrate_feature(params))
    finally:
        mf.LISTENERS.remove(view)


def _print_study(summary) -> None:
    """After a study: the report (from the warehouse), where it is, and a query to paste."""
    from offramp.tasks.evidence.report import load_report
    from offramp.tasks.evidence.terminal import render_report
    from offramp.warehouse import Warehouse

    if summary.notice:
        console.print(summary.notice, soft_wrap=True)
    elif summary.resumed:
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


PolicyOption = Annotated[Optional[Path], typer.Option(
    "--policy", help="selection policy: a YAML of the policy's fields (quality_rule, quality_tolerance, max_slice_drop, ...)"
)]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="check everything, print the plan, its worst-case cost and time estimate; no call, no Prefect"
)]


def _policy_path(policy: Path | None) -> str | None:
    return str(policy.expanduser().resolve()) if policy is not None else None


def _print_plan(params) -> None:
    """`--dry-run`: preflight (every check a study makes before it pays), then the plan."""
    from offramp.flows import migrate_feature as mf
    from offramp.tasks.study.plan import plan_study, render_plan

    prepared = mf.preflight(mf.study_inputs(params))
    render_plan(console, plan_study(prepared, params))


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
    max_spend: Annotated[Optional[float], typer.Option(
        "--max-spend", help="spend cap in USD for the whole study, across its resumes (kept by a rerun)"
    )] = None,
    raise_cap: Annotated[bool, typer.Option(
        "--raise-cap", help="let --max-spend raise the cap a resumed study recorded (the report lists every raise)"
    )] = False,
    max_trials: Annotated[int, typer.Option("--max-trials", min=1, help="search trials (naive swaps included)")] = 16,
    max_wall: Annotated[Optional[float], typer.Option("--max-wall", help="seconds after which no new trial starts")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="trials evaluated at once")] = 1,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe | nsga2 | random")] = "tpe",
    racing: Annotated[bool, typer.Option("--racing/--no-racing", help="stop hopeless trials early")] = True,
    storage: Annotated[Optional[str], typer.Option("--storage", help=(
        "Optuna storage URL (default: sqlite in the state dir); a PostgreSQL password moves to PGPASSWORD, never stored"
    ))] = None,
    new_study: Annotated[bool, typer.Option("--new-study", help="do not resume an interrupted identical study")] = False,
    max_error_rate: Annotated[float, typer.Option(
        "--max-error-rate", help="hard limit, 0..1: a config whose calls fail more often than this is infeasible"
    )] = 0.2,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds one model call may take (> 0)")] = 60.0,
    policy: PolicyOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Run a migration study now (ephemeral Prefect, or the server in PREFECT_API_URL). Running
    the same command again after a crash resumes the study. `--dry-run`: check everything and
    print the plan, its worst-case price and time estimate, without a call."""
    from offramp.flows.params import GatewayParams, MigrateParams

    params = _checked("migrate", lambda: MigrateParams(
        feature_dir=str(feature_dir), deprecated_model=deprecated, space=space, max_examples=max_examples,
        prices_file=str(prices) if prices else None, seed=seed, trigger="cli", max_spend_usd=max_spend, raise_cap=raise_cap,
        max_trials=max_trials, max_wall_s=max_wall, parallel=parallel, sampler=sampler, racing=racing,
        optuna_storage=password_to_environment(storage) if storage else None, new_study=new_study,
        max_error_rate=max_error_rate, gateway=GatewayParams(concurrency=concurrency, timeout_s=timeout),
        policy_file=_policy_path(policy),
    ))
    if dry_run:
        return _print_plan(params)
    summary = _run_migration(params)
    _print_study(summary)
    _exit_if_unfinished(summary)


STUDY_UNFINISHED_EXIT = 3  # the study ended without a usable result: an endpoint down, or every trial failed


def _exit_if_unfinished(summary) -> None:
    """A study that stopped because an endpoint stayed down (`provider_down`), or whose every search
    trial failed (`all_trials_failed`), has printed its report; one line says why, and the exit code is 3."""
    if getattr(summary, "status", None) in ("provider_down", "all_trials_failed"):
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] study {summary.study_id} ended {summary.status}: {escape(summary.error or '')}",
                          soft_wrap=True)
        raise typer.Exit(STUDY_UNFINISHED_EXIT)


# The bundled demos: feature folder -> (the model it retires, its search space, dev/test cap, trials).
DEMOS = {
    "bank-support-routing": ("local/smollm2-135m", "local-zoo", 40, 10),
    "math-tutor": ("local/smollm2-135m", None, 16, 4),  # None: the feature's own `search_space`
}


@app.command()
def demo(
    feature: Annotated[str, typer.Option(
        "--feature", help="the bundled feature to migrate: bank-support-routing (labels, gold answers) or math-tutor "
        "(free text, no gold: judged pairwise, calibrated, with a production sample)")] = "bank-support-routing",
    max_examples: Annotated[Optional[int], typer.Option(
        "--max-examples", min=1, help="dev and test size cap (default: 40 for bank-support-routing, 16 for math-tutor)")] = None,
    max_trials: Annotated[Optional[int], typer.Option(
        "--max-trials", min=1, help="search trials (default: 10 for bank-support-routing, 4 for math-tutor)")] = None,
    keep_models: Annotated[bool, typer.Option("--keep-models", help="leave the model servers running")] = False,
    policy: PolicyOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Offline, on the real local models: migrate a bundled feature off its retiring model
    (SmolLM2 135M) and print the front and the chosen config."""
    from offramp.flows.params import GatewayParams, MigrateParams
    from offramp.tasks.gateway import local_models
    from offramp.warehouse import state_dir

    home = state_dir()
    if feature not in DEMOS:
        raise _usage(f"--feature must be one of {', '.join(DEMOS)}, not {feature!r}")
    deprecated, space, default_examples, default_trials = DEMOS[feature]
    bundled = resources.files("offramp.features") / feature

    def demo_params(**extra) -> MigrateParams:
        return _checked("demo", lambda: MigrateParams(
            feature_dir=str(bundled), deprecated_model=deprecated, space=space, max_examples=max_examples or default_examples,
            max_trials=max_trials or default_trials, trigger="demo", gateway=GatewayParams(concurrency=2), policy_file=_policy_path(policy), **extra,
        ))

    if dry_run:  # no model server started
        return _print_plan(demo_params(start_local_models=False))
    console.print(f"[bold]offramp demo[/]: state in {home}")
    already = {s.alias for s in local_models.status(home) if s.healthy}
    with console.status("starting the local model servers (llama.cpp)..."):
        started = local_models.up(None, home)
    console.print("models up: " + ", ".join(f"{s.alias} ({s.api_base})" for s in started))
    try:
        params = demo_params()
        _print_study(_run_migration(params))
    finally:
        if not keep_models:
            stopped = local_models.down([a for a in local_models.zoo() if a not in already], home)
            if stopped:
                console.print(f"stopped the model servers this demo started: {', '.join(stopped)}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="one SQL statement (read-only)")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json | lines (one field per line, for wide rows)")] = "table",
    vertical: Annotated[bool, typer.Option("--vertical", "-x", help="same as --format lines")] = False,
) -> None:
    """Query the warehouse, read-only (works while a study is writing). The query can read the
    warehouse only: no file is written (COPY ... TO, EXPORT DATABASE) or read, nothing attached.
    JSON columns stay JSON in `--format json`; `--format lines` prints every field of a row whole."""
    from offramp.flows.sql_output import as_json, as_lines
    from offramp.warehouse import Warehouse, warehouse_path

    fmt = "lines" if vertical else fmt
    if fmt not in ("table", "csv", "json", "lines"):
        raise _usage(f"--format must be table, csv, json or lines, not {fmt!r}")
    import duckdb

    try:
        columns, types, rows = Warehouse(warehouse_path(), read_only=True).fetch_typed(query)  # locked down: no file written or read
    except duckdb.Error as exc:
        raise _usage(f"query failed: {exc}") from None
    if fmt == "lines":
        sys.stdout.write(as_lines(columns, rows))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    elif fmt == "json":
        sys.stdout.write(as_json(columns, types, rows))
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
    from offramp.tasks.evidence.render import write_html
    from offramp.tasks.evidence.report import load_report
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
    force: Annotated[bool, typer.Option("--force", help="promote a trial that is not on the front or that the policy did not accept")] = False,
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


_OPTION_OF_FIELD = {
    "deprecated_model": "--deprecated", "max_examples": "--max-examples", "prices_file": "--prices",
    "concurrency": "--concurrency", "seed": "--seed", "max_spend_usd": "--max-spend", "max_trials": "--max-trials",
    "max_wall_s": "--max-wall", "parallel": "--parallel", "sampler": "--sampler", "optuna_storage": "--storage",
    "max_error_rate": "--max-error-rate", "timeout_s": "--timeout", "policy_file": "--policy",
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


def _usage(message: str) -> Exception:
    """A usage mistake the CLI found itself: `main` prints it like any other user error (exit 2)."""
    from offramp.errors import UserError

    return UserError(message)


def main() -> None:
    """Console entry point. An `OfframpError` is the user's to fix: its message on one line and
    exit 2 (`--debug`: the traceback). A usage mistake (unknown option or command, missing
    argument) gets click's short usage message and exit 2; bare `offramp` prints the help and
    exits 2, as click does standalone. Anything else is a bug: Python's traceback, exit 1."""
    from rich.markup import escape

    from offramp.errors import OfframpError

    supervise.install_signal_handlers()  # SIGINT/SIGTERM: stop, record, exit 130/143 (flows/supervise.py)
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
    except stopping.Interrupted as exc:
        resume = " The study is recorded as interrupted: run the same command again to resume it." if exc.resumable else ""
        supervise.exit_interrupted(exc, f"offramp: {exc}.{resume}")
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


# notify, watch and serve (the deprecation watch and the deployments) register themselves on `app`
from offramp.flows import cli_slices, cli_watch  # noqa: E402, F401

if __name__ == "__main__":
    # `python -m offramp.flows.cli`: run the imported module, on whose `app` every command registered
    from offramp.flows.cli import main as registered_main

    registered_main()
