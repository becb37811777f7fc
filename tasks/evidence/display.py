"""Numbers as a person reads them in the Prefect UI's table artifact (and anywhere a cell is narrow):
quality with 3 decimals, dollars with 3 significant digits (never in e-notation), seconds with 2.
Why the table was clipped (Prefect 3.8's UI CSS): a table artifact's cells never wrap (`.p-table-data
{white-space: nowrap; overflow: hidden; text-overflow: ellipsis}`) and the table scrolls sideways
inside its box (`.p-table{overflow: auto hidden}`), so twelve columns of raw floats
(`0.030229600694444445`) made it wider than the page and cut the right-hand columns (cost, latency,
front, selected) off at the page's edge. Short cells in fewer columns fit."""

from __future__ import annotations

import math


def quality(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def usd(value: float | None) -> str:
    """$ with 3 significant digits, at least cents: $12.30, $0.0302, $0.0000123, $0."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    decimals = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:.{decimals}f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def share(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if value in (0, 1) or value >= 0.01 else f"{value:.1%}"
