"""The evidence a reviewer checks besides the front: the trivial baseline, the naive swaps on the
held-out split, per-label precision and recall with the confusion against the incumbent and collapse
warnings (classifiers), and the largest slice drops with the decision's config always in them.

One model (`Section`: a title, columns, rows, notes) built from a `StudyReport`, rendered by the
terminal, the markdown artifact and the HTML page alike (`sections`), so the three say the same.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

from offramp.tasks.evidence.report import StudyReport, fmt


@dataclasses.dataclass(frozen=True)
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = dataclasses.field(default_factory=list)  # lines shown after the table (warnings first)


def focus_trial_id(r: StudyReport) -> int | None:
    """The config the decision is about: the selected one, else the least bad one it names."""
    sel = r.selection
    return sel.get("trial_id") if sel.get("trial_id") is not None else sel.get("recommended_trial_id")


def slice_drops(r: StudyReport, limit: int) -> list[dict[str, Any]]:
    """The largest slice drops (test), worst first: always the decision's config's worst slices (half
    the rows, at least one), the other rows the worst of the rest (any config). A table cut to the
    `limit` worst overall could leave the decision's config out entirely."""
    slices = sorted((x for x in r.regressions if x["slice_field"] != "(all)"), key=lambda x: (x["diff"], x["trial_id"]))
    focus = focus_trial_id(r)
    mine = [x for x in slices if x["trial_id"] == focus][: max(1, limit // 2)]
    keep = mine + [x for x in slices if not any(x is m for m in mine)][: limit - len(mine)]
    return sorted(keep, key=lambda x: (x["diff"], x["trial_id"]))


def trivial_section(r: StudyReport) -> Section | None:
    trivial = r.selection.get("trivial")
    if not trivial:
        return None
    floor = trivial["quality"]
    answer = trivial.get("answer")
    kept_off = [t for t in r.trials if t.split == "dev" and t.role in ("candidate", "naive_swap") and t.status in ("completed", "pruned")
                and t.measurement.quality is not None
                and max(t.measurement.quality_ci_high if t.measurement.quality_ci_high is not None else t.measurement.quality,
                        t.measurement.quality) <= floor]  # pruned: racing stopped it at the stage that showed it
    said = f"always answering {json.dumps(answer, sort_keys=True, default=str)}" if answer is not None else "no trivial answer"
    off = ", ".join(f"trial {t.trial_id}" + (" (stopped early)" if t.status == "pruned" else "") for t in kept_off)
    notes = [f"Trivial baseline: {said} scores {floor:.3f} on dev ({trivial['rule']}). A config whose dev quality interval does "
             f"not exceed it never enters the front" + (f"; kept off: {off}." if kept_off else "; none was kept off.")]
    return Section("Trivial baseline", [], [], notes)


def naive_section(r: StudyReport) -> Section | None:
    """Every naive swap: its dev numbers, whether it is on the front, its held-out check and verdict."""
    naive = [t for t in r.trials if t.split == "dev" and t.role == "naive_swap"]
    if not naive:
        return None
    verdicts = {v["trial_id"]: v for v in r.selection.get("verdicts", [])}
    rows = []
    for t in naive:
        test, o, v = r.test_of(t.trial_id), r.overall(t.trial_id), verdicts.get(t.trial_id)
        verdict = "-" if v is None else ("accepted" if v["accepted"] else "rejected") + (" (reference)" if v.get("reference") else "")
        if r.selection.get("trial_id") == t.trial_id:
            verdict = "selected"
        rows.append([str(t.trial_id), t.model, f"{fmt(t.measurement.quality)} ({t.status})", "yes" if r.on_front(t) else "no",
                     fmt(test and test.measurement.quality),
                     "-" if o is None else f"{o['diff']:+.3f} [{o['diff_ci_low']:+.3f}, {o['diff_ci_high']:+.3f}]", verdict])
    notes = [f"trial {v['trial_id']} ({v['config']}): {'accepted' if v['accepted'] else 'rejected'}: {v['why']}"
             for v in r.selection.get("verdicts", []) if v.get("reference")]
    return Section("Would just swapping the model do? Naive swaps (the incumbent's prompt and settings on another model), "
                   "held-out test split", ["trial", "model", "dev quality", "on front", "test quality", "vs incumbent [95% CI]", "verdict"],
                   rows, notes)


def label_sections(r: StudyReport) -> list[Section]:
    """Per-label precision / recall of the incumbent and each confirmed config, collapse warnings,
    and where each candidate's answers differ from the incumbent's (its most frequent pairs)."""
    ev = r.selection.get("labels")
    if not ev:
        return []
    configs = ev["configs"]
    cells = {(x["trial_id"], x["label"]): x for x in ev["per_label"]}
    name = {c["trial_id"]: ("incumbent" if c["role"] == "incumbent" else f"trial {c['trial_id']}") for c in configs}
    rows = []
    for label in ev["labels"]:
        n_gold = next((cells[(c["trial_id"], label)]["n_gold"] for c in configs if (c["trial_id"], label) in cells), 0)
        row = [label, str(n_gold)]
        for c in configs:
            x = cells.get((c["trial_id"], label), {})
            row.append(f"{fmt(x.get('precision'), 2)} / {fmt(x.get('recall'), 2)} ({x.get('n_answered', 0)})")
        rows.append(row)
    warnings = [f"COLLAPSE: {'the incumbent' if w['role'] == 'incumbent' else 'trial ' + str(w['trial_id'])} ({w['config']}) {w['why']}"
                for w in ev["collapse"]]
    out = [Section(f"Per label on the test split: precision / recall (answers given) of `{ev['field']}`",
                   ["label", "gold n", *[name[c["trial_id"]] for c in configs]], rows, warnings)]
    pairs = []
    for c in configs[1:]:
        differ = [x for x in ev["confusion"] if x["trial_id"] == c["trial_id"] and x["incumbent_answer"] != x["candidate_answer"]]
        pairs += [[name[c["trial_id"]], x["incumbent_answer"], x["candidate_answer"], str(x["n"])] for x in differ[:5]]
    if pairs:
        out.append(Section("Where the answers differ from the incumbent's (test; most frequent pairs, full matrix: v_label_confusion)",
                           ["config", "incumbent said", "candidate said", "n"], pairs))
    return out


def sections(r: StudyReport) -> list[Section]:
    return [s for s in [trivial_section(r), naive_section(r), *label_sections(r)] if s is not None]


def markdown_lines(r: StudyReport) -> list[str]:
    lines: list[str] = []
    for s in sections(r):
        lines += ["", f"**{s.title}**", ""] if s.columns else [""]
        if s.columns:
            lines += ["| " + " | ".join(s.columns) + " |", "|" + "---|" * len(s.columns)]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in s.rows]
        lines += [f"- {n}" if s.columns else n for n in s.notes]
    return lines


def html_parts(r: StudyReport) -> list[str]:
    parts = []
    for s in sections(r):
        if s.columns:
            parts.append(f"<h2>{html.escape(s.title)}</h2><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in s.columns) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in s.rows) + "</table>")
        parts += [f"<p><b>{html.escape(n)}</b></p>" for n in s.notes]
    return parts


def render_terminal(console, r: StudyReport) -> None:
    """The sections in a terminal (rich)."""
    from rich.markup import escape
    from rich.table import Table

    for s in sections(r):
        if s.columns:
            table = Table(*s.columns, title=s.title)
            for row in s.rows:
                table.add_row(*[escape(c) for c in row])
            console.print(table)
        for n in s.notes:
            console.print(f"[bold yellow]{escape(n)}[/]" if n.startswith("COLLAPSE") else escape(n), soft_wrap=True)
