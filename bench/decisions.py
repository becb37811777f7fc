"""Decision agreement (part of bench/search_efficiency.py; not a test, nothing asserts).

On each seed of the synthetic universe: does offramp, stopped at a share of the grid's calls, select
the config the FULL grid selects, under the default policy and with offramp's own selection code?
Both sides end like a study: the incumbent on dev and test, the front (feasible completed dev
trials, p95 within noise tied: tasks.search.pareto) confirmed on the held-out test split (N_TEST
examples; answers share a per-example difficulty, TEST_RHO), each front config compared pairwise
with the incumbent (tasks.evidence.compare.compare_paired), judged (tasks.evidence.judge.candidate)
and selected (tasks.evidence.policy.select_release, SelectionPolicy()). The incumbent is a synthetic
retiring model (INCUMBENT_LOGIT). CALLS = distinct (split, config, example) pairs, dev and test,
the incumbent's included on both sides.

Confirmation: `front` (what a study does today: every front config on test) and `can_win` (only
what can still win: a front config whose dev quality, even at the top of its interval, is below the
incumbent's dev quality minus the policy's tolerance cannot be accepted and is not confirmed; the
rest in ascending dev cost, stopping once a config is accepted and every config left costs more,
on dev, than the accepted one on test plus COST_SLACK: under `prefer: cheapest` none of them can be
preferred). That is tasks/evidence/confirm.py, the rule the study applies. The grid always confirms its whole front: it is the reference decision.

offramp runs ONCE per seed with the largest budget; the decision at a smaller share is made from
the trials that had completed when its calls reached that share (the same trajectory: the sampler
is seeded by the number of finished trials).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import statistics
import sys
from typing import Any

import numpy as np

from bench import universe as se
from offramp.search_spaces.schema import Config
from offramp.tasks.evidence.compare import PairedExample, compare_paired
from offramp.tasks.evidence.confirm import chosen, confirmation_order, settled
from offramp.tasks.evidence.judge import candidate
from offramp.tasks.evidence.policy import SelectionPolicy, select_release
from offramp.tasks.search.ask_tell import DIRECTIONS, run_search
from offramp.warehouse.records import TrialMeasurement

SHARES = (0.1, 0.2, 0.3, 0.4)  # of the grid's calls (dev and test), where offramp's decision is read
CONFIRM = ("front", "can_win")
DEFAULT_POLICY = SelectionPolicy()


@dataclasses.dataclass
class Decision:
    selected: int | None
    dev_calls: int
    test_calls: int
    confirmed: int
    front: int


def incumbent_answers(u: se.Universe, seed: int, split: str) -> np.ndarray:
    """The retiring model's correct answers (its shipped prompt; none cut off)."""
    size, slices = (se.N_DEV, u.slices) if split == "dev" else (se.N_TEST, u.test_slices)
    acc = 1 / (1 + np.exp(-(se.INCUMBENT_LOGIT + se.SLICE_OFFSET)))
    draw = np.random.default_rng([seed, 10**6, split == "test"]).random(size)
    if split == "test":
        from scipy.stats import norm

        draw = norm.cdf(math.sqrt(se.TEST_RHO) * u.test_difficulty + math.sqrt(1 - se.TEST_RHO) * norm.ppf(draw))
    return draw < acc[slices]


def decide(u: se.Universe, sim: se.Simulator, done: list[tuple[int, TrialMeasurement]], dev_calls: int, seed: int,
           confirm: str, policy: SelectionPolicy = DEFAULT_POLICY) -> Decision:
    """A study's ending after a search that made `dev_calls`: the front confirmed on test,
    compared with the incumbent, selected."""
    sim = copy.copy(sim)
    sim.seen, sim.extra = dict(sim.seen), set(sim.extra)  # a ledger of its own: test calls of this confirmation only
    dev = dict(done)
    front = se.returned_front(done)
    inc_dev, inc_test = incumbent_answers(u, seed, "dev"), incumbent_answers(u, seed, "test")
    order = sorted(front, key=lambda i: (dev[i].cost_per_1k_usd, -dev[i].quality, i))
    if confirm == "can_win":  # offramp's own rule (tasks.evidence.confirm), as the study applies it
        order, _ = confirmation_order({i: dev[i] for i in front}, TrialMeasurement(quality=float(inc_dev.mean())), policy)
    candidates = []
    for n, i in enumerate(order):
        test = sim.observe(i, se.N_TEST, "test")
        correct = sim.draws("test", i)[0]
        paired = [PairedExample(f"t{e}", {"slice": f"s{u.test_slices[e]}"}, float(inc_test[e]), float(correct[e]), None, None, "")
                  for e in range(se.N_TEST)]
        candidates.append(candidate(i, u.configs[i].label(), test, compare_paired(paired, seed=seed)))
        if confirm == "can_win" and settled(chosen(select_release(float(inc_test.mean()), candidates, policy), candidates),
                                            [dev[j] for j in order[n + 1:]], policy):
            break
    selection = select_release(float(inc_test.mean()), candidates, policy)
    return Decision(selection.trial_id, dev_calls + se.N_DEV, sim.calls_of("test") + se.N_TEST, len(candidates), len(front))


