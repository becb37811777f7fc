"""What the CLI shows while a study runs, fed by the flow's progress events (`trials.notify`).

- On a terminal (`ProgressView`): a study bar ("search trial k of N", spend against the cap, ETA)
  and one bar per trial stage with its own ETA; a finished stage shows its quality, a pruned one
  ends as pruned where racing stopped it.
- Not a terminal (CI, a log file, a Prefect worker: `ProgressLines`): one line per finished trial
  stage, flushed at once: trial, role, split, config, quality, cost, latency, elapsed, spend, ETA.
- The libraries' own logs go to a file (`library_logs_to_file`), not over either.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rich.console import Console

from offramp.tasks.evidence.report import fmt

LIBRARY_LOGGERS = ("dspy", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "optuna")


def library_logs_to_file() -> Path:
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


class _Tally:
    """What both views count: search trials done of the budget, spend against the cap, ETA."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.max_trials: int | None = None
        self.searched = 0
        self.spent_usd = 0.0
        self.cap_usd: float | None = None

    def start(self, data: dict) -> None:
        self.max_trials = data["trials"]
        self.spent_usd = float(data.get("spent_usd") or 0.0)
        self.cap_usd = data.get("max_spend_usd")

    def finish(self, trial) -> None:
        self.spent_usd += trial.measurement.spend_usd or 0.0
        if trial.optuna_number is not None:
            self.searched += 1

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def eta_s(self) -> float | None:
        if not self.searched or not self.max_trials:
            return None
        return self.elapsed_s / self.searched * max(0, self.max_trials - self.searched)

    def spend(self) -> str:
        cap = f" of the ${fmt(self.cap_usd, 4)} cap" if self.cap_usd is not None else ""
        return f"spent ${fmt(self.spent_usd, 4)}{cap}"


def _measured(trial) -> str:
    m = trial.measurement
    if m.quality is None:
        return m.error or ""
    return (f"quality {m.quality:.3f} [{fmt(m.quality_ci_low)}, {fmt(m.quality_ci_high)}], "
            f"${fmt(m.cost_per_1k_usd, 5)}/1k, p95 {fmt(m.latency_p95_s)} s")


class ProgressView:
    """Rich progress on a terminal: the study bar and one bar per trial stage."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )
        self.tally = _Tally()
        self.study_bar: int | None = None
        self.tasks: dict[int, int] = {}

    def _study_description(self) -> str:
        return f"[bold]search trial {self.tally.searched} of {self.tally.max_trials}[/] · {self.tally.spend()}"

    def __call__(self, event: str, data: dict) -> None:
        if event == "study_started":
            self.tally.start(data)
            self.study_bar = self.progress.add_task(self._study_description(), total=data["trials"])
        elif event == "trial_started":
            description = f"trial {data['trial_id']:>2} {data['split']:<4} {data['label']}"
            self.tasks[data["trial_id"]] = self.progress.add_task(description, total=data["total"])
        elif event == "call_done" and data["trial_id"] in self.tasks:
            self.progress.advance(self.tasks[data["trial_id"]])
        elif event == "trial_finished":
            self._finished(data["trial"])

    def _finished(self, t) -> None:
        self.tally.finish(t)
        if self.study_bar is not None:
            self.progress.update(self.study_bar, completed=self.tally.searched, description=self._study_description())
        task_id = self.tasks.get(t.trial_id)
        if task_id is None:
            return
        quality = "failed" if t.measurement.quality is None else f"quality {t.measurement.quality:.3f}"
        done = self.progress.tasks[self.progress.task_ids.index(task_id)].completed
        if t.status == "pruned":  # racing stopped it: the bar ends where it stopped
            quality = f"[yellow]pruned[/] at {int(done)} ({quality})"
            self.progress.update(task_id, total=done)
        self.progress.update(task_id, description=f"trial {t.trial_id:>2} {t.split:<4} {t.label}  [bold]{quality}[/]")


class ProgressLines:
    """Not a terminal: one line per finished trial stage, with the elapsed time, the spend against
    the cap and, for search trials, how many of the budget are done and an ETA."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tally = _Tally()

    def __call__(self, event: str, data: dict) -> None:
        if event == "study_started":
            self.tally.start(data)
            cap = f", spend cap ${fmt(self.tally.cap_usd, 4)}" if self.tally.cap_usd is not None else ""
            self._line(f"study {data['study_id']}: up to {data['trials']} search trials; "
                       f"dev {data['dev']}, test {data['test']} examples{cap}")
        elif event == "trial_finished":
            t = data["trial"]
            self.tally.finish(t)
            progress = ""
            eta = self.tally.eta_s()
            if t.optuna_number is not None and eta is not None:
                progress = f", search trial {self.tally.searched} of at most {self.tally.max_trials}, search ETA {eta:.0f} s"
            self._line(f"[{self.tally.elapsed_s:6.0f} s] trial {t.trial_id} {t.role} {t.split} {t.label}: {t.status}, "
                       f"{_measured(t)}{progress}; {self.tally.spend()}")

    def _line(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)
        self.console.file.flush()  # a pipe or a file is block-buffered: the line must be there now
