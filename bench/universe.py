"""The synthetic universe of bench/search_efficiency.py (its docstring describes it): every config with its
true behaviour, a simulator of its answers per split, and the fronts offramp's rule returns."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

from offramp.errors import BudgetExceeded
from offramp.search_spaces.optuna_space import search_distributions, suggest_config
from offramp.search_spaces.schema import Config, SearchSpace, Settings, SettingsGrid, StrategyOptions
from offramp.search_spaces.strategies import PromptStrategy, register, strategy_names
from offramp.tasks.evidence.bootstrap import percentile_bootstrap
from offramp.tasks.feature.evaluate import BOOTSTRAP_RESAMPLES
from offramp.tasks.search.ask_tell import Limits, latency_noise
from offramp.tasks.search.pareto import Point, pareto_front
from offramp.warehouse.records import TrialMeasurement

# name, ability (logit), $/M input tokens, $/M output tokens, latency overhead (s), s per output token, latency sigma
MODELS = (
    ("m0-tiny", -1.6, 0.10, 0.40, 0.10, 0.004, 0.25), ("m1-tiny", -1.1, 0.15, 0.60, 0.15, 0.005, 0.30),
    ("m2-small", -0.5, 0.25, 1.00, 0.20, 0.006, 0.30), ("m3-small", -0.1, 0.40, 1.60, 0.30, 0.008, 0.40),
    ("m4-mid", 0.4, 0.60, 2.40, 0.35, 0.010, 0.35), ("m5-mid", 0.8, 1.00, 4.00, 0.45, 0.012, 0.45),
    ("m6-large", 1.3, 1.50, 6.00, 0.60, 0.015, 0.40), ("m7-large", 1.7, 2.50, 10.00, 0.80, 0.020, 0.50),
)
SLICE_SHARES, SLICE_OFFSET = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.9, 0.3, -0.3, -1.0])
N_DEV, MEAN_INPUT, INSTR_TOKENS, DEMO_TOKENS, MIPRO_TOKENS, PREFILL_S = 200, 120, 60, 80, 100, 0.0002
N_TEST, TEST_RHO = 200, 0.5  # held-out split; correlation of answers through a shared per-example difficulty
ANSWER_TOKENS = {"text": (4, 18), "json_schema": (10, 26)}  # answer length ~ uniform integer, inclusive
BUDGETS, METHODS, Z95 = (0.1, 0.25, 0.5), ("grid", "random", "offramp", "offramp_no_racing"), 1.6448536
LIMITS = Limits()  # hard limits as run_search's default
# composite-like and tuned-like candidates (synthetic strategies registered by this bench only)
CASCADE_STRONG = ("m7-large", "mipro", 8)  # the escalation target, same settings as the cheap stage
CASCADE_ESCALATE = {1: (0.6, 0.1), 2: (0.85, 0.3)}  # level k -> P(escalate | cheap wrong), P(escalate | cheap right)
TUNED = {"usd_per_request": 2e-6, "median_s": 0.02, "sigma": 0.2, "gold_logit": 1.5, "slice": np.array([0.3, 0.1, -0.4, -1.0])}
TUNED_SETTINGS = (0.0, 64, "text")  # a classifier ignores decoding settings: every other setting is the same config
INCUMBENT_LOGIT = 1.2 + 0.3  # the retiring model's ability + its shipped prompt (between m5 and m6)


class BenchCascade(PromptStrategy):
    name = "bench_cascade"
    summary = "bench only: the config's model with the shipped prompt, escalated to m7-large/mipro k=8 when unsure (k = level)"
    takes = needs = frozenset({"k"})


class BenchTuned(PromptStrategy):
    name = "bench_tuned"
    summary = "bench only: a classifier trained on train, the config's model labelling the unlabelled part (its teacher)"


def register_synthetic() -> None:
    """The bench's synthetic strategies, in this process's registry (never in offramp's)."""
    for cls in (BenchCascade, BenchTuned):
        if cls.name not in strategy_names():
            register(cls)


@dataclasses.dataclass
class Universe:
    space: SearchSpace
    incumbent: Config
    configs: list[Config]  # canonical configs (a tuned config's decoding settings are not part of it)
    index: dict[str, int]  # config_hash (of every point of the space) -> canonical position
    kind: list[str]  # per config: base | cascade | tuned
    parts: dict[int, tuple[int, int, int]]  # cascade -> (cheap config, strong config, level)
    acc: np.ndarray  # (n, 4) per-slice accuracy of an answer that is not cut off (base, tuned)
    a: dict[str, np.ndarray]  # per config: prompt (tokens, without the example), price_in/price_out ($/token),
    # max_tokens, lo/hi (answer length range), p_ok (P(answer fits)), e_out (E[output tokens]), median/sigma (latency)
    slices: np.ndarray  # dev: slice of each example
    lengths: np.ndarray  # dev: input tokens of each example
    test_slices: np.ndarray
    test_lengths: np.ndarray
    test_difficulty: np.ndarray  # per test example, N(0, 1): shared by every config's answer
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
        self.true_front = front_of([(i, self.quality[i], self.cost[i], self.p95[i], 0.0) for i in feasible])
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

    def size(self, kind: str) -> int:
        return sum(1 for k in self.kind if k == kind)


def front_of(rows: list[tuple[int, float, float, float, float]]) -> set[int]:
    """Config indices of the non-dominated rows (idx, quality, cost, latency, latency noise) by
    offramp's own rule (tasks.search.pareto: p95 differences within noise are ties); ties kept."""
    points = [Point(k, q, c, lat, noise) for k, (_, q, c, lat, noise) in enumerate(rows)]
    return {rows[p.key][0] for p in pareto_front(points)}


def _space() -> tuple[SearchSpace, Config]:
    register_synthetic()
    space = SearchSpace(
        name="synthetic", models=[m[0] for m in MODELS],
        strategies={"incumbent": StrategyOptions(), "zero_shot": StrategyOptions(),
                    "few_shot": StrategyOptions(k=[2, 4, 8, 16]), "mipro": StrategyOptions(k=[4, 8], budget=8),
                    "bench_cascade": StrategyOptions(k=[1, 2]), "bench_tuned": StrategyOptions()},
        settings=SettingsGrid(temperature=[0.0, 0.7], max_tokens=[16, 64], output_mode=["text", "json_schema"]))
    incumbent = Config(model="legacy/retired", instructions="Route the ticket.",
                       settings=Settings(temperature=0.0, max_tokens=64, output_mode="text", demos=4))
    return space, incumbent


def build_universe(seed: int = 0) -> Universe:
    """Every config of the space (via suggest_config over FixedTrials) with its true behaviour."""
    rng = np.random.default_rng(seed)
    space, incumbent = _space()
    models = space.models
    choices = search_distributions(space, incumbent, models)
    variants = [(s, k) for s in choices["strategy"] for k in (space.strategies[s].k or [None])]
    points, configs, index = [], [], {}
    for m, (s, k), t, mt, mode in itertools.product(models, variants, choices["temperature"], choices["max_tokens"], choices["output_mode"]):
        params: dict[str, Any] = {"model": m, "strategy": s, "temperature": t, "max_tokens": mt, "output_mode": mode}
        if k is not None:
            params[f"{s}.k"] = k
        points.append(((m, s, k, t, mt, mode), suggest_config(optuna.trial.FixedTrial(params), space, incumbent, models)))
    position = {}
    for key, config in points:
        if key[1] == "bench_tuned" and key[3:] != TUNED_SETTINGS:
            continue
        position[key] = len(configs)
        index[config.config_hash()] = len(configs)
        configs.append(config)
    for key, config in points:  # a tuned config under other decoding settings is the same classifier
        index.setdefault(config.config_hash(), position[(key[0], key[1], key[2], *TUNED_SETTINGS)])
    assert len(index) == len(points), (len(index), len(points))
    n, rank = len(configs), {m[0]: r for r, m in enumerate(MODELS)}
    spec = {m[0]: m for m in MODELS}
    gain = {"incumbent": lambda k: 0.3, "zero_shot": lambda k: 0.0,
            "few_shot": lambda k: 0.3 * math.log2(k) - 0.02 * k, "mipro": lambda k: 0.6 + 0.25 * math.log2(k)}
    base_variants = [v for v in variants if v[0] in gain]
    x_strategy = {(m, v): rng.normal(0, 0.15) for m in models for v in base_variants}
    x_slice, x_json, x_temp = ({m: rng.normal(0, 0.25, 4) for m in models}, {m: rng.normal(0, 0.2) for m in models},
                               {m: rng.normal(-0.12, 0.08) for m in models})
    arr = {key: np.zeros(n) for key in ("prompt", "price_in", "price_out", "max_tokens", "lo", "hi", "median", "sigma", "p_ok", "e_out")}
    acc, kind, parts = np.zeros((n, 4)), ["base"] * n, {}
    for i, c in enumerate(configs):
        m, s, st = c.model, c.strategy.name, c.settings
        if s not in gain:
            kind[i] = s.removeprefix("bench_")
            continue
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
    quality, error = arr["p_ok"] * (acc @ SLICE_SHARES), 1 - arr["p_ok"]
    p95 = arr["median"] * np.exp(Z95 * arr["sigma"])
    of = {(c.model, c.strategy.name, c.strategy.k or None, c.settings.temperature, c.settings.max_tokens,
           c.settings.output_mode): i for i, c in enumerate(configs)}
    mc = np.random.default_rng([seed, 99])
    for i, c in enumerate(configs):
        st = c.settings
        if kind[i] == "tuned":  # the teacher's shipped-prompt answers label what gold does not; rare slices suffer
            teacher = of[(c.model, "incumbent", None, *TUNED_SETTINGS)]
            logit = 0.5 * np.log(acc[teacher] / (1 - acc[teacher])) + 0.5 * (TUNED["gold_logit"] + SLICE_OFFSET) + TUNED["slice"]
            acc[i] = 1 / (1 + np.exp(-logit))
            arr["median"][i], arr["sigma"][i], arr["p_ok"][i] = TUNED["median_s"], TUNED["sigma"], 1.0
            arr["price_in"][i] = TUNED["usd_per_request"]  # per request: the machine time at its declared price
            quality[i], error[i], cost[i] = acc[i] @ SLICE_SHARES, 0.0, 1000 * TUNED["usd_per_request"]
            p95[i] = TUNED["median_s"] * math.exp(Z95 * TUNED["sigma"])
        elif kind[i] == "cascade":
            cheap = of[(c.model, "incumbent", None, st.temperature, st.max_tokens, st.output_mode)]
            strong = of[(*CASCADE_STRONG, st.temperature, st.max_tokens, st.output_mode)]
            parts[i] = (cheap, strong, c.strategy.k)
            quality[i], error[i], cost[i], p95[i] = _cascade_truth(arr, acc, cost, cheap, strong, c.strategy.k, mc)
    return Universe(space, incumbent, configs, index, kind, parts, acc, arr, rng.choice(4, size=N_DEV, p=SLICE_SHARES),
                    rng.integers(MEAN_INPUT - 60, MEAN_INPUT + 61, size=N_DEV), rng.choice(4, size=N_TEST, p=SLICE_SHARES),
                    rng.integers(MEAN_INPUT - 60, MEAN_INPUT + 61, size=N_TEST), rng.standard_normal(N_TEST),
                    quality, error, cost, p95)


def _cascade_truth(arr, acc, cost, cheap: int, strong: int, level: int, mc) -> tuple[float, float, float, float]:
    """Quality, error rate, $ per 1k and p95 of a cascade (answers independent given the slice, as on dev)."""
    wrong_esc, right_esc = CASCADE_ESCALATE[level]
    p = arr["p_ok"][cheap]  # both stages share the settings, so the same cut-off rate
    a_c, a_s = acc[cheap], acc[strong]
    escalate = (1 - p) + p * (a_c * right_esc + (1 - a_c) * wrong_esc)  # per slice
    correct = p * a_c * (1 - right_esc) + (p * (a_c * right_esc + (1 - a_c) * wrong_esc) + (1 - p)) * p * a_s
    # P(correct) if escalated from a right cheap answer uses the strong answer: a_s, independent
    rate = float(escalate @ SLICE_SHARES)
    lat = (arr["median"][cheap] * np.exp(arr["sigma"][cheap] * mc.standard_normal(20_000))
           + (mc.random(20_000) < rate) * arr["median"][strong] * np.exp(arr["sigma"][strong] * mc.standard_normal(20_000)))
    return float(correct @ SLICE_SHARES), rate * (1 - p), float(cost[cheap] + rate * cost[strong]), float(np.percentile(lat, 95))


class Simulator:
    """Per-(repetition seed, config, split) answers, deterministic, and the call ledger of one run.
    CALLS = distinct (split, config, example) pairs: a cascade's calls are its cheap config's and,
    where it escalated, its strong config's (shared with those configs, as offramp's cache shares them)."""

    def __init__(self, u: Universe, seed: int, budget_calls: int) -> None:
        self.u, self.seed, self.budget = u, seed, budget_calls
        self.seen: dict[tuple[str, int], int] = {}  # (split, config) -> longest prefix evaluated
        self.extra: set[tuple[str, int, int]] = set()  # (split, config, example) beyond a prefix (escalations)
        self._draws: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._noise: dict[tuple[str, int, int], tuple[float, float]] = {}

    def calls_of(self, split: str) -> int:
        return (sum(n for (s, _), n in self.seen.items() if s == split)
                + sum(1 for s, j, e in self.extra if s == split and e >= self.seen.get((s, j), 0)))

    @property
    def calls(self) -> int:
        return self.calls_of("dev")

    def _pairs(self, split: str, i: int, n: int) -> tuple[dict[tuple[str, int], int], set[tuple[str, int, int]]]:
        """The prefixes and single examples config i's first n answers call."""
        if self.u.kind[i] != "cascade":
            return {(split, i): n}, set()
        cheap, strong, _ = self.u.parts[i]
        escalated = self.draws(split, i)[4][:n]
        return {(split, cheap): n}, {(split, strong, int(e)) for e in np.flatnonzero(escalated)}

    def observe(self, i: int, n: int, split: str = "dev") -> TrialMeasurement:
        """Config i on the first n examples of a split; BudgetExceeded if new dev calls exceed the budget."""
        prefixes, singles = self._pairs(split, i, n)
        before = self.calls_of(split)
        seen, extra = dict(self.seen), set(self.extra)
        for key, m in prefixes.items():
            seen[key] = max(m, seen.get(key, 0))
        extra |= singles
        self.seen, self.extra, old = seen, extra, (self.seen, self.extra)
        if split == "dev" and self.calls_of(split) > self.budget:
            self.seen, self.extra = old
            raise BudgetExceeded(f"budget {self.budget} calls")
        assert self.calls_of(split) >= before
        return self.measure(i, n, split)

    def draws(self, split: str, i: int) -> tuple[np.ndarray, ...]:
        """(correct, cut, cost, latency, escalated) per example of the split, drawn once."""
        if (split, i) in self._draws:
            return self._draws[(split, i)]
        u, a = self.u, {key: value[i] for key, value in self.u.a.items()}
        size, slices, lengths = (N_DEV, u.slices, u.lengths) if split == "dev" else (N_TEST, u.test_slices, u.test_lengths)
        rng = np.random.default_rng([self.seed, i] if split == "dev" else [self.seed, i, 1])
        none = np.zeros(size, dtype=bool)
        if u.kind[i] == "cascade":
            cheap, strong, level = u.parts[i]
            wrong_esc, right_esc = CASCADE_ESCALATE[level]
            c_ok, c_cut, c_cost, c_lat, _ = self.draws(split, cheap)
            s_ok, s_cut, s_cost, s_lat, _ = self.draws(split, strong)
            unsure = rng.random(size)
            esc = c_cut | (~c_ok & (unsure < wrong_esc)) | (c_ok & (unsure < right_esc))
            out = (np.where(esc, s_ok, c_ok), esc & s_cut, c_cost + esc * s_cost, c_lat + esc * s_lat, esc)
        else:
            answer = rng.integers(int(a["lo"]), int(a["hi"]) + 1, size=size)
            cut = answer > a["max_tokens"] if u.kind[i] == "base" else none
            draw = rng.random(size)
            if split == "test":  # a shared per-example difficulty: configs tend to fail the same examples
                from scipy.stats import norm

                draw = norm.cdf(math.sqrt(TEST_RHO) * u.test_difficulty + math.sqrt(1 - TEST_RHO) * norm.ppf(draw))
            correct = ~cut & (draw < u.acc[i, slices])
            cost = (a["price_in"] * (a["prompt"] + lengths) + a["price_out"] * np.minimum(answer, a["max_tokens"])
                    if u.kind[i] == "base" else np.full(size, a["price_in"]))
            latency = a["median"] * np.exp(a["sigma"] * rng.standard_normal(size))
            out = (correct, cut, cost, latency, none)
        self._draws[(split, i)] = out
        return out

    def measure(self, i: int, n: int, split: str = "dev") -> TrialMeasurement:
        correct, cut, cost, latency, _ = (x[:n] for x in self.draws(split, i))
        p, z = float(correct.mean()), 1.96
        high = (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
        if (split, i, n) not in self._noise:  # the p95's 95% bootstrap interval, as tasks.feature.evaluate measures it
            lat = latency[~cut] if (~cut).any() else latency
            self._noise[(split, i, n)] = percentile_bootstrap(
                len(lat), lambda idx: np.percentile(lat[idx], 95, axis=1), seed=0, resamples=BOOTSTRAP_RESAMPLES)
        low95, high95 = self._noise[(split, i, n)]
        return TrialMeasurement(quality=p, quality_ci_high=min(1.0, high), cost_per_1k_usd=1000 * float(cost.mean()),
                                latency_p95_s=float(np.percentile(latency, 95)), latency_p95_ci_low=low95,
                                latency_p95_ci_high=high95, error_rate=float(cut.mean()), n_examples=n)


@dataclasses.dataclass
class Run:
    front: set[int]  # the returned front (config indices)
    calls: int
    trials: int
    distinct: int  # distinct configs tried
    pruned: int = 0  # trials stopped by racing
    pruned_true_front: int = 0  # true-front configs racing pruned and never completed
    stopped_by: str | None = "budget"
    done: list[tuple[int, TrialMeasurement]] = dataclasses.field(default_factory=list)  # completed: (config, dev measurement)


def returned_front(done: list[tuple[int, TrialMeasurement]]) -> set[int]:
    ok = [(i, o.quality, o.cost_per_1k_usd, o.latency_p95_s, latency_noise(o)) for i, o in done
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
    return Run(returned_front(done), sim.calls, len(done), len(done), done=done)


def max_trials(u: Universe) -> int:
    """offramp's trial cap: ~1.2 x the points of the space (a run ends by budget or exhaustion)."""
    return int(1.2 * len(u.index))


def spread(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"
