"""Benchmark: which lever moves a feature off its retiring model? (not a test; nothing asserts)

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True OFFRAMP_HOME=/tmp/levers .venv/bin/python -m bench.levers
[--feature features/post-entity-type ...] [--max-examples 40] [--seed 7] [--max-trials 12] [--max-wall-s S]
[--prompt-strategies zero_shot,few_shot] [--json]`.

For each feature (default: both bundled ones), ONE offramp study through the flow the CLI runs
(`migrate_feature`, in-process under Prefect's test harness, real local models on llama.cpp, a real
DuckDB warehouse in OFFRAMP_HOME) whose space holds every lever this build has: the bundled models x
{the shipped prompt (on a new model: the naive swap), DSPy zero-shot, DSPy few-shot k=4} plus the
strategy `tuned` when the registry (search_spaces/strategies.py) has it; cascades and routers are
built by the study itself from its dev answers when this build has them (a `composites` table).
The study searches dev (naive swaps first, racing on) and confirms its front on held-out test.
Then, per lever, the lever's best completed dev trial (quality, then cost); if the study did not
confirm it on test (it was not on the front), this bench does, with the flow's own trial code
(`evaluate_full`: the same gateway, cache, ledger and warehouse rows, role and source trial as the
flow's confirmations), so every single-config lever has a held-out figure (a composite is confirmed
only by the study's own code). Levers:
  incumbent         the shipped config (the retiring model): the baseline, for reference
  naive swap        role naive_swap: the shipped prompt on the best other model
  best prompt       the best DSPy prompt strategy (zero_shot, few_shot, mipro, gepa) on any model
  tuned own model   strategy `tuned` (a classifier trained on train); "not in this build" without it
  cascade, router   composites (role composite); "not in this build" without them, "none built" when the study
                    built none (no member cheaper than the best on dev)
Every figure is read back from the warehouse with SQL (`v_trials`, `trials`, `calls`): what a user
would query. Columns: held-out test quality with its 95% bootstrap interval, $ per 1k requests and p95
latency on test (local models: declared machine price x measured time, tasks/gateway/prices.yaml, so
p95 moves with whatever else runs on the box), training/compile cost (the program's compile calls,
purpose optimize/tune, and its seconds), wall time (the lever's dev trial, compile included, plus its
test trial). The caption gives the study's wall time and the total spend by purpose. A program
reused from an earlier study in the same OFFRAMP_HOME (same compile key) shows its original
training/compile cost, and its wall time then holds no training.

Reference run (2 cores shared with other work, load 6-11; both features at once, each in its own
OFFRAMP_HOME holding the cache and programs of an earlier 12-example run):
`--max-examples 30 --max-trials 8 --max-wall-s 600 --prompt-strategies few_shot`: 650 s
(bank-support-routing) and 1,009 s (post-entity-type) of wall time. The same with 12 examples and
7 trials from an empty cache: ~770 s each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/levers.py` works too
from offramp.warehouse.home import configure_environment, state_dir  # noqa: E402

configure_environment()  # before litellm/dspy are imported: their state goes under OFFRAMP_HOME

import yaml  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from offramp.search_spaces.strategies import strategy_names  # noqa: E402
from offramp.warehouse import Warehouse, warehouse_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FEATURES = (ROOT / "features" / "bank-support-routing", ROOT / "features" / "post-entity-type")
MODELS = ("local/qwen2.5-0.5b", "local/smollm2-135m", "local/gemma3-270m")
PROMPT_STRATEGIES = ("zero_shot", "few_shot", "mipro", "gepa")
# lever -> (how its trials are recognised, what this build needs for it: a strategy of the registry,
# or "composites" (a warehouse with the composites table: cascades and routers are trials of role
# 'composite' built from the search's dev answers, their kind in `strategy`), or None)
LEVERS: dict[str, tuple[Any, str | None]] = {
    "incumbent": (lambda row: row["role"] == "incumbent", None),
    "naive swap": (lambda row: row["role"] == "naive_swap", None),
    "best prompt strategy": (lambda row: row["strategy"] in PROMPT_STRATEGIES, None),
    "tuned own model": (lambda row: row["strategy"] == "tuned", "tuned"),
    "cascade": (lambda row: row["strategy"] == "cascade", "composites"),
    "router": (lambda row: row["strategy"] == "router", "composites"),
}
HAS_COMPOSITES = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'composites'"
log = Console(stderr=True, width=200)

DEV_TRIALS = """
SELECT trial_id, role, model, strategy, quality, cost_per_1k_usd, status, stage
FROM v_trials WHERE study_id = ? AND split = 'dev' AND status IN ('completed', 'pruned')
ORDER BY status = 'completed' DESC, quality DESC, cost_per_1k_usd ASC, trial_id
"""
LEVER_FIGURES = """
SELECT d.trial_id, d.model, d.strategy, d.settings, d.quality AS dev_quality, d.n_examples AS n_dev,
       t.trial_id AS test_trial_id, t.n_examples AS n_test, t.quality, t.quality_ci_low, t.quality_ci_high,
       t.cost_per_1k_usd, t.latency_p95_s, t.parse_failure_rate,
       coalesce(d.compile_cost_usd, 0) AS compile_usd, coalesce(d.compile_seconds, 0) AS compile_s,
       coalesce(d.compile_calls, 0) AS compile_calls,
       date_diff('millisecond', d.started_at, d.finished_at) / 1000.0
         + coalesce(date_diff('millisecond', t.started_at, t.finished_at) / 1000.0, 0) AS wall_s
