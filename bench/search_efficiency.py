"""Benchmark: how much of the TRUE Pareto front does each search find per call spent, and does it reach the
decision the full grid reaches? (not a test; nothing asserts)

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.search_efficiency [--seeds 5] [--json]
[--only fronts|decisions]`.

A synthetic universe with known truth (no LLM, no network): 8 models x 11 strategy variants x temperature
{0, 0.7} x max_tokens {16, 64} x output_mode {text, json_schema} = 704 points of the Optuna space, built by
search_spaces.optuna_space.suggest_config from FixedTrials. Strategy variants: incumbent, zero_shot, few_shot
k 2/4/8/16, mipro k 4/8 (512 "base" configs), and two synthetic strategies this bench registers in its own
process (offramp's registry takes a class per strategy; the real `tuned` and composite strategies are built
elsewhere, so they are modelled here, not called):
- `bench_cascade` k 1/2 (128 configs): the config's model with the shipped prompt and the config's settings,
  escalated to m7-large/mipro k=8 with the same settings when unsure: always on a cut-off answer, else with
  P(escalate | wrong, right) = (0.6, 0.1) at k=1, (0.85, 0.3) at k=2 (a confidence signal of that quality).
  Its answers ARE its two configs' answers (shared draws), its cost and latency the sum of the calls it made,
  its calls the (config, example) pairs it needed (shared with those configs, as offramp's cache shares them);
- `bench_tuned` (8 configs): a classifier trained on train, the config's model its teacher for the unlabelled
  part: logit = 0.5 x the teacher's shipped-prompt logit + 0.5 x a gold-label logit (1.5 + slice offset) +
  a per-slice data term (+0.3, +0.1, -0.4, -1.0: rare slices suffer); $2 per 1M requests of machine time,
  20 ms median latency, never cut off. It ignores decoding settings: its 8 settings are one config (the
  same answers), 648 configs in all.
Per base config: a true accuracy on 4 slices (model ability + strategy gain scaled per model + model x
strategy/slice/json/temperature interactions + per-config noise, seeded); a true answer length (uniform;
longer than max_tokens = cut off: wrong and an error, so json_schema at 16 tokens breaks Limits' 20% error
rate); a true price per request (prompt tokens incl. demos x input price + E[output tokens] x output price);
a lognormal latency (p95 analytic; a cascade's by Monte Carlo). Dev = 200 slice-tagged examples; evaluating
on a fraction f draws the first ceil(200 f) answers from an rng seeded by (repetition seed, config), so a
re-evaluated prefix gives the same answers (like offramp's cache). quality_ci_high = Wilson 95% upper
bound; the p95 carries its 95% bootstrap interval as offramp measures it, and fronts tie p95s within noise
(tasks.search.pareto). CALLS = distinct (config, example) pairs evaluated.

Methods, at 10/25/50% of the grid's calls (648 x 200): grid (every config on all of dev in ONE fixed
random order until the next would exceed the budget), random (the same, per-seed order), offramp
(run_search, tpe, stages 0.2/0.5/1.0) and offramp_no_racing (stages (1.0,)). offramp stops from inside
`evaluate`: a stage whose NEW calls would exceed the budget raises BudgetExceeded. TPE re-proposes configs
it has measured; run_search skips those repeats (not counted) and after 3 of them enqueues an untried
config; max_trials (~1.2 x the space's points) bounds a run. `--sampler nsga2|random` swaps the sampler of
the two offramp methods (how the default, TPE, was chosen).
Score: the returned front (non-dominated feasible completed configs by OBSERVED objectives) is scored by
its TRUE (quality, cost, p95): hypervolume / true front's, one reference point (quality 0, 1.1 x max
cost, 1.1 x max p95 over all configs), exact via optuna._hypervolume.compute_hypervolume. That far point
makes the ratio forgiving, so the table adds the ratio with a TIGHT reference (true front's nadir + 10%
of its range) and `found` = share of true-front configs in the returned front.

The decision table (bench/decisions.py, its docstring says how): on each seed, does offramp select, under
the default policy and with the study's own selection code, the config the full grid selects, and with
what share of the grid's calls (dev and test)?
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/search_efficiency.py` works too
import optuna  # noqa: E402

from bench.universe import (  # noqa: E402
    BUDGETS,
    METHODS,
    N_DEV,
    Run,
    Simulator,
    Universe,
    build_universe,
    max_trials,
    returned_front,
    run_order,
    spread,
)
from offramp.search_spaces.schema import Config  # noqa: E402
from offramp.tasks.search.ask_tell import DIRECTIONS, run_search  # noqa: E402
from offramp.warehouse.records import TrialMeasurement  # noqa: E402

SAMPLER = "tpe"


def run_offramp(u: Universe, sim: Simulator, seed: int, stages: tuple[float, ...]) -> Run:
    def evaluate(config: Config, number: int, fraction: float) -> TrialMeasurement:
        return sim.observe(u.index[config.config_hash()], math.ceil(fraction * N_DEV - 1e-9))

    study = optuna.create_study(directions=DIRECTIONS)
    result = run_search(study, u.space, u.incumbent, u.space.models, evaluate, seed=seed,
                        max_trials=max_trials(u), stages=stages, sampler=SAMPLER)
    done = [(u.index[o.config.config_hash()], o.measurement) for o in result.outcomes
            if o.state == "complete" and o.measurement is not None]
    pruned = [u.index[o.config.config_hash()] for o in result.outcomes if o.state == "pruned"]
    never_completed = (set(pruned) - {i for i, _ in done}) & u.true_front
    distinct = {u.index[o.config.config_hash()] for o in result.outcomes if o.measurement is not None}
    return Run(returned_front(done), sim.calls, len(result.outcomes), len(distinct), len(pruned),
               len(never_completed), result.stopped_by, done)


def run_method(u: Universe, method: str, budget: float, seed: int) -> Run:
    sim = Simulator(u, seed, int(budget * len(u.configs) * N_DEV))
    if method == "grid":
        return run_order(u, sim, np.random.default_rng(12345).permutation(len(u.configs)))
    if method == "random":
        return run_order(u, sim, np.random.default_rng([seed, 7]).permutation(len(u.configs)))
    return run_offramp(u, sim, seed, (0.2, 0.5, 1.0) if method == "offramp" else (1.0,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="repetitions per (method, budget)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object, last line")
    parser.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe", help="sampler of the offramp methods")
    parser.add_argument("--only", choices=("fronts", "decisions"), help="one of the two tables (default: both)")
    args = parser.parse_args()
    global SAMPLER
    SAMPLER = args.sampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.monotonic()
    u = build_universe()
    if args.only != "fronts":
        from bench import decisions

        rows = decisions.agreement(u, args.seeds, args.sampler)
        decisions.print_table(u, rows, args.seeds)
        print(f"decision agreement run time {time.monotonic() - started:.0f} s")
        if args.only == "decisions":
            return
    grid_calls, tight_hv = len(u.configs) * N_DEV, u.hv(u.true_front, tight=True)
    rows: list[dict[str, Any]] = []
    for budget, seed, method in itertools.product(BUDGETS, range(args.seeds), METHODS):
        r = run_method(u, method, budget, seed)
        rows.append({"method": method, "budget": budget, "calls_fraction": r.calls / grid_calls,
                     "hv_ratio": u.hv(r.front) / u.true_hv, "seed": seed, "tight": u.hv(r.front, tight=True) / tight_hv,
                     "found": len(r.front & u.true_front) / len(u.true_front), "trials": r.trials, "distinct": r.distinct,
                     "pruned": r.pruned, "pruned_front": r.pruned_true_front, "stopped_by": r.stopped_by})
    ceiling = [u.hv(run_method(u, "grid", 1.0, s).front) / u.true_hv for s in range(args.seeds)]
    elapsed = time.monotonic() - started

    def col(method: str, budget: float, key: str) -> list[Any]:  # one value per seed
        return [r[key] for r in rows if r["method"] == method and r["budget"] == budget]

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    columns = {"calls_fraction": 3, "hv_ratio": 3, "tight": 3, "found": 2, "trials": 0, "distinct": 0, "pruned": 0, "pruned_front": 0}
    t = Table(title=escape(f"search efficiency: {len(u.configs)} configs, grid = {grid_calls} calls, true front "
                           f"{len(u.true_front)} configs; {args.seeds} seeds, median [min-max]"))
    for name in ("method", "budget", "calls_fraction", "hv_ratio", "hv_ratio tight", "front found", "trials", "distinct",
                 "pruned", "front pruned", "stopped_by"):
        t.add_column(name)
    for budget, method in itertools.product(BUDGETS, METHODS):
        cells = [escape(spread(col(method, budget, key), d)) for key, d in columns.items()]
        t.add_row(method, f"{budget:.0%}", *cells, ",".join(sorted({str(x) for x in col(method, budget, "stopped_by")})))
    Console(width=200, file=sys.stdout).print(t)
    print(f"noise ceiling (grid at 100% of calls, hv_ratio): {spread(ceiling)}; run time {elapsed:.0f} s")
    med = {(m, b): statistics.median(col(m, b, "hv_ratio")) for m, b in itertools.product(METHODS, BUDGETS)}
    cf = max(col("offramp", 0.25, "calls_fraction"))
    print(f"target 1: offramp >= 0.95 of true HV with <= 25% of the grid's calls: median {med[('offramp', 0.25)]:.3f} at "
          f"<= {cf:.1%} of calls -> {'MET' if med[('offramp', 0.25)] >= 0.95 and cf <= 0.25 else 'MISSED'}")
    for b in BUDGETS:  # "clearly ahead": median hv_ratio +0.02 or more and ahead on >= 80% of paired seeds
        wins = sum(x > y for x, y in zip(col("offramp", b, "hv_ratio"), col("random", b, "hv_ratio")))
        diff, m = med[("offramp", b)] - med[("random", b)], lambda method, key: statistics.median(col(method, b, key))
        print(f"target 2 @ {b:.0%}: offramp {m('offramp', 'hv_ratio'):.3f} vs random {m('random', 'hv_ratio'):.3f} "
              f"(median diff {diff:+.3f}, offramp ahead on {wins}/{args.seeds} seeds; calls {m('offramp', 'calls_fraction'):.1%} vs "
              f"{m('random', 'calls_fraction'):.1%}) -> {'MET' if diff >= 0.02 and wins >= 0.8 * args.seeds else 'MISSED'} "
              f"(clearly ahead = median +0.02, >= 80% of seeds); true front found {m('offramp', 'found'):.2f} vs {m('random', 'found'):.2f}")
    for b in BUDGETS:
        print(f"racing keeps front members @ {b:.0%}: true front found with racing {spread(col('offramp', b, 'found'), 2)} vs "
              f"without {spread(col('offramp_no_racing', b, 'found'), 2)}; true-front configs pruned by racing and never "
              f"completed: {sum(col('offramp', b, 'pruned_front'))} over {args.seeds} runs")
    if args.json:
        print(json.dumps({"results": [{k: r[k] for k in ("method", "budget", "calls_fraction", "hv_ratio", "seed")} for r in rows]}))


if __name__ == "__main__":
    main()
