"""Benchmark: how much of the TRUE Pareto front does each search find per call spent? (not a test; nothing asserts)

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.search_efficiency [--seeds 5] [--json]`.

A synthetic universe with known truth (no LLM, no network): 8 models x 8 strategy variants (incumbent,
zero_shot, few_shot k 2/4/8/16, mipro k 4/8) x temperature {0, 0.7} x max_tokens {16, 64} x output_mode
{text, json_schema} = 512 configs, built by search_spaces.optuna_space.suggest_config from FixedTrials. Per config: a
true accuracy on 4 slices (model ability + strategy gain scaled per model + model x strategy/slice/json/
temperature interactions + per-config noise, seeded); a true answer length (uniform; longer than
max_tokens = cut off: wrong and an error, so json_schema at 16 tokens breaks Limits' 20% error rate); a
true price per request (prompt tokens incl. demos x input price + E[output tokens] x output price); a
lognormal latency (p95 analytic). Dev = 200 slice-tagged examples; evaluating on a fraction f draws the
first ceil(200 f) answers from an rng seeded by (repetition seed, config), so a re-evaluated prefix gives
the same answers (like offramp's cache). quality_ci_high = Wilson 95% upper bound. CALLS = distinct
(config, example) pairs evaluated.

Methods, at 10/25/50% of the grid's calls (512 x 200): grid (every config on all of dev in ONE fixed
random order until the next would exceed the budget), random (the same, per-seed order), offramp
(run_search, tpe, stages 0.2/0.5/1.0) and offramp_no_racing (stages (1.0,)). offramp stops from inside
`evaluate`: a stage whose NEW calls would exceed the budget raises BudgetExceeded. TPE re-proposes configs
it has measured; run_search skips those repeats (not counted) and after 3 of them enqueues an untried
config; MAX_TRIALS = 600 (~1.2 x the space) bounds a run. `--sampler nsga2|random` swaps the sampler of
the two offramp methods (how the default, TPE, was chosen).
Score: the returned front (non-dominated feasible completed configs by OBSERVED objectives) is scored by
its TRUE (quality, cost, p95): hypervolume / true front's, one reference point (quality 0, 1.1 x max
cost, 1.1 x max p95 over all configs), exact via optuna._hypervolume.compute_hypervolume. That far point
makes the ratio forgiving, so the table adds the ratio with a TIGHT reference (true front's nadir + 10%
of its range) and `found` = share of true-front configs in the returned front.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from optuna._hypervolume import compute_hypervolume  # noqa: E402

from offramp.errors import BudgetExceeded  # noqa: E402
from offramp.search_spaces.optuna_space import search_distributions, suggest_config  # noqa: E402
from offramp.search_spaces.schema import Config, SearchSpace, Settings, SettingsGrid, StrategyOptions  # noqa: E402
from offramp.tasks.search.ask_tell import DIRECTIONS, Limits, run_search  # noqa: E402
from offramp.tasks.search.pareto import Point, pareto_front  # noqa: E402
from offramp.warehouse.records import TrialMeasurement  # noqa: E402

# name, ability (logit), $/M input tokens, $/M output tokens, latency overhead (s), s per output token, latency sigma
MODELS = (
    ("m0-tiny", -1.6, 0.10, 0.40, 0.10, 0.004, 0.25), ("m1-tiny", -1.1, 0.15, 0.60, 0.15, 0.005, 0.30),
    ("m2-small", -0.5, 0.25, 1.00, 0.20, 0.006, 0.30), ("m3-small", -0.1, 0.40, 1.60, 0.30, 0.008, 0.40),
    ("m4-mid", 0.4, 0.60, 2.40, 0.35, 0.010, 0.35), ("m5-mid", 0.8, 1.00, 4.00, 0.45, 0.012, 0.45),
    ("m6-large", 1.3, 1.50, 6.00, 0.60, 0.015, 0.40), ("m7-large", 1.7, 2.50, 10.00, 0.80, 0.020, 0.50),
)
SLICE_SHARES, SLICE_OFFSET = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.9, 0.3, -0.3, -1.0])
N_DEV, MEAN_INPUT, INSTR_TOKENS, DEMO_TOKENS, MIPRO_TOKENS, PREFILL_S = 200, 120, 60, 80, 100, 0.0002
ANSWER_TOKENS = {"text": (4, 18), "json_schema": (10, 26)}  # answer length ~ uniform integer, inclusive
BUDGETS, METHODS, Z95 = (0.1, 0.25, 0.5), ("grid", "random", "offramp", "offramp_no_racing"), 1.6448536
MAX_TRIALS, LIMITS = 600, Limits()  # offramp's trial cap (see the docstring); hard limits as run_search's default


@dataclasses.dataclass
class Universe:
    space: SearchSpace
    incumbent: Config
    configs: list[Config]
    index: dict[str, int]  # config_hash -> position
    acc: np.ndarray  # (n, 4) per-slice accuracy of an answer that is not cut off
    a: dict[str, np.ndarray]  # per config: prompt (tokens, without the example), price_in/price_out ($/token),
    # max_tokens, lo/hi (answer length range), p_ok (P(answer fits)), e_out (E[output tokens]), median/sigma (latency)
    slices: np.ndarray  # dev: slice of each example
    lengths: np.ndarray  # dev: input tokens of each example
    quality: np.ndarray  # TRUE quality (expected accuracy over the slice shares)
    error: np.ndarray  # TRUE error rate (answers cut off)
    cost: np.ndarray  # TRUE $ per 1k requests
    p95: np.ndarray  # TRUE p95 latency (s)
    ref: np.ndarray = dataclasses.field(init=False)
    tight_ref: np.ndarray = dataclasses.field(init=False)
    true_front: set[int] = dataclasses.field(init=False)
    true_hv: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.ref = np.array([0.0, 1.1 * self.cost.max(), 1.1 * self.p95.max()])  # the benchmark's reference point
        feasible = [i for i in range(len(self.configs)) if self.error[i] <= LIMITS.max_error_rate]
        self.true_front = front_of([(i, self.quality[i], self.cost[i], self.p95[i]) for i in feasible])
        front = np.array([[-self.quality[i], self.cost[i], self.p95[i]] for i in self.true_front])
        self.tight_ref = front.max(0) + 0.1 * (front.max(0) - front.min(0))  # true front's nadir + 10% of its range
        self.true_hv = self.hv(self.true_front)

    def hv(self, idxs: set[int], tight: bool = False) -> float:
        """Hypervolume of configs by their TRUE objectives (minimisation form: quality negated);
        points outside the reference box add nothing."""
        ref = self.tight_ref if tight else self.ref
        points = np.array([[-self.quality[i], self.cost[i], self.p95[i]] for i in sorted(idxs)]).reshape(-1, 3)
        points = points[(points < ref).all(1)]
        return float(compute_hypervolume(points, ref)) if len(points) else 0.0


def front_of(rows: list[tuple[int, float, float, float]]) -> set[int]:
    """Config indices of the non-dominated rows (idx, quality, cost, latency); ties kept."""
    points = [Point(k, q, c, lat) for k, (_, q, c, lat) in enumerate(rows)]
    return {rows[p.key][0] for p in pareto_front(points)}


def build_universe(seed: int = 0) -> Universe:
    """Every config of the space (via suggest_config over FixedTrials) with its true behaviour."""
    rng = np.random.default_rng(seed)
    space = SearchSpace(
        name="synthetic", models=[m[0] for m in MODELS],
        strategies={"incumbent": StrategyOptions(), "zero_shot": StrategyOptions(),
                    "few_shot": StrategyOptions(k=[2, 4, 8, 16]), "mipro": StrategyOptions(k=[4, 8], budget=8)},
        settings=SettingsGrid(temperature=[0.0, 0.7], max_tokens=[16, 64], output_mode=["text", "json_schema"]))
    incumbent = Config(model="legacy/retired", instructions="Route the ticket.",
                       settings=Settings(temperature=0.0, max_tokens=64, output_mode="text", demos=4))
    models = space.models
    choices = search_distributions(space, incumbent, models)
    variants = [(s, k) for s in choices["strategy"] for k in (space.strategies[s].k or [None])]
    expected = len(models) * len(variants) * len(choices["temperature"]) * len(choices["max_tokens"]) * len(choices["output_mode"])
    configs = []
    for m, (s, k), t, mt, mode in itertools.product(models, variants, choices["temperature"], choices["max_tokens"], choices["output_mode"]):
        params: dict[str, Any] = {"model": m, "strategy": s, "temperature": t, "max_tokens": mt, "output_mode": mode}
        if k is not None:
            params[f"{s}.k"] = k
        configs.append(suggest_config(optuna.trial.FixedTrial(params), space, incumbent, models))
    index = {c.config_hash(): i for i, c in enumerate(configs)}
    assert len(configs) == expected == len(index), (len(configs), expected, len(index))
    n, rank = len(configs), {m[0]: r for r, m in enumerate(MODELS)}
    spec = {m[0]: m for m in MODELS}
    gain = {"incumbent": lambda k: 0.3, "zero_shot": lambda k: 0.0,
            "few_shot": lambda k: 0.3 * math.log2(k) - 0.02 * k, "mipro": lambda k: 0.6 + 0.25 * math.log2(k)}
    x_strategy = {(m, v): rng.normal(0, 0.15) for m in models for v in variants}
    x_slice, x_json, x_temp = ({m: rng.normal(0, 0.25, 4) for m in models}, {m: rng.normal(0, 0.2) for m in models},
                               {m: rng.normal(-0.12, 0.08) for m in models})
    arr = {key: np.zeros(n) for key in ("prompt", "price_in", "price_out", "max_tokens", "lo", "hi", "median", "sigma", "p_ok", "e_out")}
    acc = np.zeros((n, 4))
    for i, c in enumerate(configs):
        m, s, st = c.model, c.strategy.name, c.settings
        _, ability, p_in, p_out, overhead, per_token, sigma = spec[m]
        k = c.strategy.k or None
        logit = (ability + SLICE_OFFSET + x_slice[m] + gain[s](k) * (1.1 - 0.05 * rank[m]) + x_strategy[(m, (s, k))]
                 + (x_json[m] if st.output_mode == "json_schema" else 0.0) + (x_temp[m] if st.temperature > 0 else 0.0)
                 + rng.normal(0, 0.1, 4))
        acc[i] = 1 / (1 + np.exp(-logit))
        lo, hi = ANSWER_TOKENS[st.output_mode]
        lengths = np.arange(lo, hi + 1)
        demos = st.demos if s == "incumbent" else c.strategy.k
        prompt = INSTR_TOKENS + DEMO_TOKENS * demos + (MIPRO_TOKENS if s == "mipro" else 0)
        e_out = float(np.minimum(lengths, st.max_tokens).mean())
        values = dict(prompt=prompt, price_in=p_in * 1e-6, price_out=p_out * 1e-6, max_tokens=st.max_tokens, lo=lo, hi=hi,
                      median=overhead + PREFILL_S * (prompt + MEAN_INPUT) + per_token * e_out, sigma=sigma,
                      p_ok=float((lengths <= st.max_tokens).mean()), e_out=e_out)
        for key, value in values.items():
            arr[key][i] = value
    cost = 1000 * (arr["price_in"] * (arr["prompt"] + MEAN_INPUT) + arr["price_out"] * arr["e_out"])
    return Universe(space, incumbent, configs, index, acc, arr, rng.choice(4, size=N_DEV, p=SLICE_SHARES),
                    rng.integers(MEAN_INPUT - 60, MEAN_INPUT + 61, size=N_DEV), arr["p_ok"] * (acc @ SLICE_SHARES),
                    1 - arr["p_ok"], cost, arr["median"] * np.exp(Z95 * arr["sigma"]))


class Simulator:
    """Per-(repetition seed, config) answers on dev, deterministic, and the call ledger of one run."""

    def __init__(self, u: Universe, seed: int, budget_calls: int) -> None:
        self.u, self.seed, self.budget = u, seed, budget_calls
        self.seen: dict[int, int] = {}  # config -> longest dev prefix evaluated
        self._draws: dict[int, tuple[np.ndarray, ...]] = {}

    @property
    def calls(self) -> int:
        return sum(self.seen.values())

    def observe(self, i: int, n: int) -> TrialMeasurement:
        """Evaluate config i on the first n dev examples; BudgetExceeded if the new calls exceed the budget."""
        new = max(0, n - self.seen.get(i, 0))
        if self.calls + new > self.budget:
            raise BudgetExceeded(f"budget {self.budget} calls")
        self.seen[i] = max(n, self.seen.get(i, 0))
        if i not in self._draws:
            u, rng = self.u, np.random.default_rng([self.seed, i])
            a = {key: value[i] for key, value in u.a.items()}
            answer = rng.integers(int(a["lo"]), int(a["hi"]) + 1, size=N_DEV)
            cut = answer > a["max_tokens"]
            correct = ~cut & (rng.random(N_DEV) < u.acc[i, u.slices])
            cost = a["price_in"] * (a["prompt"] + u.lengths) + a["price_out"] * np.minimum(answer, a["max_tokens"])
            latency = a["median"] * np.exp(a["sigma"] * rng.standard_normal(N_DEV))
            self._draws[i] = (correct, cut, cost, latency)
        correct, cut, cost, latency = (x[:n] for x in self._draws[i])
        p, z = float(correct.mean()), 1.96
        high = (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
        return TrialMeasurement(quality=p, quality_ci_high=min(1.0, high), cost_per_1k_usd=1000 * float(cost.mean()),
                                latency_p95_s=float(np.percentile(latency, 95)), error_rate=float(cut.mean()), n_examples=n)


@dataclasses.dataclass
class Run:
    front: set[int]  # the returned front (config indices)
    calls: int
    trials: int
    distinct: int  # distinct configs tried
    pruned: int = 0  # trials stopped by racing
    pruned_true_front: int = 0  # true-front configs racing pruned and never completed
    stopped_by: str | None = "budget"


def returned_front(done: list[tuple[int, TrialMeasurement]]) -> set[int]:
    ok = [(i, o.quality, o.cost_per_1k_usd, o.latency_p95_s) for i, o in done
          if all(v <= 0 for v in LIMITS.violations(o).values())]
    return front_of(ok)


def run_order(u: Universe, sim: Simulator, order: np.ndarray) -> Run:
    """grid / random: full evaluations in the given order until the next one would exceed the budget."""
    done = []
    for i in order:
        try:
            done.append((int(i), sim.observe(int(i), N_DEV)))
        except BudgetExceeded:
            break
    return Run(returned_front(done), sim.calls, len(done), len(done))


SAMPLER = "tpe"


def run_offramp(u: Universe, sim: Simulator, seed: int, stages: tuple[float, ...]) -> Run:
    def evaluate(config: Config, number: int, fraction: float) -> TrialMeasurement:
        return sim.observe(u.index[config.config_hash()], math.ceil(fraction * N_DEV - 1e-9))

    study = optuna.create_study(directions=DIRECTIONS)
    result = run_search(study, u.space, u.incumbent, u.space.models, evaluate, seed=seed,
                        max_trials=MAX_TRIALS, stages=stages, sampler=SAMPLER)
    done = [(u.index[o.config.config_hash()], o.measurement) for o in result.outcomes
            if o.state == "complete" and o.measurement is not None]
    pruned = [u.index[o.config.config_hash()] for o in result.outcomes if o.state == "pruned"]
    never_completed = (set(pruned) - {i for i, _ in done}) & u.true_front
    return Run(returned_front(done), sim.calls, len(result.outcomes), len(sim.seen), len(pruned),
               len(never_completed), result.stopped_by)


def run_method(u: Universe, method: str, budget: float, seed: int) -> Run:
    sim = Simulator(u, seed, int(budget * len(u.configs) * N_DEV))
    if method == "grid":
        return run_order(u, sim, np.random.default_rng(12345).permutation(len(u.configs)))
    if method == "random":
        return run_order(u, sim, np.random.default_rng([seed, 7]).permutation(len(u.configs)))
    return run_offramp(u, sim, seed, (0.2, 0.5, 1.0) if method == "offramp" else (1.0,))


def spread(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="repetitions per (method, budget)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object, last line")
    parser.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe", help="sampler of the offramp methods")
    args = parser.parse_args()
    global SAMPLER
    SAMPLER = args.sampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.monotonic()
    u = build_universe()
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