FROM v_trials d
LEFT JOIN trials t ON t.study_id = d.study_id AND t.source_trial_id = d.trial_id AND t.split = 'test' AND t.status = 'completed'
WHERE d.study_id = ? AND d.trial_id = ?
ORDER BY t.trial_id DESC
LIMIT 1
"""
INCUMBENT_TEST = """
SELECT trial_id FROM trials WHERE study_id = ? AND role = 'incumbent' AND split = 'dev' AND status = 'completed'
"""
SPEND = """
SELECT purpose, count(*) AS calls, sum(cost_usd) AS usd FROM calls WHERE study_id = ? GROUP BY purpose ORDER BY purpose
"""
STUDY_WALL = "SELECT date_diff('millisecond', started_at, finished_at) / 1000.0, status, selected_trial_id FROM studies WHERE id = ?"


def lever_space(folder: Path, prompts: tuple[str, ...] = ("zero_shot", "few_shot")) -> Path:
    """The study's space: every lever this build's registry has, on the bundled models; `prompts`:
    the DSPy strategies searched for the prompt lever (few_shot with k=4)."""
    known = set(strategy_names())
    strategies: dict[str, Any] = {"incumbent": {}} | {name: {"k": [4]} if name == "few_shot" else {} for name in prompts}
    strategies |= {needed: {} for _, needed in LEVERS.values() if needed in known}  # composites: on by default
    space = {
        "name": "levers", "description": "bench/levers.py: every lever of this build on the bundled models",
        "models": list(MODELS), "strategies": strategies,
        # the DSPy strategies ask for the bare answer: on these small models plain beat DSPy's chat markers
        # (search_spaces/local-zoo.yaml says by how much)
        "settings": {"temperature": [0.0], "max_tokens": [32], "output_mode": ["text"], "adapter": ["plain"]},
    }
    path = folder / "levers-space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def run_study(feature_dir: Path, space: Path, args: argparse.Namespace):
    """One study through the flow the CLI runs."""
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import GatewayParams, MigrateParams

    params = MigrateParams(
        feature_dir=str(feature_dir), space=str(space), max_examples=args.max_examples, seed=args.seed, trigger="cli",
        max_trials=args.max_trials, max_wall_s=args.max_wall_s, new_study=True, gateway=GatewayParams(concurrency=args.concurrency),
    )
    return params, migrate_feature(params)


def best_per_lever(wh: Warehouse, study_id: str) -> dict[str, dict | None]:
    """The best completed dev trial of each lever; else its best trial racing pruned (None: neither)."""
    cols, rows = wh.fetch(DEV_TRIALS, [study_id])
    trials = [dict(zip(cols, r)) for r in rows]
    return {lever: next((t for t in trials if is_lever(t)), None) for lever, (is_lever, _) in LEVERS.items()}


def confirm_on_test(params, study_id: str, dev_trials: list[dict]) -> None:
    """Evaluate on held-out test the levers' dev trials the study did not confirm there, with the
    flow's own trial code, under a flow of their own (tasks need a flow run)."""
    import optuna
    from prefect import flow

    from offramp.flows.migrate_feature import study_inputs
    from offramp.search_spaces.schema import Config
    from offramp.tasks.feature.metrics import build_metric
    from offramp.tasks.gateway import journal
    from offramp.tasks.gateway.llm import GatewayConfig
    from offramp.tasks.study.prepare import open_storage, prepare
    from offramp.tasks.study.search import configs_by_trial_id
    from offramp.tasks.study.trials import StudyContext, TrialRun, evaluate_full
    from offramp.warehouse import records

    @flow(name="levers-confirm-on-test")
    def confirm() -> None:
        inputs = study_inputs(params)
        prepared = prepare(inputs)
        feature, spec, splits = prepared.feature, prepared.feature.spec, prepared.splits
        inc = spec.incumbent
        incumbent = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings)
        candidates = [m for m in prepared.space.models if m != inc.model]
        study = optuna.load_study(study_name=study_id, storage=open_storage(inputs.optuna_storage))
        configs = configs_by_trial_id(prepared.space, incumbent, candidates, study)
        wh = Warehouse(warehouse_path())
        ctx = StudyContext(
            wh=wh, feature=feature, metric=build_metric(feature), train=splits.train, seed=prepared.seed, study_id=study_id,
            gateway=GatewayConfig(home=state_dir(), warehouse=wh.path, prices=prepared.prices, endpoints=prepared.endpoints,
                                  concurrency=params.gateway.concurrency, breaker_scope=f"{study_id}/{uuid.uuid4().hex[:8]}"),
            next_trial_id=max(r["trial_id"] for r in records.study_trials(wh, study_id)) + 1,
        )
        for dev in dev_trials:
            if dev["trial_id"] not in configs:  # a composite: its own code confirms it (when it can still win)
                log.print(f"not confirmed by this bench: trial {dev['trial_id']} ({dev['strategy']}) is not a single config")
                continue
            log.print(f"confirming on test: trial {dev['trial_id']} ({dev['strategy']} on {dev['model']})")
            evaluate_full(ctx, TrialRun(ctx.allocate_trial_id(), dev["role"], "test", configs[dev["trial_id"]], splits.test,
                                        source_trial_id=dev["trial_id"]))
        journal.ingest(wh, state_dir(), study_id, remove_own=True)

    confirm()


