"""The migration report in a terminal (rich): the same facts as the markdown artifact and the
HTML page (`offramp.tasks.evidence.report`), for `offramp report` and the end of `offramp migrate`."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from offramp.tasks.evidence import reviewer
from offramp.tasks.evidence.judged import calibration_line, judge_lines
from offramp.tasks.evidence.report import StudyReport, fmt
from offramp.tasks.evidence.samples_report import sample_lines
from offramp.tasks.evidence.verdicts import PowerRow, power_lines, verdict_interval, verdict_text


def render_report(console: Console, r: StudyReport) -> None:
    s, sel = r.study, r.selection
    console.print(f"[bold]Study {r.study_id}[/]: feature {s['feature']}, off {s['incumbent_model']}, status {s['status']}")
    inc = r.incumbent
    if inc:
        t = r.test_of(inc.trial_id)
        console.print(f"Incumbent: dev {fmt(inc.measurement.quality)}, test {fmt(t and t.measurement.quality)}, "
                      f"${fmt(inc.measurement.cost_per_1k_usd, 5)}/1k, p95 {fmt(inc.measurement.latency_p95_s)} s")
    table = Table(title="Front (dev split) and its check against the incumbent (held-out test split, paired)")
    for column in ("trial", "config", "dev quality", "test quality", "vs incumbent [95% CI]", "p", "agree", "$ / 1k", "p95 s", "verdict"):
        table.add_column(column)
    verdicts = {v["trial_id"]: v for v in sel.get("verdicts", [])}
    for t in r.front:
        o, test, v = r.overall(t.trial_id), r.test_of(t.trial_id), verdicts.get(t.trial_id, {})
        verdict = "[green]selected[/]" if sel.get("trial_id") == t.trial_id else ("accepted" if v.get("accepted") else "[red]rejected[/]") if v else "-"
        table.add_row(
            str(t.trial_id), t.label, f"{fmt(t.measurement.quality)} [{fmt(t.measurement.quality_ci_low)}, {fmt(t.measurement.quality_ci_high)}]",
            fmt(test and test.measurement.quality), "-" if o is None else f"{o['diff']:+.3f} [{o['diff_ci_low']:+.3f}, {o['diff_ci_high']:+.3f}]",
            fmt(o and o["p_value"]), fmt(o and o["agreement_rate"], 2), fmt(t.measurement.cost_per_1k_usd, 5), fmt(t.measurement.latency_p95_s), verdict,
        )
    console.print(table)
    slices = reviewer.slice_drops(r, 6)  # the decision's config's slices always among them
    if slices:
        st = Table("trial", "slice", "n", "incumbent", "candidate", "diff [95% CI]", "adjusted CI", "verdict", "detectable (pre-study)",
                   title="Largest slice drops (test)")
        for x in slices:
            st.add_row(str(x["trial_id"]), f"{x['slice_field']}={x['slice_value']}", str(x["n"]), fmt(x["incumbent_quality"]),
                       fmt(x["candidate_quality"]), f"{x['diff']:+.3f} [{x['diff_ci_low']:+.3f}, {x['diff_ci_high']:+.3f}]",
                       verdict_interval(x), verdict_text(x), fmt(x.get("detectable_drop")))
        console.print(st)
    for line in power_lines([PowerRow(**row) for row in r.power]):
        console.print(escape(line), soft_wrap=True)
    shown = sel.get("trial_id") if sel.get("trial_id") is not None else sel.get("recommended_trial_id")  # the key exists, None
    regressed = [f for f in r.flips if f["direction"] == "regressed" and f["trial_id"] == shown]
    if regressed:
        console.print(f"Right -> wrong under trial {regressed[0]['trial_id']} ({len(regressed)}), e.g.:")
        for f in regressed[:3]:
            console.print(f"  {f['example_id']}: {f['input_text'][:90]!r}: {f['incumbent_prediction']} -> {f['candidate_prediction']}")
    console.print(f"Policy: {escape(r.policy)}", soft_wrap=True)
    console.print(f"Decision: {escape(sel.get('reason', s.get('error') or '-'))}", soft_wrap=True)
    if r.left_out:
        console.print(f"[bold yellow]{escape(r.left_out)}[/]", soft_wrap=True)
    if r.unfinished:
        console.print(f"[bold yellow]Not finished:[/] {escape(r.unfinished)}", soft_wrap=True)
    if r.failed:
        console.print(f"[bold red]Failed trials:[/] {escape(r.failed_summary() or '')}", soft_wrap=True)
    for v in [v for v in sel.get("verdicts", []) if not v.get("reference")]:  # references: the naive-swap section
        console.print(f"  trial {v['trial_id']}: {'accepted' if v['accepted'] else 'rejected'}: {escape(v['why'])}", soft_wrap=True)
    for line in judge_lines(r.judged):  # a judged feature: how the answers were judged, and the judge vs people
        console.print(f"[cyan]judge[/] {escape(line)}", soft_wrap=True)
    if r.calibration is not None:
        console.print(escape(calibration_line(r.calibration) or ""), soft_wrap=True)
    for line in r.discovered_lines():
        console.print(escape(line), soft_wrap=True)
    reviewer.render_terminal(console, r)
    for line in r.composite_lines():
        console.print(f"[cyan]composite[/] {escape(line)}", soft_wrap=True)
    for line in sample_lines(r.sample_stage, r.samples):  # production samples vs what was served
        if line:
            console.print(escape(line.replace("**", "")), soft_wrap=True)
    for warning in r.unparsed_warnings():
        console.print(f"[yellow]unparsed answers:[/] {escape(warning)}", soft_wrap=True)
    for line in r.model_lines():
        console.print(f"model {escape(line)}", soft_wrap=True)
    if r.health:
        ht = Table("model", "paid calls", "errors", "error rate", "retried", "retries", "p95 s (retries included)",
                   title="Calls per model")
        for x in r.health:
            ht.add_row(x["model"], str(x["n_calls"]), str(x["n_errors"]), fmt(x["error_rate"]), str(x["n_retried"]),
                       str(x["retries"]), fmt(x["wall_p95_s"]))
        console.print(ht)
    for line in r.money_lines():
        console.print(escape(line), soft_wrap=True)
    console.print("Every number above is a row of: " + "; ".join(r.queries().values()), soft_wrap=True)