def offramp_trajectory(u: se.Universe, seed: int, budget: float, sampler: str) -> tuple[se.Simulator, list[tuple[int, int, TrialMeasurement]]]:
    """One offramp search (racing on) up to `budget` of the grid's dev calls: every completed
    trial with the dev calls spent when it completed."""
    sim = se.Simulator(u, seed, int(budget * len(u.configs) * se.N_DEV))
    calls_at: dict[int, int] = {}

    def evaluate(config: Config, number: int, fraction: float) -> TrialMeasurement:
        m = sim.observe(u.index[config.config_hash()], math.ceil(fraction * se.N_DEV - 1e-9))
        calls_at[number] = sim.calls
        return m

    import optuna

    study = optuna.create_study(directions=DIRECTIONS)
    result = run_search(study, u.space, u.incumbent, u.space.models, evaluate, seed=seed,
                        max_trials=se.max_trials(u), stages=(0.2, 0.5, 1.0), sampler=sampler)
    done = [(calls_at[o.number], u.index[o.config.config_hash()], o.measurement) for o in result.outcomes
            if o.state == "complete" and o.measurement is not None]
    return sim, done


def agreement(u: se.Universe, seeds: int, sampler: str) -> list[dict[str, Any]]:
    """Per seed and share: the grid's decision, offramp's under each confirmation, and the calls."""
    rows = []
    for seed in range(seeds):
        grid_sim = se.Simulator(u, seed, len(u.configs) * se.N_DEV)
        grid_run = se.run_order(u, grid_sim, np.arange(len(u.configs)))
        grid = decide(u, grid_sim, grid_run.done, grid_sim.calls, seed, "front")
        grid_calls = grid.dev_calls + grid.test_calls
        sim, trajectory = offramp_trajectory(u, seed, max(SHARES), sampler)
        for share, confirm in itertools.product(SHARES, CONFIRM):
            d = read_at(u, sim, trajectory, share * grid_calls, seed, confirm)
            rows.append({"seed": seed, "share": share, "confirm": confirm, "same": d.selected == grid.selected,
                         "calls": (d.dev_calls + d.test_calls) / grid_calls, "test_calls": d.test_calls,
                         "confirmed": d.confirmed, "front": d.front, "selected": d.selected, "grid": grid.selected,
                         "grid_front": grid.front, "grid_test_calls": grid.test_calls})
    return rows


def read_at(u: se.Universe, sim: se.Simulator, trajectory: list[tuple[int, int, TrialMeasurement]], calls: float, seed: int,
            confirm: str) -> Decision:
    """offramp's decision from the trials completed while its dev calls left room for its own test
    phase inside `calls` (dev + test): the test phase is known once decided, so at most 3 tries."""
    test = 0
    for _ in range(3):
        budget = calls - test - se.N_DEV
        done = [(calls_, i, m) for calls_, i, m in trajectory if calls_ <= budget]
        decision = decide(u, sim, [(i, m) for _, i, m in done], max((c for c, _, _ in done), default=0), seed, confirm)
        if decision.dev_calls + decision.test_calls <= calls:
            return decision
        test = decision.test_calls
    return decision


def label(u: se.Universe, i: int | None) -> str:
    return "nothing accepted" if i is None else f"{u.configs[i].label()} [{u.kind[i]}]"


def print_table(u: se.Universe, rows: list[dict[str, Any]], seeds: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(f"decision agreement with the full grid (default policy), {seeds} seeds; calls = share of the grid's "
                           "dev + test calls, median [min-max]"))
    for name in ("share", "confirm", "same decision", "calls", "test calls", "confirmed / front"):
        t.add_column(name)
    for share in SHARES:
        for confirm in CONFIRM:
            sel = [r for r in rows if r["share"] == share and r["confirm"] == confirm]
            t.add_row(f"{share:.0%}", confirm, f"{sum(r['same'] for r in sel)}/{len(sel)}", escape(se.spread([r["calls"] for r in sel])),
                      escape(se.spread([r["test_calls"] for r in sel], 0)),
                      f"{statistics.median(r['confirmed'] for r in sel):.0f} / {statistics.median(r['front'] for r in sel):.0f}")
    Console(width=200, file=sys.stdout).print(t)
    for seed in range(seeds):
        first = next(r for r in rows if r["seed"] == seed)
        print(f"seed {seed}: grid selects {label(u, first['grid'])} (front {first['grid_front']}, {first['grid_test_calls']} test calls)")
        for r in (r for r in rows if r["seed"] == seed and r["confirm"] == "can_win" and not r["same"]):
            print(f"    at {r['share']:.0%} offramp (can_win) selects {label(u, r['selected'])}")
    best = [s for s in SHARES if sum(r["same"] for r in rows if r["share"] == s and r["confirm"] == "can_win") >= 0.8 * seeds]
    met = [s for s in best if max(r["calls"] for r in rows if r["share"] == s and r["confirm"] == "can_win") <= 0.4]
    print(f"target: the grid's decision on >= 80% of seeds with <= 40% of its calls -> "
          f"{'MET at ' + format(min(met), '.0%') if met else 'MISSED'}")
