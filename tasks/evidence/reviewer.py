"""The migration report as one model: an ordered list of `Section`s (a title, columns, rows of
formatted cells, notes) built from a `StudyReport`. Every surface renders this list and nothing else
(`tasks/evidence/render.py`: markdown artifact, table artifacts, HTML page; `tasks/evidence/terminal.py`:
the terminal), so the four say the same numbers; the HTML page adds the two figures
(`tasks/evidence/figures.py`), drawn from the same `StudyReport`.

What a reviewer reads first: the decision (what was chosen or why nothing was, the policy, what
stopped the study short), then the verdict table (every front config: verdict, its held-out numbers
against the incumbent, what failed and by how much), then the largest slice drops labelled by
config, the decision's config's flips (capped; the full list is a query), and the rest of the
evidence: power, the trivial baseline, the naive swaps, per-label evidence for classifiers,
discovered slices, the judge, composites, production samples, models, calls, spend, every dev trial
(the table artifact) and the queries that re-derive every number.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from offramp.tasks.evidence import display
from offramp.tasks.evidence.judged import calibration_line, judge_lines, unparsed_total
from offramp.tasks.evidence.latency import latency_note
from offramp.tasks.evidence.report import StudyReport, fmt
from offramp.tasks.evidence.samples_report import sample_lines
from offramp.tasks.evidence.verdicts import PowerRow, power_lines, verdict_interval, verdict_text

FLIPS_SHOWN = 20  # the decision's config's flips shown in every surface; the rest is a query (one study had 956)
SLICES_SHOWN = 8  # the largest slice drops shown; every slice: v_regressions


@dataclasses.dataclass(frozen=True)
class Section:
    key: str  # stable name: what a test or a renderer looks a section up by
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = dataclasses.field(default_factory=list)  # lines shown before the table: counts, warnings
    detail: bool = False  # the HTML page folds it (the reference material after the evidence)
    after: list[str] = dataclasses.field(default_factory=list)  # lines shown after the table: a row's reasons

    def records(self) -> list[dict[str, str]]:
        """The rows as column -> cell (a Prefect table artifact)."""
        return [dict(zip(self.columns, row)) for row in self.rows]


def _diff(o: dict[str, Any] | None) -> str:
    return "-" if o is None else f"{o['diff']:+.3f} [{o['diff_ci_low']:+.3f}, {o['diff_ci_high']:+.3f}]"


def _config(r: StudyReport, trial_id: int) -> str:
    """A trial's config in words ("-": not a trial of the report)."""
    return next((t.label for t in r.trials if t.trial_id == trial_id), "-")


def config_name(r: StudyReport, trial_id: int) -> str:
    """A config as every section names it: its trial id and its config in words."""
    return f"trial {trial_id}: {_config(r, trial_id)}"


def focus_trial_id(r: StudyReport) -> int | None:
    """The config the decision is about: the selected one, else the least bad one it names."""
    sel = r.selection
    return sel.get("trial_id") if sel.get("trial_id") is not None else sel.get("recommended_trial_id")


def decision_section(r: StudyReport) -> Section:
    s, sel = r.study, r.selection
    chosen = sel.get("trial_id")
    if chosen is not None:
        head = f"SELECTED trial {chosen} ({_config(r, chosen)})"
    elif s.get("status") == "completed":
        least = sel.get("recommended_trial_id")
        head = "NO SAFE CONFIG" + (f" (least bad: trial {least}, {_config(r, least)})" if least is not None else "")
    else:
        head = f"NO DECISION (study {s.get('status')})"
    notes = [f"Decision: {head}. {sel.get('reason', s.get('error') or '-')}"]
    inc = r.incumbent
    if inc:
        t = r.test_of(inc.trial_id)
        notes.append(f"Incumbent {inc.model}: dev quality {fmt(inc.measurement.quality)}, test quality "
                     f"{fmt(t and t.measurement.quality)}, {display.usd(inc.measurement.cost_per_1k_usd)} per 1k, "
                     f"p95 {display.seconds(inc.measurement.latency_p95_s)}.")
    notes.append(f"Policy: {r.policy}")
    if r.unfinished:
        notes.append(f"Not finished: {r.unfinished}")
    if r.left_out:
        notes.append(r.left_out)
    failed = r.failed_summary()
    if failed and failed not in notes[0]:  # the decision's reason may already say it
        notes.append(f"Failed trials: {failed}")
    return Section("decision", f"Study {r.study_id}: feature {s['feature']}, moving off {s['incumbent_model']} (status {s['status']})",
                   [], [], notes)