def in_build(wh: Warehouse) -> set[str]:
    """What this build has, of what the levers need."""
    return set(strategy_names()) | ({"composites"} if wh.fetch(HAS_COMPOSITES)[1][0][0] else set())


def lever_figures(wh: Warehouse, study_id: str, best: dict[str, dict | None]) -> list[dict]:
    """One row per lever, read from the warehouse."""
    known = in_build(wh)
    rows = []
    for lever, (_, needed) in LEVERS.items():
        if needed and needed not in known:
            rows.append({"lever": lever, "status": "not in this build"})
            continue
        if best[lever] is None:  # a composite is built after the search, never tried by it
            rows.append({"lever": lever, "status": "none built (composites.py found no cheaper member worth it)"
                         if needed == "composites" else "not tried (max trials)"})
            continue
        cols, found = wh.fetch(LEVER_FIGURES, [study_id, best[lever]["trial_id"]])
        row = dict(zip(cols, found[0]))
        status = "ok" if row["test_trial_id"] is not None else "not confirmed on test"
        if best[lever]["status"] == "pruned":
            status = f"pruned by racing at {best[lever]['stage']:.0%} of dev"
        row.update(lever=lever, status=status,
                   settings=json.loads(row["settings"]) if isinstance(row["settings"], str) else row["settings"])
        rows.append(row)
    return rows


def study_facts(wh: Warehouse, study_id: str) -> dict:
    [(wall_s, status, selected)] = wh.fetch(STUDY_WALL, [study_id])[1]
    spend = {purpose: {"calls": n, "usd": usd} for purpose, n, usd in wh.fetch(SPEND, [study_id])[1]}
    return {"study_id": study_id, "status": status, "selected_trial_id": selected, "study_wall_s": wall_s, "spend": spend}


