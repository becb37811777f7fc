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


CORRECTED = ("the paired intervals vs the incumbent (overall and per slice) are corrected for the judge's errors: its "
             "confusion with the people on these items unmixes its verdicts (Rogan-Gladen; for pairwise, the win/tie/loss "
             "confusion inverse), bootstrapped over the examples and the items; this assumes the judge errs alike on every "
             "config's answers")


def calibration_line(row: dict[str, Any] | None) -> str | None:
    """The judge's calibration in one line (table `judge_calibrations`; None: not a judged study)."""
    if row is None:
        return None
    if not row["n"]:
        return f"Judge calibration: no human judgements (metric.judge.human_judgements): {row['summary']}"
    line = f"Judge calibration ({row['path']}): {row['summary']}. "
    if row["kappa"] is None or row["kappa"] <= 0:
        return line + ("The judge is no better than chance on them: its verdicts say nothing a person would stand by, so "
                       "every corrected interval is the whole range (a stronger judge, or clearer instructions, is needed)")
    return line + CORRECTED[0].upper() + CORRECTED[1:]
