"""Benchmark: offramp's per-call overhead over a bare litellm call (not a test; nothing asserts timing).

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.overhead [--n 2000] [--json]`.
Every row is measured in this one run, on the fake litellm provider of tests/fake_provider.py
(real token usage, no network), on N distinct examples of a tiny label feature (tests/helpers.py).

(a) floor: a bare sequential loop of `litellm.completion(model="fake/zero", num_retries=0)` on a
    0-ms provider, with the same rendered messages as (b) -> calls/s. Warmed up first.
(b) offramp's full path, cache ON on a fresh empty warehouse (every call a miss), gateway
    concurrency 1 (sequential like (a), so the ratio is fair): prompt rendering, cache key hashing,
    cache lookup, Gateway._call, cache writes (at most every second), parsing, scoring, aggregates
    with the bootstrap CI, and the trial's DuckDB writes (records.start_trial + records.finish_trial
    with all N call rows) -> evaluations/s, and (b)/(a). Row (b2) repeats it at concurrency 2 on
    another fresh warehouse. Schema creation (once per warehouse file) is outside the timing.
(c) the same evaluation again on (b)'s warehouse: every answer is a cache hit (checked), so this is
    offramp's own cost alone, including the trial's writes -> evaluations/s.
(d) a fake provider with 200 ms latency, gateway concurrency 16, cache off (no warehouse),
    `--d-calls` distinct examples through evaluate_config (parsing and scoring are ~1% of the wall
    time here) -> calls/s and the ratio to the ideal 16 / 0.2 s = 80 calls/s.
Targets: (b) >= 70% of (a); (c) >= 5,000 evaluations/s; (d) >= 80% of 80 calls/s (PASS/MISS only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/overhead.py` works too

import litellm  # noqa: E402

from offramp.search_spaces.schema import Config  # noqa: E402
from offramp.tasks.feature.evaluate import Evaluation, evaluate_config  # noqa: E402
from offramp.tasks.feature.metrics import Metric, build_metric  # noqa: E402
from offramp.tasks.feature.prompts import render_messages  # noqa: E402
from offramp.tasks.feature.spec import Example, Feature, FeatureSpec, load_feature, split_examples  # noqa: E402
from offramp.tasks.gateway.llm import Gateway  # noqa: E402
from offramp.tasks.gateway.prices import PriceBook  # noqa: E402
from offramp.warehouse import Warehouse, records  # noqa: E402
from tests import fake_provider  # noqa: E402
from tests.helpers import make_feature, oracle  # noqa: E402

D_LATENCY_S, D_CONCURRENCY = 0.2, 16


def load(root: Path, n: int) -> tuple[Feature, tuple[Example, ...]]:
    """A label feature with n distinct dev examples (so every cache key differs)."""
    folder = make_feature(root / "feature", n=n + 1, incumbent="fake/zero",
                          extra={"splits": {"seed": 3, "train": 0, "dev": n, "test": 1}})
    feature = load_feature(folder)
    return feature, split_examples(feature).dev


def run_trial(wh: Warehouse, gateway: Gateway, spec: FeatureSpec, metric: Metric, config: Config,
              examples: tuple[Example, ...], trial_id: int) -> tuple[float, Evaluation]:
    """One trial as flows/migrate_feature.evaluate_trial runs it; returns (seconds, evaluation)."""
    started = time.perf_counter()
    records.start_trial(wh, study_id="bench", trial_id=trial_id, role="candidate", split="dev", source_trial_id=None,
                        config_hash=config.config_hash(), model=config.model, settings=config.settings.model_dump(mode="json"))
    evaluation = evaluate_config(spec, metric, config, examples, gateway, study_id="bench", trial_id=trial_id)
    records.finish_trial(wh, study_id="bench", trial_id=trial_id, measurement=evaluation.measurement, calls=evaluation.calls)
    return time.perf_counter() - started, evaluation


def bench_floor(messages: list[list[dict[str, str]]]) -> float:
    started = time.perf_counter()
    for m in messages:
        litellm.completion(model="fake/zero", messages=m, num_retries=0)
    return len(messages) / (time.perf_counter() - started)


def fresh_warehouse(root: Path, name: str) -> Warehouse:
    wh = Warehouse(root / name / "warehouse.duckdb")
    wh.ensure_schema()  # once per study; not part of any row's timing
    return wh


def measure(n: int, d_calls: int) -> dict[str, Any]:
    provider = fake_provider.install()
    provider.add("zero", answer=oracle, latency_s=0.0)
    provider.add("slow", answer=oracle, latency_s=D_LATENCY_S)
    prices = PriceBook({"fake/zero": fake_provider.FAKE_PRICE, "fake/slow": fake_provider.FAKE_PRICE})
    with tempfile.TemporaryDirectory(prefix="offramp-bench-") as tmp:
        root = Path(tmp)
        feature, examples = load(root, n)
        spec, metric = feature.spec, build_metric(feature)
        inc = spec.incumbent
        config = Config(model="fake/zero", instructions=inc.instructions, settings=inc.settings)
        messages = [render_messages(spec, config, [], e) for e in examples]  # what (b) sends

        def gateway(wh: Warehouse | None, concurrency: int, use_cache: bool = True) -> Gateway:
            return Gateway(wh, prices, home=root, concurrency=concurrency, max_retries=0, use_cache=use_cache)

        # Warm-up: litellm's first-call costs, duckdb/numpy first use, offramp's path once (own warehouse).
        bench_floor(messages[:50])
        warm = fresh_warehouse(root, "warm")
        run_trial(warm, gateway(warm, 1), spec, metric, config, examples[:50], trial_id=0)
        run_trial(warm, gateway(warm, 1), spec, metric, config, examples[:50], trial_id=1)

        floor = bench_floor(messages)

        wh = fresh_warehouse(root, "b")
        seconds_b, ev_b = run_trial(wh, gateway(wh, 1), spec, metric, config, examples, trial_id=0)
        assert not any(c.cache_hit for c in ev_b.calls), "(b) must be all cache misses"
        assert all(c.error is None for c in ev_b.calls), ev_b.calls[0].error

        wh2 = fresh_warehouse(root, "b2")
        seconds_b2, ev_b2 = run_trial(wh2, gateway(wh2, 2), spec, metric, config, examples, trial_id=0)
        assert not any(c.cache_hit for c in ev_b2.calls)

        seconds_c, ev_c = run_trial(wh, gateway(wh, 1), spec, metric, config, examples, trial_id=1)
        assert all(c.cache_hit for c in ev_c.calls), "(c) must be served entirely from the cache"
        assert ev_c.measurement.quality == ev_b.measurement.quality

        assert d_calls <= n, "(d) needs distinct requests: --d-calls <= --n"
        slow = config.model_copy(update={"model": "fake/slow"})
        started = time.perf_counter()
        ev_d = evaluate_config(spec, metric, slow, examples[:d_calls], gateway(None, D_CONCURRENCY, use_cache=False))
        seconds_d = time.perf_counter() - started
        assert all(c.error is None and not c.cache_hit for c in ev_d.calls), "(d) must make every call"

    b, b2, c, d = n / seconds_b, n / seconds_b2, n / seconds_c, d_calls / seconds_d
    ideal_d = D_CONCURRENCY / D_LATENCY_S
    return {
        "n": n, "a_calls_per_s": floor,
        "b_evals_per_s": b, "b_ratio": b / floor, "b_us_per_call_over_floor": 1e6 * (1 / b - 1 / floor),
        "b2_evals_per_s": b2, "b2_ratio": b2 / floor,
        "c_evals_per_s": c, "c_ratio": c / floor,
        "d_calls": d_calls, "d_calls_per_s": d, "d_ideal_calls_per_s": ideal_d, "d_ratio": d / ideal_d,
        "b_pass": b / floor >= 0.70, "c_pass": c >= 5000.0, "d_pass": d / ideal_d >= 0.80,
        "load_avg_1m": os.getloadavg()[0],
    }


def table(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    return [
        ("(a) floor: bare litellm.completion, 0 ms, sequential", f"{r['a_calls_per_s']:,.0f} calls/s", "", ""),
        ("(b) offramp full path, cache miss, concurrency 1", f"{r['b_evals_per_s']:,.0f} evals/s",
         f"{r['b_ratio']:.0%} of (a) (+{r['b_us_per_call_over_floor']:,.0f} us/call); target >= 70%", verdict(r["b_pass"])),
        ("(b2) same, concurrency 2 (info)", f"{r['b2_evals_per_s']:,.0f} evals/s", f"{r['b2_ratio']:.0%} of (a)", ""),
        ("(c) same evaluation, all cache hits, concurrency 1", f"{r['c_evals_per_s']:,.0f} evals/s",
         f"{r['c_ratio']:.1f}x (a); target >= 5,000/s", verdict(r["c_pass"])),
        (f"(d) 200 ms provider, concurrency 16, {r['d_calls']} calls, cache off", f"{r['d_calls_per_s']:,.1f} calls/s",
         f"{r['d_ratio']:.0%} of ideal {r['d_ideal_calls_per_s']:.0f}/s; target >= 80%", verdict(r["d_pass"])),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="distinct examples for (a), (b), (c)")
    parser.add_argument("--d-calls", type=int, default=320, help="calls for (d)")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON object on the last line")
    args = parser.parse_args(argv)
    result = measure(args.n, args.d_calls)
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"offramp per-call overhead (N={args.n}, load avg {result['load_avg_1m']:.2f})")
        for column in ("row", "measured", "vs. target", "verdict"):
            t.add_column(column)
        for row in table(result):
            t.add_row(*row)
        Console(width=160).print(t)
    except ImportError:
        for row in table(result):
            print(" | ".join(row))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
