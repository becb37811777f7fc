"""bench/levers.py picks each lever's best dev trial and reads its held-out figures back from the
warehouse: checked on a real DuckDB warehouse holding a study's trials (no model is called)."""

from __future__ import annotations

import importlib

from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import TrialMeasurement


def _levers(monkeypatch, tmp_path):
    for key in ("PREFECT_HOME", "DSPY_CACHEDIR", "TQDM_DISABLE"):  # what importing the bench would set, undone after
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    return importlib.import_module("bench.levers")


def _trial(wh, trial_id, role, split, strategy, model, quality, cost, source=None, status="completed"):
    records.start_trial(wh, study_id="s", trial_id=trial_id, role=role, split=split, source_trial_id=source,
                        config_hash=f"h{trial_id}", model=model, settings={"temperature": 0.0}, strategy=strategy)
    records.finish_trial(wh, study_id="s", trial_id=trial_id, calls=[], stage=0.5 if status == "pruned" else 1.0, measurement=TrialMeasurement(
        status=status, n_examples=10, quality=quality, quality_ci_low=quality - 0.1, quality_ci_high=quality + 0.1,
        cost_per_1k_usd=cost, latency_p50_s=0.1, latency_p95_s=0.2, error_rate=0.0, parse_failure_rate=0.0))


def test_best_trial_of_each_lever_and_its_test_figures(monkeypatch, tmp_path):
    levers = _levers(monkeypatch, tmp_path)
    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="a", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    _trial(wh, 0, "incumbent", "dev", "incumbent", "a", 0.5, 1.0)
    _trial(wh, 1, "naive_swap", "dev", "incumbent", "b", 0.4, 0.5)
    _trial(wh, 2, "naive_swap", "dev", "incumbent", "c", 0.6, 0.7)
    _trial(wh, 3, "candidate", "dev", "zero_shot", "b", 0.7, 0.5)  # the best prompt, not confirmed on test
    _trial(wh, 4, "candidate", "dev", "few_shot", "c", 0.9, 0.5, status="pruned")  # pruned: not a lever's best
    _trial(wh, 5, "candidate", "dev", "few_shot", "c", 0.65, 0.6)
    _trial(wh, 8, "candidate", "dev", "tuned", "tuned/x", 0.8, 0.0, status="pruned")  # the lever's only trial
    _trial(wh, 6, "incumbent", "test", "incumbent", "a", 0.45, 1.1, source=0)
    _trial(wh, 7, "naive_swap", "test", "incumbent", "c", 0.55, 0.8, source=2)
    best = levers.best_per_lever(wh, "s")
    assert {lever: t and t["trial_id"] for lever, t in best.items()} == {
        "incumbent": 0, "naive swap": 2, "best prompt strategy": 3, "tuned own model": 8, "cascade": None, "router": None,
    }
    rows = {r["lever"]: r for r in levers.lever_figures(wh, "s", best)}
    assert (rows["naive swap"]["status"], rows["naive swap"]["quality"], rows["naive swap"]["cost_per_1k_usd"]) == ("ok", 0.55, 0.8)
    assert rows["best prompt strategy"]["status"] == "not confirmed on test"
    names = levers.in_build(wh)
    if "tuned" in names:
        assert rows["tuned own model"]["status"].startswith("pruned by racing")
    for lever in ("cascade", "router"):
        assert rows[lever]["status"].startswith("none built" if "composites" in names else "not in this build")


def test_the_space_holds_every_lever_the_registry_has(monkeypatch, tmp_path):
    import yaml

    levers = _levers(monkeypatch, tmp_path)
    space = yaml.safe_load(levers.lever_space(tmp_path).read_text())
    names = set(levers.strategy_names())
    expected = {"incumbent", "zero_shot", "few_shot"} | ({"tuned"} & names)
    assert set(space["strategies"]) == expected
    from offramp.search_spaces.schema import load_space

    assert load_space(tmp_path / "levers-space.yaml").name == "levers"  # a valid space file
