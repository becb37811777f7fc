from __future__ import annotations

import pytest

from offramp.tasks.evidence.policy import Candidate, SelectionPolicy, select_release, violations
from offramp.warehouse.records import TrialMeasurement


def cand(trial_id, q, cost, p95, diff, low, high, err=0.0, slices=None, cis=None):
    test = TrialMeasurement(quality=q, cost_per_1k_usd=cost, latency_p95_s=p95, error_rate=err)
    return Candidate(trial_id, f"c{trial_id}", test, diff, low, high, slices or {}, cis or {})


FRONT = [
    cand(1, 0.80, 3.0, 0.5, +0.05, +0.01, +0.09),   # better, dear
    cand(2, 0.76, 1.0, 0.9, +0.01, -0.03, +0.05),   # non-inferior at 0.05, cheapest, slow
    cand(3, 0.70, 0.5, 0.2, -0.05, -0.12, +0.02),   # maybe worse: fails non-inferiority
    cand(4, 0.78, 2.0, 0.3, +0.03, -0.01, +0.07, slices={"queue=cards": (-0.30, 60)},  # a slice collapses, shown by its
         cis={"queue=cards": (-0.42, -0.18)}),  # interval (slices are judged on intervals, not points, since issue 12)
]


def test_cheapest_that_meets_the_policy():
    s = select_release(0.75, FRONT)
    assert s.trial_id == 2
    verdicts = {v["trial_id"]: v for v in s.verdicts}
    assert verdicts[1]["accepted"] and not verdicts[3]["accepted"] and not verdicts[4]["accepted"]
    assert "lower end below -0.05" in verdicts[3]["why"]
    assert "slice queue=cards -0.300 (n=60" in verdicts[4]["why"] and "worse than -0.15" in verdicts[4]["why"]
    assert "selected" in verdicts[2]["why"]


@pytest.mark.parametrize(("prefer", "expected"), [("fastest", 1), ("quality", 1), ("cheapest", 2), ("knee", 1)])
def test_preferences(prefer, expected):
    assert select_release(0.75, FRONT, SelectionPolicy(prefer=prefer)).trial_id == expected


def test_not_worse_rule_is_lenient_and_small_slices_are_not_judged():
    lenient = SelectionPolicy(quality_rule="not_worse", max_slice_drop=None)
    assert select_release(0.75, FRONT, lenient).trial_id == 3  # no evidence it is worse: the cheapest passes
    small = cand(5, 0.8, 0.1, 0.1, +0.05, +0.01, +0.09, slices={"queue=rare": (-0.9, 2)})
    assert violations(small, SelectionPolicy()) == []


def test_hard_limits():
    policy = SelectionPolicy(max_cost_per_1k_usd=1.5, max_latency_p95_s=0.6, max_error_rate=0.01)
    problems = violations(cand(9, 0.9, 2.0, 0.8, 0.1, 0.05, 0.15, err=0.02), policy)
    assert problems == ["cost $2.0000/1k above $1.5", "p95 0.80 s above 0.6 s", "error rate 0.020 above 0.01"]
    # each limit alone: at the limit passes, just above it is named
    assert violations(cand(9, 0.9, 1.5, 0.6, 0.1, 0.05, 0.15, err=0.01), policy) == []
    assert violations(cand(9, 0.9, 1.6, 0.6, 0.1, 0.05, 0.15, err=0.01), policy) == ["cost $1.6000/1k above $1.5"]


def test_nothing_passes_names_the_least_bad_with_its_risks():
    worse = [cand(1, 0.5, 1.0, 0.5, -0.25, -0.35, -0.15), cand(2, 0.6, 2.0, 0.5, -0.15, -0.25, -0.05)]
    s = select_release(0.75, worse)
    assert s.trial_id is None and s.recommended_trial_id == 2
    assert "no front config meets the policy" in s.reason and "trial 2" in s.reason and "risks" in s.reason


def test_no_candidates():
    s = select_release(0.75, [])
    assert s.trial_id is None and s.recommended_trial_id is None and "nothing to select" in s.reason
