"""The "discovered slices" section of the report, per compared config: from the rows of
`report_discovery` (the runs: what was tested, under which rule) and `report_discovered` (the
slices found). One renderer of lines (markdown, also printed by the terminal report and the HTML page)."""

from __future__ import annotations

import json
from typing import Any


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{low:.0%}, {high:.0%}]"


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def slice_line(x: dict[str, Any]) -> str:
    """One discovered slice in one line: id, size, share, rates in and out, top terms."""
    terms = ", ".join(_loaded(x["terms"])) or "-"
    loss = (f"loses on {_pct(x['loss_rate'])}{_ci(x['loss_ci_low'], x['loss_ci_high'])} (outside: {_pct(x['outside_loss_rate'])})"
            if x["loss_rate"] is not None else "losses unknown")
    return (f"slice {x['slice_id']} ({x['signal']}, {x['source']}): {x['size']} inputs ({x['share']:.1%} of those compared), {loss}, "
            f"disagrees on {_pct(x['disagree_rate'])}{_ci(x['disagree_ci_low'], x['disagree_ci_high'])} "
            f"(outside: {_pct(x['outside_disagree_rate'])}), p={x['p_value']:.2g}; top terms: {terms}")


def example_lines(x: dict[str, Any], width: int = 100) -> list[str]:
    """Its (up to three) example inputs with both answers."""
    out = []
    for e in _loaded(x["examples"]):
        text = str(e["input"]).replace("\n", " ")
        out.append(f"{e['example_id']}: {text[:width]!r}: incumbent {e['incumbent']!r} -> candidate {e['candidate']!r}")
    return out


def discovered_lines(runs: list[dict[str, Any]], slices: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of the section ([] when discovery did not run, e.g. an older study)."""
    if not runs:
        return []
    lines = ["", "Discovered slices (inputs clustered by their text; groups where the candidate loses or disagrees more "
             "than overall; `offramp slices save STUDY SLICE_ID --name NAME` declares one in the feature):", ""]
    for run in runs:
        found = [x for x in slices if x["trial_id"] == run["trial_id"] and x["source"] == run["source"]]
        head = (f"- trial {run['trial_id']} ({run['source']}, {run['n_inputs']} inputs"
                + (f", {run['n_clustered']} clustered" if run["n_clustered"] != run["n_inputs"] else "")
                + f"; overall loss {_pct(run['overall_loss_rate'])}, disagree {_pct(run['overall_disagree_rate'])}): ")
        if not found:
            lines.append(head + f"none found (rule: {run['rule']})")
            continue
        lines.append(head + f"{len(found)} found (rule: {run['rule']})")
        for x in found:
            lines.append(f"  - {slice_line(x)}")
            lines += [f"    - {e}" for e in example_lines(x)]
    return lines