def render(feature: str, facts: dict, rows: list[dict], bench_wall_s: float) -> None:
    spend = ", ".join(f"{p} {v['calls']} calls ${v['usd']:.4f}" for p, v in facts["spend"].items())
    table = Table(title=f"{feature}: levers, held-out test (study {facts['study_id']}, {facts['status']}; study wall "
                        f"{facts['study_wall_s'] or 0:.0f} s, bench {bench_wall_s:.0f} s; {spend})")
    for name, justify in (("lever", "left"), ("config", "left"), ("dev", "right"), ("test quality [95% CI]", "right"),
                          ("n", "right"), ("unparsed", "right"), ("$/1k req", "right"), ("p95 s", "right"),
                          ("train/compile", "right"), ("wall s", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        if "dev_quality" not in r:
            table.add_row(r["lever"], r["status"], *[""] * 8)
            continue
        config = f"{r['strategy']} on {r['model']} (trial {r['trial_id']})"
        if r["status"] != "ok":
            table.add_row(r["lever"], config, f"{r['dev_quality']:.3f}", r["status"], *[""] * 6)
            continue
        compile_ = f"${r['compile_usd']:.5f}, {r['compile_calls']} calls, {r['compile_s']:.0f} s" if r["compile_calls"] else "-"
        table.add_row(
            r["lever"], config, f"{r['dev_quality']:.3f}",
            f"{r['quality']:.3f} [{r['quality_ci_low']:.3f}, {r['quality_ci_high']:.3f}]", str(r["n_test"]),
            f"{r['parse_failure_rate']:.0%}", f"${r['cost_per_1k_usd']:.3g}", f"{r['latency_p95_s']:.2f}", compile_, f"{r['wall_s']:.0f}",
        )
    Console(width=220).print(table)


def run_feature(feature_dir: Path, args: argparse.Namespace, folder: Path) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    started = time.monotonic()
    with prefect_test_harness(server_startup_timeout=180):
        params, summary = run_study(feature_dir, lever_space(folder, tuple(args.prompt_strategies.split(","))), args)
        wh = Warehouse(warehouse_path())
        best = best_per_lever(wh, summary.study_id)
        _, confirmed = wh.fetch("SELECT source_trial_id FROM trials WHERE study_id = ? AND split = 'test' AND status = 'completed'",
                                [summary.study_id])
        missing = {t["trial_id"]: t for t in best.values()  # racing pruned: hopeless on dev, not worth the test calls
                   if t is not None and t["status"] == "completed" and t["trial_id"] not in {c for (c,) in confirmed}}
        if missing:
            confirm_on_test(params, summary.study_id, list(missing.values()))
    rows = lever_figures(wh, summary.study_id, best)
    facts = study_facts(wh, summary.study_id)
    return {"feature": summary.feature, **facts, "bench_wall_s": time.monotonic() - started, "levers": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feature", action="append", type=Path, help="a feature folder (repeatable; default: both bundled)")
    parser.add_argument("--max-examples", type=int, default=40, help="cap dev and test (default 40)")
    parser.add_argument("--seed", type=int, default=None, help="split/demo seed (default: the feature's)")
    parser.add_argument("--max-trials", type=int, default=12, help="search trials per study, naive swaps included (default 12)")
    parser.add_argument("--max-wall-s", type=float, default=None, help="stop asking for new trials after this long (the flow's)")
    parser.add_argument("--prompt-strategies", default="zero_shot,few_shot", help="DSPy strategies of the prompt lever, comma-separated")
    parser.add_argument("--concurrency", type=int, default=2, help="calls in flight at once (default 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    from offramp.tasks.gateway import local_models

    results = []
    running = {s.alias for s in local_models.status(state_dir()) if s.pid}  # not ours to stop
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for feature_dir in args.feature or FEATURES:
                result = run_feature(feature_dir.resolve(), args, Path(tmp))
                render(result["feature"], result, result["levers"], result["bench_wall_s"])
                results.append(result)
        finally:
            ours = [s.alias for s in local_models.status(state_dir()) if s.pid and s.alias not in running]
            with contextlib.suppress(Exception):
                local_models.down(ours, state_dir())  # only the servers this run's studies started
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
