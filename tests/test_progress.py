"""The CLI's progress views, fed the flow's events by hand (the CLI tests run them for real)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from offramp.flows.progress import ProgressLines, ProgressView
from offramp.warehouse.records import Trial, TrialMeasurement


def _trial(trial_id: int, status: str, quality: float, spend: float, number: int | None) -> Trial:
    m = TrialMeasurement(status=status, n_examples=10, quality=quality, spend_usd=spend)
    return Trial(trial_id=trial_id, role="candidate", split="dev", label=f"config {trial_id}", model="m",
                 measurement=m, optuna_number=number)


def _feed(view) -> None:
    view("study_started", {"study_id": "s1", "trials": 4, "dev": 10, "test": 10, "spent_usd": 0.5, "max_spend_usd": 2.0})
    for trial_id, status in ((1, "completed"), (2, "pruned")):
        view("trial_started", {"trial_id": trial_id, "split": "dev", "label": f"config {trial_id}", "total": 10})
        for _ in range(10 if status == "completed" else 3):
            view("call_done", {"trial_id": trial_id, "error": False, "cache_hit": False})
        view("trial_finished", {"trial": _trial(trial_id, status, 0.8, 0.25, trial_id)})


def test_the_terminal_view_counts_search_trials_and_spend_and_ends_a_pruned_bar_where_it_stopped():
    view = ProgressView(Console(file=io.StringIO(), force_terminal=True, width=200))
    _feed(view)
    tasks = {t.id: t for t in view.progress.tasks}
    study = tasks[view.study_bar]
    assert (study.completed, study.total) == (2, 4)
    assert "search trial 2 of 4" in study.description and "spent $1.0000 of the $2.0000 cap" in study.description
    pruned = tasks[view.tasks[2]]
    assert pruned.finished and pruned.total == 3 and "pruned[/] at 3" in pruned.description
    assert tasks[view.tasks[1]].finished and "quality 0.800" in tasks[view.tasks[1]].description


def test_off_a_terminal_every_finished_stage_is_a_line_with_spend_against_the_cap():
    out = io.StringIO()
    _feed(ProgressLines(Console(file=out, width=200)))
    lines = out.getvalue().splitlines()
    assert lines[0] == "study s1: up to 4 search trials; dev 10, test 10 examples, spend cap $2.0000"
    assert re.search(r"search trial 1 of at most 4, search ETA \d+ s; spent \$0\.7500 of the \$2\.0000 cap$", lines[1])
    assert ": pruned, quality 0.800" in lines[2] and lines[2].endswith("spent $1.0000 of the $2.0000 cap")