VERDICT_COLUMNS = ["trial", "config", "verdict", "test quality", "vs incumbent [95% CI]", "agree", "$ / 1k (test)", "p95 (test)"]


def verdict_section(r: StudyReport) -> Section:
    """Every front config (and any naive swap the policy judged): its verdict, its held-out numbers
    against the incumbent (paired), and what passed or failed by how much (the policy's words)."""
    sel = r.selection
    verdicts = {v["trial_id"]: v for v in sel.get("verdicts", [])}
    not_confirmed = {int(k): why for k, why in sel.get("not_confirmed", {}).items()}
    shown = list(r.front) + [r.trial(i) for i in verdicts if not r.on_front(r.trial(i)) and not verdicts[i].get("reference")]

    def verdict(t) -> str:
        v = verdicts.get(t.trial_id)
        if sel.get("trial_id") == t.trial_id:
            return "SELECTED"
        if v is None:
            return "not confirmed" if t.trial_id in not_confirmed else "-"
        return ("accepted" if v["accepted"] else "REJECTED") + (" (least bad)" if sel.get("recommended_trial_id") == t.trial_id
                                                                and sel.get("trial_id") is None else "")

    said = {t.trial_id: verdict(t) for t in shown}
    order = {"SELECTED": 0, "accepted": 1}
    shown.sort(key=lambda t: (order.get(said[t.trial_id], 2 if said[t.trial_id].startswith("REJECTED") else 3), t.trial_id))
    rows, why = [], []
    for t in shown:
        o, test, v = r.overall(t.trial_id), r.test_of(t.trial_id), verdicts.get(t.trial_id)
        tm = test.measurement if test else None
        rows.append([str(t.trial_id), t.label, said[t.trial_id], display.quality(tm and tm.quality), _diff(o),
                     fmt(o and o["agreement_rate"], 2), display.usd(tm and tm.cost_per_1k_usd), display.seconds(tm and tm.latency_p95_s)])
        why.append(f"- trial {t.trial_id} ({said[t.trial_id]}): " + (v["why"] if v else not_confirmed.get(t.trial_id, "-")))
    notes = [] if rows else ["No config reached the front (see the trivial baseline and the naive swaps below)."]
    return Section("verdicts", "Verdicts: every front config against the incumbent on the held-out test split (paired), under the policy",
                   VERDICT_COLUMNS if rows else [], rows, notes, after=why)


