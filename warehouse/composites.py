"""The composite candidates' rows (migration 0008): their definitions and, per request, which
branch answered. A composite's trials are ordinary `trials` rows (see `records.start_trial`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from offramp.warehouse.db import Warehouse, insert_rows, query


def store_composite(wh: Warehouse, *, study_id: str, trial_id: int, kind: str, rule: str, label: str, description: str,
                    members: Sequence[int], threshold: float | None, definition: dict) -> None:
    """A composite's definition, linked to its dev trial."""
    params = {"study_id": study_id, "trial_id": trial_id, "kind": kind, "rule": rule, "label": label,
              "description": description, "members": json.dumps(list(members)), "threshold": threshold,
              "definition": json.dumps(definition, sort_keys=True)}
    wh.defer(lambda con: con.execute(query("insert_composite"), params))


def store_answers(wh: Warehouse, rows: Sequence[dict[str, Any]]) -> None:
    """A composite trial's requests: branch, final answer (`prediction` as JSON text), summed cost and latency."""
    rows = list(rows)
    wh.defer(lambda con: insert_rows(con, "insert_composite_answers", rows))


def study_composites(wh: Warehouse, study_id: str) -> list[dict[str, Any]]:
    """A study's composites (definitions parsed), by dev trial id."""
    wh.ensure_schema()
    with wh.reader() as con:
        cur = con.execute(query("study_composites"), {"study_id": study_id})
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    for row in rows:
        row["members"] = json.loads(row["members"])
        row["definition"] = json.loads(row["definition"])
    return rows


def member_answers(wh: Warehouse, study_id: str, trial_ids: Sequence[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """trial_id -> example_id -> its evaluation call's row (the last, if a call was repeated)."""
    with wh.reader() as con:
        cur = con.execute(query("member_answers"), {"study_id": study_id, "trial_ids": list(trial_ids)})
        names = [d[0] for d in cur.description]
        out: dict[int, dict[str, dict[str, Any]]] = {}
        for r in cur.fetchall():
            row = dict(zip(names, r))
            out.setdefault(row["trial_id"], {})[row["example_id"]] = row
    return out


def composite_members(wh: Warehouse, study_id: str, trial_id: int) -> list[int]:
    """The member dev trials of a composite (its dev trial), in its order."""
    found = [c for c in study_composites(wh, study_id) if c["trial_id"] == trial_id]
    return list(found[0]["members"]) if found else []


def composite_definition(wh: Warehouse, study_id: str, trial_id: int) -> dict[str, Any] | None:
    """A composite's stored row (label, description, definition), or None."""
    return next((c for c in study_composites(wh, study_id) if c["trial_id"] == trial_id), None)
