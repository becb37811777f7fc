"""Benchmark: a study's wall time through 20% faults vs none (not a test; nothing asserts timing).

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.faults [--fault-rate 0.2] [--json]`.

The same small study (tests/helpers.py's label feature, 3 models `openai/old|new|cheap` answering with
50, 75 and 100 ms of latency, shipped-prompt strategy, 2 temperatures: 4 candidate configs, all
evaluated (no racing, so both runs do the same search work; the front, and so the test phase, may
still differ, since retries count in latency), dev and test 20 examples each) runs through the migrate-feature flow, in this process, under one
Prefect test harness started before the timings, against tests/fake_openai.py over real HTTP:
once on a clean endpoint, once on an endpoint that faults `--fault-rate` of its requests, drawn
from a seeded RNG among 429 (Retry-After `--retry-after` s), 500, a dropped connection, malformed
JSON and a slow answer (`--slow` s). Each run has its own state dir (a fresh response cache); an
untimed warm-up study runs first (the process's first flow run pays one-off imports and set-up).
`--latency-scale` multiplies those latencies (a backoff of 0.5 s weighs 10x a 50 ms answer, half of
a hosted API's ~1 s one). The gateway runs with its defaults (concurrency 4, backoff 0.5 s with jitter; `--backoff`) and enough
retries (`--max-retries`) that every call succeeds in the end.

Columns: wall time of `migrate_feature` (Prefect's per-task overhead included), that per paid call, paid calls,
retries (sum of attempts - 1 in `calls`), requests the server saw, faults it injected, failed
calls, the study's status, and the wall-time ratio to the clean run. Target: ratio <= 1.5.
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
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/faults.py` works too

from offramp.flows.params import GatewayParams, MigrateParams  # noqa: E402
from offramp.warehouse import Warehouse, warehouse_path  # noqa: E402
from tests.fake_openai import FAULTS, Endpoint, FakeOpenAI, Model, labeller  # noqa: E402
from tests.helpers import LABELS, make_feature, make_space  # noqa: E402

KEY = "sk-bench-faults-0123456789"
LATENCY_S = {"old": 0.05, "new": 0.075, "cheap": 0.1}
ACCURACY = {"old": 0.6, "new": 0.8, "cheap": 0.5}


def _models(gold: dict[str, str], latency_scale: float = 1.0) -> dict[str, Model]:
    return {name: Model(name, labeller(gold, ACCURACY[name], LABELS, name), latency_s=LATENCY_S[name] * latency_scale)
            for name in LATENCY_S}


def _counts(fake: FakeOpenAI, endpoint: Endpoint) -> tuple[int, int]:
    """(faults injected, requests seen) by the endpoint so far."""
    return (sum(1 for e, _, what in fake.events if e == endpoint.name and what in FAULTS),
            sum(1 for _, e, _ in fake.requests if e == endpoint.name))


def _run(root: Path, endpoint: Endpoint, fake: FakeOpenAI, feature: Path, space: Path, args: argparse.Namespace,
         home: str | None = None) -> dict[str, Any]:
    from offramp.flows.migrate_feature import migrate_feature

    os.environ.update(OFFRAMP_HOME=str(root / (home or endpoint.name)), OPENAI_API_BASE=endpoint.url, OPENAI_API_KEY=KEY)
    params = MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", max_trials=args.max_trials,
                           racing=False, gateway=GatewayParams(max_retries=args.max_retries, backoff_s=args.backoff))
    before_faults, before_requests = _counts(fake, endpoint)
    started = time.perf_counter()
    summary = migrate_feature(params)
    wall = time.perf_counter() - started
    _, [(calls, retries, errors)] = Warehouse(warehouse_path()).fetch(
        "select count(*) filter (where attempts > 0), coalesce(sum(attempts - 1) filter (where attempts > 0), 0), count(error) "
        "from calls where study_id = ?", [summary.study_id])
    faults, requests = (now - before for now, before in zip(_counts(fake, endpoint), (before_faults, before_requests)))
    return {"run": f"{endpoint.fault_rate:.0%} faults", "wall_s": wall, "s_per_call": wall / max(calls, 1), "calls": calls, "retries": retries,
            "requests": requests, "faults": faults, "errors": errors, "status": summary.status}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        feature = make_feature(root / "feature", incumbent="openai/old")
        space = make_space(root / "space.yaml", [f"openai/{m}" for m in LATENCY_S], temperature=[0.0, 0.7])
        import csv

        with (feature / "data.csv").open() as handle:
            gold = {row["text"]: row["label"] for row in csv.DictReader(handle)}
        clean = Endpoint("clean", _models(gold, args.latency_scale), api_key=KEY)
        faulty = Endpoint("faulty", _models(gold, args.latency_scale), api_key=KEY, fault_rate=args.fault_rate, seed=args.seed,
                          retry_after_s=args.retry_after, slow_s=args.slow)
        with prefect_test_harness(server_startup_timeout=180), FakeOpenAI([clean, faulty]) as fake:
            _run(root, clean, fake, feature, space, args, home="warm-up")  # untimed: the process's first flow run
            rows = [_run(root, clean, fake, feature, space, args), _run(root, faulty, fake, feature, space, args)]
    for row in rows:
        row["ratio"] = row["wall_s"] / rows[0]["wall_s"]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--max-trials", type=int, default=6)
    parser.add_argument("--max-retries", type=int, default=8)
    parser.add_argument("--retry-after", type=float, default=0.2, help="seconds a 429 asks to wait")
    parser.add_argument("--slow", type=float, default=0.5, help="seconds a slow answer takes on top of the model's latency")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-scale", type=float, default=1.0,
                        help="multiply the models' latencies (50/75/100 ms); 10 gives hosted-API-like 0.5-1 s answers")
    parser.add_argument("--backoff", type=float, default=0.5, help="the gateway's backoff_s (its default: 0.5 s)")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line at the end")
    args = parser.parse_args(argv)
    rows = measure(args)
    columns = ("run", "wall_s", "s_per_call", "calls", "retries", "requests", "faults", "errors", "status", "ratio")
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    verdict = "PASS" if rows[-1]["ratio"] <= 1.5 else "MISS"
    print(f"target: wall time through {args.fault_rate:.0%} faults <= 1.5x the clean run's: {rows[-1]['ratio']:.2f}x {verdict}")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
