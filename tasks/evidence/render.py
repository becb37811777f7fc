"""The report model (`tasks/evidence/reviewer.py`: sections) rendered as markdown (the Prefect
markdown artifact), as table rows (the Prefect table artifacts) and as a standalone HTML page (plotly
embedded: it opens offline). The terminal renders the same sections (`tasks/evidence/terminal.py`).
No renderer computes a number: each shows the cells of the same sections."""

from __future__ import annotations

import html
from pathlib import Path

from offramp.tasks.evidence.report import StudyReport, load_report
from offramp.tasks.evidence.reviewer import Section, section, sections
from offramp.warehouse import Warehouse


def _plain(line: str) -> str:
    return line.replace("**", "")


def markdown(r: StudyReport) -> str:
    lines: list[str] = []
    for s in sections(r):
        lines += [f"# {s.title}" if s.key == "decision" else f"### {s.title}", ""]
        for n in s.notes:  # notes first: counts, warnings, where the rest is
            lines += [n, ""] if not n.lstrip().startswith("- ") else [n]
        if s.columns:
            lines += ["", "| " + " | ".join(s.columns) + " |", "|" + "---|" * len(s.columns)]
            lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in s.rows]
        lines += ["", *s.after] if s.after else []
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _html_table(s: Section) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in s.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in s.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_notes(notes: list[str]) -> str:
    if any(n.startswith(("-", " ")) for n in notes):  # a list, nested by indentation: as written
        return "<pre class='notes'>" + html.escape("\n".join(_plain(n) for n in notes)) + "</pre>"
    return "".join(f"<p class='{'warn' if n.startswith(('COLLAPSE', 'warning')) else 'note'}'>{html.escape(_plain(n))}</p>"
                   for n in notes)


STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;max-width:1500px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;vertical-align:top}
th{background:#f3f3f3;text-align:left}.decision{border-left:8px solid #999;padding:.6em 1em;background:#fafafa;font-size:15px}
.decision.selected{border-color:#2a9d3a}.decision.none{border-color:#d98c00}.warn{color:#a15c00;font-weight:bold}
pre.notes{white-space:pre-wrap;font-size:13px}h2{margin-top:1.4em}details{margin:1em 0}summary{font-size:1.2em;cursor:pointer}"""


def html_page(r: StudyReport) -> str:
    from offramp.tasks.evidence.figures import front_figure, slice_figure

    figures = {"verdicts": front_figure(r), "slices": slice_figure(r)}
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>offramp study {html.escape(r.study_id)}</title>",
            f"<style>{STYLE}</style></head><body>"]
    plotly_js = True
    for s in sections(r):
        if s.key == "decision":
            tone = "selected" if r.selection.get("trial_id") is not None else "none"
            page.append(f"<h1>{html.escape(s.title)}</h1><div class='decision {tone}'>{_html_notes(s.notes)}</div>")
            continue
        part = [f"<h2>{html.escape(s.title)}</h2>" if not s.detail else f"<details><summary>{html.escape(s.title)}</summary>"]
        part.append(_html_notes(s.notes))
        part += [_html_table(s)] if s.columns else []
        part += [_html_notes(s.after)] if s.after else []
        if figures.get(s.key) is not None:
            part.append(figures[s.key].to_html(full_html=False, include_plotlyjs=plotly_js))
            plotly_js = False
        part += ["</details>"] if s.detail else []
        page += part
    page.append("</body></html>")
    return "\n".join(page)


def write_html(r: StudyReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(r), encoding="utf-8")
    return path


def table_rows(r: StudyReport, key: str) -> list[dict[str, object]]:
    """A section's rows for a Prefect table artifact (the trial id as a number, every other cell as shown)."""
    return [{c: (int(v) if c == "trial" else v) for c, v in row.items()} for row in section(r, key).records()]


def publish(wh: Warehouse, study_id: str, reports_dir: Path) -> Path:
    """The report of a study, from the warehouse's views: two table artifacts (the verdicts, every
    dev trial) and a markdown artifact on the current Prefect flow run, and a standalone HTML file
    in `reports_dir`. Returns the HTML path."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    report = load_report(wh, study_id)
    path = write_html(report, reports_dir / f"{study_id}.html")
    create_table_artifact(key="migration-verdicts", table=table_rows(report, "verdicts"),
                          description=f"Study {study_id}: every front config's verdict against the incumbent (held-out split)")
    create_table_artifact(key="migration-front", table=table_rows(report, "trials"),
                          description=f"Study {study_id}: every dev trial; front marks the Pareto front")
    create_markdown_artifact(key="migration-report", markdown=markdown(report) + f"\nHTML report: `{path}`\n",
                             description=f"Study {study_id}: the decision, verdicts, slices, flips and the rest of the evidence")
    return path
