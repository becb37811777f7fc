"""The report's lines on a judged feature (metric.judge): per judged trial, how many answers the
judge scored, its calls, the answers that did not parse or failed, and (pairwise) wins/ties/losses."""

from __future__ import annotations

from typing import Any


def judge_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per judged trial (rows of `warehouse/queries/report_judge.sql`)."""
    lines = []
    for x in rows:
        outcomes = (f"; vs the incumbent: {x['wins']} won, {x['ties']} tied, {x['losses']} lost"
                    if x["mode"] == "pairwise" else "")
        lines.append(
            f"trial {x['trial_id']} ({x['role'] or '?'}, {x['split'] or '?'}, {x['model'] or '?'}): {x['answers']} answers judged by "
            f"{x['judge_model']} ({x['mode']}) in {x['judge_calls']} judge calls; {x['unparsed']} judge answers did not parse, "
            f"{x['failed']} judge calls failed ({x['unjudged']} answers left unjudged, scored 0){outcomes}"
        )
    return lines


def unparsed_total(rows: list[dict[str, Any]]) -> int:
    return sum(int(x["unparsed"] or 0) for x in rows)
