"""The shared percentile bootstrap: the intervals stay what they were before it was shared.

The expected values were computed with the code before `percentile_bootstrap` existed (one draw
of every index at once in `bootstrap_interval`, chunked draws in `paired_bootstrap_diff`)."""

from __future__ import annotations

import numpy as np
import pytest

from offramp.tasks.evidence.bootstrap import percentile_bootstrap
from offramp.tasks.evidence.compare import paired_bootstrap_diff
from offramp.tasks.feature.evaluate import bootstrap_interval
from offramp.tasks.feature.metrics import macro_f1_statistic

SAME = {"rel": 1e-12, "abs": 1e-15}


def test_interval_of_a_mean_is_unchanged():
    scores = np.random.default_rng(3).random(40)
    assert bootstrap_interval(scores, seed=5) == pytest.approx((0.3960960653420019, 0.5595268798795001), **SAME)
    big = np.random.default_rng(4).random(5000)  # now drawn in chunks: the same indices
    assert bootstrap_interval(big, seed=1) == pytest.approx((0.49141662944118897, 0.507555074546831), **SAME)


def test_interval_of_a_statistic_of_indices_is_unchanged():
    golds = list("bbbbcbbbbcabbccaccbabacccaccbcccaaaabccbbbcacabbccabaabcaacb")
    preds = [None if p == "-" else p for p in "acbbbb--bbccc-ab--bb-bb-bac-----bacac-bbca-ca---babb--baabcb"]
    statistic = macro_f1_statistic(golds, preds, ["a", "b", "c"])
    assert bootstrap_interval([0.0] * 60, seed=2, statistic=statistic) == pytest.approx(
        (0.1631511544011544, 0.39386630468588013), **SAME)


def test_paired_interval_is_unchanged():
    rng = np.random.default_rng(7)
    inc, cand = rng.random(5000), rng.random(5000)
    assert paired_bootstrap_diff(inc, cand, seed=7, resamples=2000) == pytest.approx(
        (0.007596404000283532, -0.003328648351122042, 0.018477356311465586), **SAME)


def test_chunking_does_not_change_the_interval(monkeypatch):
    from offramp.tasks.evidence import bootstrap

    values = np.random.default_rng(0).random(97)
    whole = percentile_bootstrap(97, lambda idx: values[idx].mean(axis=1), seed=11, resamples=500)
    monkeypatch.setattr(bootstrap, "MAX_CELLS", 97 * 3)  # three resamples per draw
    assert percentile_bootstrap(97, lambda idx: values[idx].mean(axis=1), seed=11, resamples=500) == whole
