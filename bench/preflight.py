"""Benchmark: what a study's preflight costs (not a test; nothing asserts timing).

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.preflight [--models 8] [--latency 0.2]`.
On tests/fake_openai.py (real HTTP on loopback): two endpoints (two accounts), `--models` candidate
endpoints plus the incumbent, each answering after `--latency` seconds; one of them has a wrong key
and one an id litellm cannot route (left out: the first after one call, the second for free).
`tasks.study.probe.check_endpoints` runs as the flow runs it, with a fresh warehouse:

(a) first preflight: calls made, calls billed by the server, seconds, USD recorded;
(b) the same preflight again (a resumed or repeated study): every answer from the cache (a failed
    call is not cached: the wrong key is asked again, once).
(0) litellm's first real call in a process, timed apart: its lazy imports (seconds) are paid once per
    process by whichever call comes first, with or without a preflight.
Target: (a) one call per endpoint (the unroutable one free), wall time about one call's latency
(the calls go out at once, bounded by the gateway's concurrency); (b) 0 calls billed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/preflight.py` works too

from offramp.search_spaces.schema import Config, ModelEntry  # noqa: E402
from offramp.tasks.feature.spec import load_feature, split_examples  # noqa: E402
from offramp.tasks.gateway.llm import Gateway, warm_up_litellm  # noqa: E402
from offramp.tasks.gateway.prices import PriceBook  # noqa: E402
from offramp.tasks.study.probe import check_endpoints  # noqa: E402
from offramp.warehouse import Warehouse  # noqa: E402
from tests.fake_openai import Endpoint, FakeOpenAI, Model  # noqa: E402
from tests.helpers import make_feature, oracle  # noqa: E402

PRICE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


class _Quiet:
    def warning(self, *args: object) -> None:
        pass


def run(n_models: int, latency: float) -> list[tuple[str, str]]:
    names = [f"m{i}" for i in range(n_models)]
    endpoints = [Endpoint(acct, {n: Model(n, answer=oracle, latency_s=latency) for n in ["old", *names]},
                          api_key=f"sk-bench-{acct}") for acct in ("a", "b")]
    os.environ.update({"BENCH_KEY_A": "sk-bench-a", "BENCH_KEY_B": "sk-bench-b", "BENCH_KEY_WRONG": "sk-wrong"})
    rows = []
    with FakeOpenAI(endpoints) as fake, tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        feature = load_feature(make_feature(tmp_path / "f"))
        declared = {"old": {"id": "openai/old", "api_base": fake.endpoints["a"].url, "api_key_env": "BENCH_KEY_A", "price": PRICE}}
        for i, name in enumerate(names):
            acct = "ab"[i % 2]
            declared[name] = {"id": f"openai/{name}", "api_base": fake.endpoints[acct].url, "price": PRICE,
                              "api_key_env": "BENCH_KEY_WRONG" if i == 0 else f"BENCH_KEY_{acct.upper()}"}
        declared["claude-v2"] = {"id": "claude-v2", "price": PRICE}
        models = {k: ModelEntry.model_validate({**v, "name": k}) for k, v in declared.items()}
        wh = Warehouse(tmp_path / "wh.duckdb")
        wh.ensure_schema()
        inc = feature.spec.incumbent
        incumbent = Config(model="old", instructions=inc.instructions, settings=inc.settings)
        train = split_examples(feature, seed=3).train
        warm_up_litellm()
        started = time.perf_counter()
        import litellm

        litellm.completion(model="openai/old", api_base=fake.endpoints["a"].url, api_key="sk-bench-a",
                           messages=[{"role": "user", "content": "warm"}], max_tokens=1)
        rows.append(("(0) litellm's first real call", f"{time.perf_counter() - started:.2f} s (lazy imports, once per "
                                                     "process: paid by a study's first call, preflight or not)"))
        for label, study in (("(a) first preflight", "s1"), ("(b) again: from the cache", "s2")):
            gateway = Gateway(wh, PriceBook({}, models), home=tmp_path, concurrency=8, max_retries=0)
            billed_before = sum(r["requests"] for r in fake.ledger().values())
            events_before = len(fake.events)
            started = time.perf_counter()
            left_out = check_endpoints(gateway, wh, feature=feature, incumbent=incumbent, candidates=[*names, "claude-v2"],
                                       optimizers=[], train=train, seed=3, study_id=study, price_sources={}, log=_Quiet())
            seconds = time.perf_counter() - started
            with wh.reader() as con:
                calls, usd = con.execute("select count(*), coalesce(sum(cost_usd), 0) from calls where study_id = ?",
                                         [study]).fetchone()
            billed = sum(r["requests"] for r in fake.ledger().values()) - billed_before
            rows.append((label, f"{len(models)} endpoints, {calls} calls recorded, {len(fake.events) - events_before} "
                                f"requests seen, {billed} billed, {seconds:.2f} s, ${usd:.6f}, left out: {sorted(left_out)}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    rows = run(args.models, args.latency)
    width = max(len(label) for label, _ in rows)
    print(f"preflight of a study on the fake OpenAI server ({args.models} candidates + incumbent + 1 unroutable, "
          f"{args.latency:g} s per answer)")
    for label, text in rows:
        print(f"{label:<{width}}  {text}")


if __name__ == "__main__":
    main()
