"""The percentile bootstrap behind every interval offramp reports: a trial's quality interval
(`tasks/feature/evaluate.py`) and the paired difference against the incumbent (`compare.py`).

Pure numpy, no I/O; deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

MAX_CELLS = 4_000_000  # max resample-index cells drawn at once (bounds memory for big n)


def percentile_bootstrap(
    n: int, statistic: Callable[[np.ndarray], np.ndarray | Sequence[float]], *, seed: int, resamples: int,
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of a statistic of `n` examples.

    `statistic` gets a (k, n) array of example indices, one resample per row, and returns the k
    statistics (e.g. `lambda idx: scores[idx].mean(axis=1)`). Indices are drawn from one
    `numpy.random.default_rng(seed)` stream in chunks of at most `MAX_CELLS` cells, so memory
    stays bounded for large n; numpy draws the same indices whatever the chunking, so the
    interval depends only on (n, statistic, seed, resamples).
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_CELLS // n)
    values = np.empty(resamples)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        values[start:stop] = statistic(rng.integers(0, n, size=(stop - start, n)))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
