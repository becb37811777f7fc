"""The report's production-sample section (tasks/study/samples.py): how many logged inputs were
answered and why that many, and each config's agreement with what the incumbent served, with its
95% interval, the incumbent's own re-run first (the replay-drift baseline), and by time (the first
and second half of the sample by timestamp) when the log has timestamps."""

from __future__ import annotations

import datetime as dt
from typing import Any


def _ci(row: dict[str, Any]) -> str:
    if row["agreement"] is None:
        return f"no measurement ({row['status']})"
    low, high = row["agreement_ci_low"], row["agreement_ci_high"]
    return f"{row['agreement']:.3f}" + ("" if low is None or high is None else f" [{low:.3f}, {high:.3f}]")


def _name(row: dict[str, Any]) -> str:
    if row["role"] == "incumbent":
        return "incumbent re-run"
    return f"trial {row['source_trial_id']} {row['model']} {row['strategy']}" + (" (naive swap)" if row["role"] == "naive_swap" else "")


def sample_lines(stage: dict[str, Any] | None, rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines (empty: the feature has no production samples, or the stage did not run)."""
    if not stage:
        return []
    span = ""
    if stage["first_at"] is not None:
        first, last = (x.astimezone(dt.UTC) if x.tzinfo else x for x in (stage["first_at"], stage["last_at"]))
        span = f" (logged from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC by timestamp)"
    head = f"**Production sample:** {stage['n_chosen']} of {stage['n_logged']} logged inputs{span}"
    if stage["n_served"] != stage["n_logged"]:
        head += f"; {stage['n_logged'] - stage['n_served']} without a served answer the shipped parser reads were not sampled"
    if stage["status"] != "ran" or not rows:
        return ["", f"{head}. {stage['reason']}."]
    agreement = "; ".join(f"{_name(r)} {_ci(r)}" for r in rows)
    lines = ["", f"{head}, agreement with what the incumbent served: {agreement}.", "", f"Sample size: {stage['reason']}."]
    halves = [r for r in rows if r["n_first"] and r["n_second"]]
    if halves:
        lines += ["", "Agreement by time (first and second half of the sample by timestamp):", ""]
        lines += [f"- {_name(r)}: {r['first_half']:.3f} (n={r['n_first']}) then {r['second_half']:.3f} (n={r['n_second']})"
                  for r in halves]
    return lines
