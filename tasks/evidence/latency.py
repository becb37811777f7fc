"""What the report says about how far a study's latencies can be trusted.

Two sources of doubt, both measured per trial: the p95's own sampling noise (its 95% bootstrap
interval; the front already treats differences within it as ties) and the machine's load while the
trial ran (`load_avg_min`/`load_avg_max`, 1-minute load averages). A model served on this machine
shares its cores: once the load exceeds the core count, a CPU-bound server gets about cores/load of
the CPU, so its latency grows about load/cores times. The swing between the least and the most
loaded moments of a study is what load alone could have done to a self-hosted model's latencies
(a remote endpoint's are not affected). Measured here: one local config's p95 was 26.2 s at load 8
and 5.1 s at load 2 on 2 cores (5.1x; this model predicts 4x).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from offramp.warehouse.records import Trial


def load_slowdown(load: float, cores: int) -> float:
    """How much slower a CPU-bound local server runs at `load` than on an idle machine."""
    return max(1.0, load / max(1, cores))


def latency_note(trials: Sequence[Trial], front: Sequence[Trial], cores: int | None = None) -> list[str]:
    """The report's lines on latency noise and machine load (empty when nothing was measured)."""
    cores = cores or os.cpu_count() or 1
    lines = []
    noise = [(t.measurement.latency_p95_ci_high - t.measurement.latency_p95_ci_low) / 2 for t in front
             if t.measurement.latency_p95_ci_low is not None and t.measurement.latency_p95_ci_high is not None]
    if noise:
        lines.append(f"Latency noise: each p95 carries its 95% bootstrap interval (front: ±{min(noise):.3f} to ±{max(noise):.3f} s); "
                     "a p95 difference within the combined noise is a tie and puts no config on the front.")
    loads = [x for t in trials for x in (t.measurement.load_avg_min, t.measurement.load_avg_max) if x is not None]
    if loads:
        low, high = min(loads), max(loads)
        swing = load_slowdown(high, cores) / load_slowdown(low, cores)
        effect = (f"a model served on this machine could have answered up to {swing:.1f}x slower in the most loaded trial than "
                  "in the least loaded one from load alone (remote endpoints are not affected): compare self-hosted "
                  "latencies with that in mind, or rerun them on a quiet machine" if swing >= 1.1
                  else "not enough to move a self-hosted model's latency")
        lines.append(f"Machine load while the trials ran (1-minute load average): {low:.1f} to {high:.1f} on {cores} cores; {effect}.")
    return lines
