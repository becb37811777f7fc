"""Benchmark: what the write-ahead ledger costs per paid call (not a test; nothing asserts timing).

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.ledger [--n 500]`.
N distinct requests through `Gateway.complete_many` on the 0-ms fake litellm provider
(tests/fake_provider.py), cache off, at concurrency 1 and 4: without a journal, then with one
(every call appends an intent and an answer line, each flushed and fsync'd, to a file in a temp
dir on the same disk as the state dir). Prints calls/s and the added time per call; then the
time to ingest the journal into a fresh warehouse (`journal.ingest_file`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offramp.tasks.gateway import journal  # noqa: E402
from offramp.tasks.gateway.journal import Journal  # noqa: E402
from offramp.tasks.gateway.llm import Gateway, LLMRequest  # noqa: E402
from offramp.tasks.gateway.prices import PriceBook  # noqa: E402
from offramp.warehouse import Warehouse  # noqa: E402
from tests import fake_provider  # noqa: E402


def run(home: Path, n: int, concurrency: int, with_journal: bool, tag: str) -> tuple[float, Journal | None]:
    log = Journal(home, f"bench-{tag}", 0, "eval") if with_journal else None
    gateway = Gateway(None, PriceBook({"fake/zero": fake_provider.FAKE_PRICE}), home=home, concurrency=concurrency,
                      use_cache=False, journal=log)
    requests = [LLMRequest("fake/zero", [{"role": "user", "content": f"{tag} request {i}"}], {"max_tokens": 8}) for i in range(n)]
    started = time.perf_counter()
    results = gateway.complete_many(requests)
    elapsed = time.perf_counter() - started
    assert all(r.error is None for r in results)
    return elapsed, log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    n = parser.parse_args().n
    fake = fake_provider.install()
    fake.add("zero", answer=lambda m: "alpha")
    parent = os.environ.get("OFFRAMP_HOME")  # measure on the state dir's disk when given
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        home = Path(tmp)
        run(home, 50, 1, False, "warm")
        print(f"{'concurrency':>11} | {'no journal calls/s':>18} | {'journal calls/s':>15} | {'added ms/call':>13}")
        logs = []
        for concurrency in (1, 4):
            bare, _ = run(home, n, concurrency, False, f"bare{concurrency}")
            journaled, log = run(home, n, concurrency, True, f"wal{concurrency}")
            logs.append(log)
            print(f"{concurrency:>11} | {n / bare:>18.0f} | {n / journaled:>15.0f} | {1000 * (journaled - bare) / n:>13.3f}")
        wh = Warehouse(home / "warehouse.duckdb")
        wh.ensure_schema()
        started = time.perf_counter()
        lines = sum(journal.ingest_file(wh, log.path) for log in logs if log is not None)
        print(f"ingest: {lines} journal lines in {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
