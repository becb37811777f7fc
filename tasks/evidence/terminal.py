"""The migration report in a terminal (rich), for `offramp report` and the end of `offramp migrate`:
the sections of the report model (`tasks/evidence/reviewer.py`), the same cells as the markdown
artifact, the table artifacts and the HTML page (`tasks/evidence/render.py`)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from offramp.tasks.evidence.report import StudyReport
from offramp.tasks.evidence.reviewer import sections

_WIDE = {"config", "input", "incumbent", "candidate", "verdict"}  # the columns that wrap first; numbers never wrap


def render_report(console: Console, r: StudyReport) -> None:
    for s in sections(r):
        if s.key == "decision":
            colour = "green" if r.selection.get("trial_id") is not None else "yellow"
            console.print(f"[bold]{escape(s.title)}[/]", soft_wrap=True)
            for i, n in enumerate(s.notes):
                console.print(f"[bold {colour}]{escape(n)}[/]" if i == 0 else escape(n), soft_wrap=True)
            continue
        console.print(f"[bold]{escape(s.title)}[/]", soft_wrap=True)
        for n in s.notes:  # notes first: counts, warnings, where the rest is
            n = n.replace("**", "")
            console.print(f"[bold yellow]{escape(n)}[/]" if n.startswith(("COLLAPSE", "warning")) else escape(n), soft_wrap=True)
        if s.columns:
            table = Table()
            for c in s.columns:
                table.add_column(c, overflow="fold", no_wrap=c not in _WIDE)
            for row in s.rows:
                table.add_row(*[escape(c) for c in row])
            console.print(table)
        for n in s.after:
            console.print(escape(n), soft_wrap=True)
