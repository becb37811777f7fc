"""The Pareto front over (quality max, cost min, latency min). Pure; mirrors `v_pareto_front`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    key: int
    quality: float
    cost: float
    latency: float


def dominates(a: Point, b: Point) -> bool:
    """a is at least as good as b on every objective and strictly better on one."""
    at_least = a.quality >= b.quality and a.cost <= b.cost and a.latency <= b.latency
    strictly = a.quality > b.quality or a.cost < b.cost or a.latency < b.latency
    return at_least and strictly


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point dominates (ties all kept), in input order. O(n^2): n is the
    number of trials of one study (hundreds at most)."""
    return [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
