"""`offramp`: a thin command line over the flows and tasks.

Heavy libraries (prefect, litellm) are imported inside the commands that need them, so
`offramp sql` and `offramp --help` start fast.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from offramp.tasks.evidence.report import fmt as _fmt
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


class _ProgressLines:
    """Not a terminal (CI, a log file, a Prefect worker): one line per trial as it finishes, with
    the elapsed time and, for search trials, how many of the budget are done and an ETA."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.max_trials: int | None = None
        self.searched = 0

    def __call__(self, event: str, data: dict) -> None:
        if event == "study_started":
            self.max_trials = data["trials"]
            self._line(f"study {data['study_id']}: up to {data['trials']} search trials; dev {data['dev']}, test {data['test']} examples")
        elif event == "trial_finished":
            t, m = data["trial"], data["trial"].measurement
            elapsed = time.monotonic() - self.started
            progress = ""
            if t.optuna_number is not None and self.max_trials:
                self.searched += 1
                eta = elapsed / self.searched * max(0, self.max_trials - self.searched)
                progress = f", search trial {self.searched} of at most {self.max_trials}, search ETA {eta:.0f} s"
            measured = (f"quality {m.quality:.3f} [{_fmt(m.quality_ci_low)}, {_fmt(m.quality_ci_high)}], "
                        f"${_fmt(m.cost_per_1k_usd, 5)}/1k, p95 {_fmt(m.latency_p95_s)} s") if m.quality is not None else m.error or ""
            self._line(f"[{elapsed:6.0f} s] trial {t.trial_id} {t.role} {t.split} {t.label}: {t.status}, {measured}{progress}")

    @staticmethod
    def _line(text: str) -> None:
        console.print(text, soft_wrap=True, markup=False, highlight=False)
        console.file.flush()  # a pipe or a file is block-buffered: the line must be there now


LIBRARY_LOGGERS = ("dspy", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "optuna")


def _library_logs_to_file() -> Path:
    """The libraries' own logs (DSPy's parse errors while it compiles, litellm's, httpx's) go to
    `<state dir>/logs/libraries.log`, not over the user's progress and report. Call after the
    libraries are imported: DSPy installs its stderr handler when it is imported."""
    from offramp.warehouse import state_dir

    path = state_dir() / "logs" / "libraries.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    return path


def _run_migration(params) -> object:
    # The progress says what happens; Prefect's per-task INFO lines would interleave with it.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from offramp.flows import migrate_feature as mf

    prepared = mf.preflight(mf.study_inputs(params))  # bad input fails here, fast, before Prefect starts
    mf.check_spend_cap(params, prepared)
    _library_logs_to_file()

    if not console.is_terminal:
        lines = _ProgressLines()
        mf.LISTENERS.append(lines)
        try:
            return mf.migrate_feature(params)
        finally:
            mf.LISTENERS.remove(lines)
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
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL (default: sqlite in the state dir)")] = None,
    new_study: Annotated[bool, typer.Option("--new-study", help="do not resume an interrupted identical study")] = False,
    max_error_rate: Annotated[float, typer.Option(
        "--max-error-rate", help="hard limit, 0..1: a config whose calls fail more often than this is infeasible"
    )] = 0.2,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds one model call may take (> 0)")] = 60.0,
) -> None:
    """Run a migration study now (ephemeral Prefect, or the server in PREFECT_API_URL). Running
    the same command again after a crash resumes the study."""
    from offramp.flows.params import GatewayParams, MigrateParams

    params = _checked("migrate", lambda: MigrateParams(
        feature_dir=str(feature_dir), deprecated_model=deprecated, space=space, max_examples=max_examples,
        prices_file=str(prices) if prices else None, seed=seed, trigger="cli", max_spend_usd=max_spend, raise_cap=raise_cap,
        max_trials=max_trials, max_wall_s=max_wall, parallel=parallel, sampler=sampler, racing=racing,
        optuna_storage=storage, new_study=new_study, max_error_rate=max_error_rate,
        gateway=GatewayParams(concurrency=concurrency, timeout_s=timeout),
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
    """Query the warehouse, read-only (works while a study is writing). The query can read the
    warehouse only: no file is written (COPY ... TO, EXPORT DATABASE) or read, nothing attached."""
    from offramp.warehouse import Warehouse, warehouse_path

    if fmt not in ("table", "csv", "json"):
        raise _usage(f"--format must be table, csv or json, not {fmt!r}")
    import duckdb

    try:
        columns, rows = Warehouse(warehouse_path(), read_only=True).fetch(query)  # locked down: no file written or read
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


_OPTION_OF_FIELD = {
    "deprecated_model": "--deprecated", "max_examples": "--max-examples", "prices_file": "--prices",
    "concurrency": "--concurrency", "seed": "--seed", "max_spend_usd": "--max-spend", "max_trials": "--max-trials",
    "max_wall_s": "--max-wall", "parallel": "--parallel", "sampler": "--sampler", "optuna_storage": "--storage",
    "max_error_rate": "--max-error-rate", "timeout_s": "--timeout",
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


# notify, watch and serve (the deprecation watch and the deployments) register themselves on `app`
from offramp.flows import cli_watch  # noqa: E402, F401

if __name__ == "__main__":
    # `python -m offramp.flows.cli`: run the imported module, on whose `app` every command registered
    from offramp.flows.cli import main as registered_main

    registered_main()
