"""Benchmark: does compiling a prompt (DSPy) beat the naive model swap? (not a test; nothing asserts).

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True OFFRAMP_HOME=/tmp/somewhere .venv/bin/python -m bench.strategies
[--models ...] [--strategies ...] [--adapters chat plain] [--max-examples 60] [--mipro-budget 120] [--json]`.

On the bundled feature `bank-support-routing` (7 queues, label_accuracy), with the REAL local models
(llama.cpp servers started here with tasks.local_models.up and stopped in a finally), for each model
and each prompt strategy:
  incumbent   the shipped prompt: instructions + 14 demos, the incumbent's own settings (max_tokens 16).
              On local/smollm2-135m this IS the incumbent; on the other models it is the naive swap.
  zero_shot   the uncompiled DSPy Predict (ChatAdapter) with the incumbent's instructions.
  few_shot    DSPy BootstrapFewShot, k=4 and k=8 demos.
  mipro       DSPy MIPROv2, k=4, at most `--mipro-budget` calls (proposals by the model itself).
DSPy strategies run at temperature 0, max_tokens 32 (ChatAdapter's `[[ ## queue ## ]]` answer format
needs ~20 tokens), output_mode text, once per `--adapters` value (chat: DSPy's field markers, the
default; plain: the bare answer, read leniently; json). Each strategy is compiled on the TRAIN split only
(tasks.programs.compile_program: calls, tokens, seconds and cost are those of the compilation), then
evaluated on DEV and on the held-out TEST split (tasks.evaluate.evaluate_config), both capped at
`--max-examples`. Quality has a 95% bootstrap interval; `unparsed` is the share of answers the
adapter could not parse (scored 0). $/1k req and p95 latency come from the test split's calls, on
this machine (cost = declared machine price / measured throughput, tasks/prices.yaml), so p95 is
sensitive to whatever else runs on the box. Gateway concurrency 2, fresh warehouse in OFFRAMP_HOME
(the response cache only saves repeats within the run), seed = the feature's split seed.

It takes a while: every call is a real CPU inference on 2 cores. The reference run (all 3 models x
5 strategies, 60 dev + 60 test examples, mipro budget 4) took 29.4 minutes of wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/strategies.py` works too
from offramp.warehouse.home import configure_environment, state_dir  # noqa: E402

configure_environment()  # before litellm/dspy are imported: their state goes under OFFRAMP_HOME

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from offramp.search_spaces.schema import Config, Settings, Strategy  # noqa: E402
from offramp.tasks.feature.evaluate import evaluate_config  # noqa: E402
from offramp.tasks.feature.metrics import Metric, build_metric  # noqa: E402
from offramp.tasks.feature.programs import compile_program  # noqa: E402
from offramp.tasks.feature.prompts import choose_demos  # noqa: E402
from offramp.tasks.feature.spec import Feature, Splits, load_feature, split_examples  # noqa: E402
from offramp.tasks.gateway import local_models  # noqa: E402
from offramp.tasks.gateway.llm import LOCAL_PREFIX, Gateway  # noqa: E402
from offramp.tasks.gateway.prices import PriceBook  # noqa: E402
from offramp.warehouse import Warehouse  # noqa: E402
from offramp.warehouse.records import TrialMeasurement  # noqa: E402

FEATURE_DIR = Path(__file__).resolve().parent.parent / "features" / "bank-support-routing"
MODELS = ("local/qwen2.5-0.5b", "local/smollm2-135m", "local/gemma3-270m")
STRATEGIES = ("incumbent", "zero_shot", "few_shot_k4", "few_shot_k8", "mipro_k4")
DSPY_SETTINGS = Settings(temperature=0.0, max_tokens=32, output_mode="text")
log = Console(stderr=True, width=200)


@dataclasses.dataclass
class Row:
    model: str
    strategy: str
    status: str = "ok"
    dev: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    compile_calls: int = 0
    compile_tokens: int = 0
    compile_s: float = 0.0
    compile_usd: float = 0.0
    compile_errors: int = 0
    error: str | None = None


def split_name(name: str) -> tuple[str, str | None]:
    """`few_shot_k8/plain` -> (`few_shot_k8`, `plain`); no adapter: the default."""
    base, _, adapter = name.partition("/")
    return base, adapter or None


def strategy_of(name: str, mipro_budget: int) -> Strategy:
    if name == "incumbent":
        return Strategy()
    if name == "zero_shot":
        return Strategy(name="zero_shot")
    if name.startswith("few_shot_k"):
        return Strategy(name="few_shot", k=int(name.removeprefix("few_shot_k")))
    return Strategy(name="mipro", k=int(name.removeprefix("mipro_k")), budget=mipro_budget)


def run_one(feature: Feature, metric: Metric, splits: Splits, gateway: Gateway, model: str, name: str,
            mipro_budget: int, seed: int, split_names: tuple[str, ...] = ("dev", "test")) -> Row:
    spec, inc = feature.spec, feature.spec.incumbent
    name, adapter = split_name(name)
    strategy = strategy_of(name, mipro_budget)
    label = name + (f"/{adapter}" if adapter else "")
    row = Row(model=model, strategy=f"{name} (shipped)" if name == "incumbent" and model == inc.model else label)
    settings = inc.settings if name == "incumbent" else DSPY_SETTINGS.model_copy(update={"adapter": adapter})
    config = Config(model=model, instructions=inc.instructions, strategy=strategy, settings=settings)
    demos, program = [], None
    if name == "incumbent":
        demos = choose_demos(spec, splits.train, inc.settings.demos, seed)
    else:
        compiled = compile_program(spec, metric, config, splits.train, gateway, seed=seed)
        row.compile_calls, row.compile_tokens, row.compile_s = len(compiled.calls), compiled.tokens, compiled.seconds
        row.compile_usd, row.compile_errors = compiled.cost_usd, sum(c.error is not None for c in compiled.calls)
        if compiled.status != "compiled":
            row.status, row.error = compiled.status, compiled.error
            return row
        program = compiled.state
    for split in split_names:
        examples = getattr(splits, split)
        evaluation = evaluate_config(spec, metric, config, examples, gateway, demos=demos, program=program, seed=seed)
        a: TrialMeasurement = evaluation.measurement
        setattr(row, split, dataclasses.asdict(a))
        if a.status != "completed":
            row.status, row.error = a.status, a.error
    return row


def _q(a: dict[str, Any] | None) -> str:
    if not a or a.get("quality") is None:
        return "-"
    return f"{a['quality']:.3f} [{a['quality_ci_low']:.3f}, {a['quality_ci_high']:.3f}]"


def _pct(a: dict[str, Any] | None, key: str) -> str:
    return "-" if not a or a.get(key) is None else f"{100 * a[key]:.0f}%"


def render(rows: list[Row], n_dev: int, n_test: int, console: Console) -> None:
    table = Table(title=f"bank-support-routing: quality on DEV (n={n_dev}) and held-out TEST (n={n_test}); "
                        f"$/1k, p95 and unparsed from TEST; compile figures from TRAIN (compilation only)")
    for col in ("model", "strategy", "dev quality [95% CI]", "test quality [95% CI]", "unparsed dev/test",
                "$/1k req", "p95 s", "compile calls", "compile tokens", "compile s", "compile $"):
        table.add_column(col, justify="left" if col in ("model", "strategy") else "right")
    for r in rows:
        t = r.test or {}
        table.add_row(
            r.model.removeprefix(LOCAL_PREFIX), r.strategy + ("" if r.status == "ok" else f" [{r.status}]"),
            _q(r.dev), _q(r.test), f"{_pct(r.dev, 'parse_failure_rate')}/{_pct(r.test, 'parse_failure_rate')}",
            "-" if t.get("cost_per_1k_usd") is None else f"{t['cost_per_1k_usd']:.5f}",
            "-" if t.get("latency_p95_s") is None else f"{t['latency_p95_s']:.2f}",
            str(r.compile_calls) + (f" ({r.compile_errors} err)" if r.compile_errors else ""),
            str(r.compile_tokens), f"{r.compile_s:.0f}", f"{r.compile_usd:.5f}",
        )
    console.print(table)
    for r in rows:
        if r.error:
            console.print(f"[red]{r.model} {r.strategy}: {r.error[:400]}[/red]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--max-examples", type=int, default=60, help="cap on dev and on test examples")
    parser.add_argument("--adapters", nargs="+", default=["chat"], choices=["chat", "json", "plain"],
                        help="output adapters of the DSPy strategies (each strategy runs once per adapter)")
    parser.add_argument("--mipro-budget", type=int, default=120, help="the most calls of a MIPROv2 compile")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"], choices=["dev", "test"],
                        help="the splits evaluated (dev only: a quicker comparison)")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object with all rows")
    args = parser.parse_args(argv)

    home = state_dir()
    feature = load_feature(FEATURE_DIR)
    metric = build_metric(feature)
    seed = feature.spec.splits.seed
    splits = split_examples(feature, max_examples=args.max_examples, seed=seed)
    gateway = Gateway(Warehouse(home / "warehouse.duckdb"), PriceBook(), home=home, concurrency=2)
    aliases = [m.removeprefix(LOCAL_PREFIX) for m in args.models if m.startswith(LOCAL_PREFIX)]
    rows: list[Row] = []
    started, interrupted = time.perf_counter(), ""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # run the finally: stop our servers
    try:
        log.print(f"starting local models {aliases} under {home}")
        local_models.up(aliases, home)
        names = [n if n == "incumbent" else f"{n}/{a}" for n in args.strategies for a in args.adapters]
        for model in args.models:
            for name in dict.fromkeys(names):
                t0 = time.perf_counter()
                try:  # DSPy prints progress bars and notes on stdout: keep stdout for the table and JSON
                    with contextlib.redirect_stdout(sys.stderr):
                        row = run_one(feature, metric, splits, gateway, model, name, args.mipro_budget, seed, tuple(args.splits))
                except Exception as exc:  # noqa: BLE001 - reported in the table and on stderr, not hidden
                    log.print(traceback.format_exc())
                    row = Row(model=model, strategy=name, status="crashed", error=f"{type(exc).__name__}: {exc}")
                rows.append(row)
                log.print(f"{model} {name}: {row.status} dev={_q(row.dev)} test={_q(row.test)} "
                          f"compile={row.compile_s:.0f}s total={time.perf_counter() - t0:.0f}s")
    except (KeyboardInterrupt, SystemExit) as exc:
        interrupted = f"INTERRUPTED ({type(exc).__name__}) after {len(rows)} rows; "
    finally:
        local_models.down(None, home)
    wall = time.perf_counter() - started
    console = Console(width=220)
    render(rows, len(splits.dev), len(splits.test), console)
    console.print(f"{interrupted}wall time {wall / 60:.1f} min; mipro budget {args.mipro_budget}; seed {seed}; "
                  f"train={len(splits.train)} dev={len(splits.dev)} test={len(splits.test)}")
    if args.json:
        print(json.dumps({"wall_s": wall, "interrupted": bool(interrupted), "seed": seed, "mipro_budget": args.mipro_budget,
                          "n": {"train": len(splits.train), "dev": len(splits.dev), "test": len(splits.test)},
                          "rows": [dataclasses.asdict(r) for r in rows]}, default=str))
    return 1 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())
