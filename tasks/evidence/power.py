"""Power before spend: what a study's test split can tell, per declared slice and overall, under
its policy (the numbers: tasks.evidence.verdicts). Shown by the dry run, logged and stored in
`slice_power` when a study starts, and again once the incumbent's dev quality replaces the
assumed discordance."""

from __future__ import annotations

from collections.abc import Sequence

from offramp.tasks.evidence.policy import SelectionPolicy
from offramp.tasks.evidence.verdicts import (
    DEFAULT_DISCORDANCE,
    PowerRow,
    discordance_from_quality,
    power_lines,
    power_table,
    slice_sizes,
)
from offramp.warehouse import Warehouse, records


def study_power(test_examples: Sequence, policy: SelectionPolicy, incumbent_dev_quality: float | None = None) -> list[PowerRow]:
    """The power table of a test split: discordance assumed at 30% before any call, else from the
    incumbent's measured dev quality."""
    if incumbent_dev_quality is None:
        discordance = DEFAULT_DISCORDANCE
        assumption = (f"assumed: {DEFAULT_DISCORDANCE:.0%} of examples answered differently by candidate and incumbent "
                      "(no call made yet; conservative)")
    else:
        discordance = discordance_from_quality(incumbent_dev_quality)
        assumption = (f"from the incumbent's dev quality {incumbent_dev_quality:.3f}: 2q(1-q), an equally good candidate "
                      f"with independent errors (at least 5%)")
    return power_table(slice_sizes(test_examples), len(test_examples), max_slice_drop=policy.max_slice_drop,
                       min_slice_n=policy.min_slice_n, quality_tolerance=policy.quality_tolerance,
                       discordance=discordance, assumption=assumption)


def record_power(wh: Warehouse, study_id: str, rows: Sequence[PowerRow], log=None) -> None:
    """Store the table (replacing the study's previous one) and log it in words."""
    records.store_slice_power(wh, study_id, [r.to_dict() for r in rows])
    if log is not None:
        for line in power_lines(rows):
            log.info("%s", line)
