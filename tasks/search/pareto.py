"""The Pareto front over (quality max, cost min, latency min). Pure; mirrors `v_pareto_front`.

Latency is measured, not priced: a p95 of a few dozen calls moves by more than the difference
between two fast endpoints, so a latency difference within its measurement noise is a tie, never
a reason to keep a config on the front. A point's `latency_noise` is the half-width of its p95's
95% bootstrap interval (0: exact, the old behaviour); two p95s differ when their difference exceeds
the combined noise, sqrt(noise_a^2 + noise_b^2) (independent measurements). Cost at fixed prices
is not noisy in that sense (it moves with the tokens of the examples, which both configs answer):
it is compared as measured.

A config no better than the feature's trivial answer (`tasks.feature.trivial`: e.g. always the most
frequent train label) is not a trade-off, however cheap and fast: with a `floor` (the trivial
answer's dev quality), a point whose quality interval does not exceed it (upper end <= floor) is
left out before the front is taken. In a study this is a hard limit (`Limits.trivial_quality`): such
a trial is recorded infeasible, so `v_pareto_front` (feasible trials only) leaves it out too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    key: int
    quality: float
    cost: float
    latency: float
    latency_noise: float = 0.0  # half-width of the p95's 95% interval (s)
    quality_high: float | None = None  # upper end of the quality's 95% interval (None: the quality itself)

    def beats(self, floor: float | None) -> bool:
        """Whether its quality interval exceeds `floor` (None: no floor)."""
        high = self.quality if self.quality_high is None else max(self.quality_high, self.quality)
        return floor is None or high > floor


def latency_margin(a: Point, b: Point) -> float:
    """The smallest p95 difference between a and b that is not measurement noise."""
    return math.hypot(a.latency_noise or 0.0, b.latency_noise or 0.0)


def dominates(a: Point, b: Point) -> bool:
    """a is at least as good as b on every objective and strictly better on one; on latency,
    'at least as good' includes a tie within noise and 'strictly better' needs more than noise."""
    margin = latency_margin(a, b)
    at_least = a.quality >= b.quality and a.cost <= b.cost and a.latency <= b.latency + margin
    strictly = a.quality > b.quality or a.cost < b.cost or a.latency < b.latency - margin
    return at_least and strictly


def pareto_front(points: Sequence[Point], floor: float | None = None) -> list[Point]:
    """The points no other point dominates (ties all kept), in input order, among those that beat
    `floor` (the trivial answer's quality; None: all). O(n^2): n is the number of trials of one
    study (hundreds at most)."""
    points = [p for p in points if p.beats(floor)]
    return [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