def slice_drops(r: StudyReport, limit: int) -> list[dict[str, Any]]:
    """The largest slice drops (test), worst first: always the decision's config's worst slices (half
    the rows, at least one), the other rows the worst of the rest (any config). A table cut to the
    `limit` worst overall could leave the decision's config out entirely."""
    slices = sorted((x for x in r.regressions if x["slice_field"] != "(all)"), key=lambda x: (x["diff"], x["trial_id"]))
    focus = focus_trial_id(r)
    mine = [x for x in slices if x["trial_id"] == focus][: max(1, limit // 2)]
    keep = mine + [x for x in slices if not any(x is m for m in mine)][: limit - len(mine)]
    return sorted(keep, key=lambda x: (x["diff"], x["trial_id"]))


def slices_section(r: StudyReport) -> Section | None:
    worst = slice_drops(r, SLICES_SHOWN)
    if not worst:
        return None
    rows = [[str(x["trial_id"]), f"{x['slice_field']}={x['slice_value']}", _config(r, x["trial_id"]), str(x["n"]),
             f"{fmt(x['incumbent_quality'])} -> {fmt(x['candidate_quality'])}", _diff(x),
             verdict_interval(x), verdict_text(x), fmt(x.get("detectable_drop"))] for x in worst]
    n_all = sum(1 for x in r.regressions if x["slice_field"] != "(all)")
    return Section("slices", "Largest slice drops (test; verdict on the interval adjusted for the slices judged; detectable: what the "
                   "split could tell before the study, see slice_power)",
                   ["trial", "slice", "config", "n", "incumbent -> candidate", "diff [95% CI]", "adjusted CI", "verdict", "detectable"],
                   rows, [f"{len(rows)} of {n_all} slice comparisons shown; every one: SELECT * FROM v_regressions WHERE study_id = "
                          f"'{r.study_id}' ORDER BY diff"] if n_all > len(rows) else [])


def flips_section(r: StudyReport) -> Section:
    """The decision's config's flips on the held-out split (right -> wrong first), at most
    FLIPS_SHOWN of them, with the counts of every other config and the query for all of them."""
    focus = focus_trial_id(r)
    query = f"SELECT * FROM v_flips WHERE study_id = '{r.study_id}'"
    if focus is None:
        return Section("flips", "Flips (held-out split)", [], [], [
            "No config to show flips for (nothing selected, no least bad one)."
            + (f" {len(r.flips)} flips of other configs: {query}" if r.flips else "")])
    mine = [f for f in r.flips if f["trial_id"] == focus]
    mine.sort(key=lambda f: (f["direction"] != "regressed", f["example_id"]))
    regressed = sum(1 for f in mine if f["direction"] == "regressed")
    notes = [f"Right -> wrong under trial {focus} ({regressed}); wrong -> right ({len(mine) - regressed})."]
    if len(mine) > FLIPS_SHOWN:
        notes.append(f"{FLIPS_SHOWN} of {len(mine)} shown (right -> wrong first); every one: {query} AND trial_id = {focus}")
    others: dict[int, list[int]] = {}
    for f in r.flips:
        if f["trial_id"] != focus:
            counts = others.setdefault(f["trial_id"], [0, 0])
            counts[0 if f["direction"] == "regressed" else 1] += 1
    if others:
        notes.append("Other configs (right -> wrong / wrong -> right): " + "; ".join(
            f"trial {t} {a} / {b}" for t, (a, b) in sorted(others.items())) + f"; their flips: {query}")
    rows = [[f["example_id"], "right -> wrong" if f["direction"] == "regressed" else "wrong -> right",
             _short(f["input_text"], 100), _short(f["incumbent_prediction"], 60), _short(f["candidate_prediction"], 60)]
            for f in mine[:FLIPS_SHOWN]]
    return Section("flips", f"Flips of {config_name(r, focus)} (held-out split: examples whose correctness changed)",
                   ["example", "direction", "input", "incumbent", "candidate"] if rows else [], rows, notes)


def _short(value: Any, width: int) -> str:
    text = " ".join(str(value if value is not None else "-").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def power_section(r: StudyReport) -> Section | None:
    lines = power_lines([PowerRow(**row) for row in r.power])
    return Section("power", lines[0].rstrip(":"), [], [], [x.strip() for x in lines[1:]]) if lines else None


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
    return Section("trivial", "Trivial baseline", [], [], notes)


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
                     fmt(test and test.measurement.quality), _diff(o), verdict])
    notes = [f"trial {v['trial_id']} ({v['config']}): {'accepted' if v['accepted'] else 'rejected'}: {v['why']}"
             for v in r.selection.get("verdicts", []) if v.get("reference")]
    return Section("naive", "Would just swapping the model do? Naive swaps (the incumbent's prompt and settings on another model), "
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
    out = [Section("labels", f"Per label on the test split: precision / recall (answers given) of `{ev['field']}`",
                   ["label", "gold n", *[name[c["trial_id"]] for c in configs]], rows, warnings)]
    pairs = []
    for c in configs[1:]:
        differ = [x for x in ev["confusion"] if x["trial_id"] == c["trial_id"] and x["incumbent_answer"] != x["candidate_answer"]]
        pairs += [[name[c["trial_id"]], x["incumbent_answer"], x["candidate_answer"], str(x["n"])] for x in differ[:5]]
    if pairs:
        out.append(Section("confusion", "Where the answers differ from the incumbent's (test; most frequent pairs, full matrix: "
                           "v_label_confusion)", ["config", "incumbent said", "candidate said", "n"], pairs))
    return out


def _notes(key: str, title: str, lines: list[str], detail: bool = False) -> Section | None:
    """A section of lines only (none when there is nothing to say)."""
    lines = [x for x in lines if x and x.strip()]
    return Section(key, title, [], [], lines, detail) if lines else None


def _headed(key: str, lines: list[str]) -> Section | None:
    """Lines whose first is their heading ("...:")."""
    lines = [x for x in lines if x and x.strip()]
    return Section(key, lines[0].rstrip(":"), [], [], lines[1:]) if lines else None


def judge_section(r: StudyReport) -> Section | None:
    if not r.judged:
        return None
    notes = [f"- {x}" for x in judge_lines(r.judged)]
    if r.calibration is not None:
        notes.append(calibration_line(r.calibration) or "")
    notes.append(f"Every judge answer: SELECT * FROM v_judgements WHERE study_id = '{r.study_id}' ORDER BY trial_id, example_id")
    return _notes("judge", f"Judge (metric.judge; {unparsed_total(r.judged)} judge answers did not parse; an unjudged answer scores 0)",
                  notes)


def health_section(r: StudyReport) -> Section | None:
    if not r.health:
        return None
    rows = [[x["model"], str(x["n_calls"]), str(x["n_errors"]), fmt(x["error_rate"]), str(x["n_retried"]), str(x["retries"]),
             display.seconds(x["wall_p95_s"])] for x in r.health]
    return Section("health", "Paid calls per model (errors after retries; retries; wall time per answer, retries included)",
                   ["model", "calls", "errors", "error rate", "retried", "retries", "p95"], rows, latency_note(r.trials, r.front), True)


def spend_section(r: StudyReport) -> Section:
    spent = sum(x["spend_usd"] or 0 for x in r.spend)
    by_purpose = ", ".join(f"{x['purpose']}: {x['n_calls']}" for x in r.spend)
    return Section("spend", "Spend", [], [], [f"Spend: ${spent:.4f} over {sum(x['n_calls'] for x in r.spend)} calls ({by_purpose}).",
                                              *r.money_lines()])


TRIAL_COLUMNS = ["trial", "role", "config", "status", "quality [95% CI]", "$ / 1k", "p95", "errors", "front"]


def trials_section(r: StudyReport) -> Section:
    """Every dev trial (the search), front and decision marked, in few short columns: the Prefect
    table artifact (`display`: its cells never wrap, so no raw floats)."""
    selected, least_bad = r.selection.get("trial_id"), r.selection.get("recommended_trial_id")
    rows = []
    for t in r.trials:
        if t.split != "dev":
            continue
        m = t.measurement
        front = ("selected" if t.trial_id == selected else "least bad" if t.trial_id == least_bad and selected is None
                 else "front" if r.on_front(t) else "")
        status = ("" if t.status == "completed" else f"pruned at {t.stage:.0%} of dev" if t.status == "pruned" and t.stage
                  else t.status)
        rows.append([str(t.trial_id), t.role, t.label, status, display.quality(m.quality, m.quality_ci_low, m.quality_ci_high),
                     display.usd(m.cost_per_1k_usd), display.seconds(m.latency_p95_s), display.share(m.error_rate), front])
    return Section("trials", "Every dev trial (the search; v_trials)", TRIAL_COLUMNS, rows, detail=True)


def sections(r: StudyReport) -> list[Section]:
    """The report, in the order a reviewer reads it."""
    parts = [
        decision_section(r), verdict_section(r), slices_section(r), flips_section(r), power_section(r),
        trivial_section(r), naive_section(r), *label_sections(r),
        _headed("discovered", r.discovered_lines()),
        judge_section(r),
        _notes("composites", "Composite candidates: branches taken (which branch answered how often)",
               [f"- {x}" for x in r.composite_lines()]),
        _notes("samples", "Production sample", sample_lines(r.sample_stage, r.samples)),
        _notes("unparsed", "Answers that could not be parsed (they score 0)", [f"- {w}" for w in r.unparsed_warnings()]),
        _notes("models", "Models (endpoint; which source priced it; preflight call)", [f"- {x}" for x in r.model_lines()], True),
        health_section(r), spend_section(r), trials_section(r),
        _notes("queries", "Re-derive every number", list(r.queries().values()), True),
    ]
    return [s for s in parts if s is not None]


def section(r: StudyReport, key: str) -> Section:
    """One section of the report, by its key."""
    return next(s for s in sections(r) if s.key == key)
