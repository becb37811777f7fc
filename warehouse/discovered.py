"""The discovered slices' rows (migration 0014): per study, compared config and source of inputs,
one discovery run (what was tested, under which rule) and the slices it found."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from offramp.warehouse.db import Warehouse, insert_rows, query


def store_discovery(wh: Warehouse, study_id: str, source: str, runs: Sequence[dict[str, Any]],
                    slices: Sequence[dict[str, Any]]) -> None:
    """Replace a study's discovery runs and slices from one source (`test` | `samples`), in one transaction."""
    with wh.writer() as con:
        con.execute(query("clear_discovered"), {"study_id": study_id, "source": source})
        con.execute(query("clear_discovery"), {"study_id": study_id, "source": source})
        insert_rows(con, "insert_slice_discovery", list(runs))
        insert_rows(con, "insert_discovered_slices", list(slices))


def discovered_slice(wh: Warehouse, study_id: str, slice_id: str) -> dict[str, Any] | None:
    """One discovered slice with its study's feature and that feature's spec path (None: no such slice)."""
    wh.ensure_schema()
    with wh.reader() as con:
        cur = con.execute(query("discovered_slice"), {"study_id": study_id, "slice_id": slice_id})
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    if row is None:
        return None
    found = dict(zip(names, row))
    found["member_ids"] = json.loads(found["member_ids"])
    return found


def slice_ids(wh: Warehouse, study_id: str) -> list[str]:
    """The ids of a study's discovered slices."""
    wh.ensure_schema()
    _, rows = wh.fetch("SELECT slice_id FROM discovered_slices WHERE study_id = ? ORDER BY slice_id", [study_id])
    return [r[0] for r in rows]
