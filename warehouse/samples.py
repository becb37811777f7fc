"""The production samples' rows (migration 0013): the samples stage of a study (its size and why)
and, per samples trial and sample, the answer and its agreement with what the incumbent served.
A samples trial is an ordinary `trials` row with split 'samples' (see `records.start_trial`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from offramp.warehouse.db import Warehouse, insert_rows, query


def start_stage(wh: Warehouse, study_id: str) -> None:
    """Drop the answers an interrupted run of the stage left (its trials stay, with their status)."""
    wh.defer(lambda con: con.execute(query("clear_sample_answers"), {"study_id": study_id}))


def store_stage(wh: Warehouse, row: dict[str, Any]) -> None:
    """The stage's row: status (ran | skipped), the size chosen and why."""
    wh.defer(lambda con: con.execute(query("insert_sample_stage"), row))


def store_answers(wh: Warehouse, rows: Sequence[dict[str, Any]]) -> None:
    """One samples trial's answers (`served`, `prediction` as JSON text) with their agreement."""
    rows = list(rows)
    wh.defer(lambda con: insert_rows(con, "insert_sample_answers", rows))


def stage(wh: Warehouse, study_id: str) -> dict[str, Any] | None:
    """The study's samples stage row, if it ran (or was skipped)."""
    wh.ensure_schema()
    with wh.reader() as con:
        cur = con.execute(query("report_sample_stage"), {"study_id": study_id})
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    return None if row is None else dict(zip(names, row))
