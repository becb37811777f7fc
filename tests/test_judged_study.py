"""A judged study end to end (fake provider): the judge calibrated against human judgements before
the held-out comparison, its intervals corrected with it, the production sample compared with what
the incumbent served through the pairwise judge, and the sample's discovered slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from offramp.tasks.evidence.calibration import calibrate, difference_hook
from offramp.warehouse import Warehouse
from tests.test_judge import judged_space, make_text_feature, prefers_good

N_HUMAN = 24
N_SAMPLES = 10


def human_items(root: Path) -> list[str]:
    """Pairwise human judgements: the reply with GOOD in it is preferred, two plain replies tie;
    but the people call 4 of the GOOD-vs-plain pairs a tie (the fake judge does not), so the judge's
    confusion with them is imperfect and the correction has something to correct."""
    rows, human = [], []
    for i in range(N_HUMAN):
        kind = i % 3  # 0: a is GOOD, 1: b is GOOD, 2: neither
        a = f"GOOD reply {i}" if kind == 0 else f"plain reply {i}"
        b = f"GOOD reply {i}" if kind == 1 else f"plain answer {i}"
        preferred = {0: "a", 1: "b", 2: "tie"}[kind]
        if kind != 2 and i < 8:
            preferred = "tie"
        rows.append({"id": f"h{i}", "inputs": {"message": f"judged message {i}"}, "answer_a": a, "answer_b": b,
                     "preferred": preferred})
        human.append(preferred)
    (root / "human.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return human


def traffic(root: Path) -> None:
    """The incumbent's production log (OpenAI-style chat calls): it served "a reply" to each message."""
    lines = []
    for i in range(N_SAMPLES):
        lines.append({"request": {"model": "fake/old", "messages": [{"role": "system", "content": "Reply kindly."},
                                                                     {"role": "user", "content": f"logged message {i}"}]},
                      "response": {"choices": [{"message": {"role": "assistant", "content": "a reply"}}]},
                      "timestamp": f"2026-11-{i + 1:02d}T10:00:00Z"})
    (root / "traffic.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_a_judged_study_is_calibrated_on_people_and_compares_production_samples(tmp_path, home, fake):
    from prefect.testing.utilities import prefect_test_harness

    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from offramp.warehouse import warehouse_path

    fake.add("old", answer=lambda m: "a reply")
    fake.add("good", answer=lambda m: "GOOD reply to " + m[-1]["content"])
    fake.add("meh", answer=lambda m: "A  Reply")
    fake.add("judge", answer=prefers_good)
    root = make_text_feature(tmp_path / "f", {"mode": "pairwise", "human_judgements": {"path": "human.jsonl"}})
    human = human_items(root)
    traffic(root)
    spec = yaml.safe_load((root / "feature.yaml").read_text())
    spec["data"]["samples"] = {"files": [{"path": "traffic.jsonl"}], "format": "openai_chat", "timestamp_column": "timestamp"}
    (root / "feature.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    space = judged_space(tmp_path / "space.yaml")
    with prefect_test_harness(server_startup_timeout=120):
        summary = migrate_feature(MigrateParams(feature_dir=str(root), space=str(space), max_trials=2, trigger="cli"))
    assert summary.status == "completed"
    wh = Warehouse(warehouse_path())
    sid = summary.study_id

    # the judge answered the human items (both orders where the answers differ), billed as judge calls with no trial
    _, [(n_items, calls)] = wh.fetch("select count(distinct example_id), count(*) filter (where cache_key is not null) "
                                     "from judgements where study_id = ? and trial_id is null", [sid])
    assert n_items == N_HUMAN and calls == 2 * N_HUMAN
    _, [(paid,)] = wh.fetch("select count(*) from calls where study_id = ? and purpose = 'judge' and trial_id is null", [sid])
    assert paid == 2 * N_HUMAN
    _, [(n, agreement, kappa, confusion)] = wh.fetch(
        "select n, raw_agreement, kappa, confusion from judge_calibrations where study_id = ?", [sid])
    judge_says = ["win" if i % 3 == 0 else "loss" if i % 3 == 1 else "tie" for i in range(N_HUMAN)]
    people = {"a": "win", "b": "loss", "tie": "tie"}
    agree = sum(1 for h, j in zip(human, judge_says) if people[h] == j)
    assert n == N_HUMAN and agree == N_HUMAN - 6 and agreement == agree / N_HUMAN and 0 < kappa < 1
    assert json.loads(confusion)[1][2] == sum(1 for h, j in zip(human, judge_says) if people[h] == "tie" and j == "win")

    # the good model's paired difference on test is the corrected one: recomputed from the same verdicts
    _, trials = wh.fetch("select trial_id, role, split, model, source_trial_id from trials where study_id = ? order by trial_id", [sid])
    good_dev = min(t[0] for t in trials if t[3] == "fake/good" and t[2] == "dev")
    _, [(diff, low, high)] = wh.fetch("select diff, diff_ci_low, diff_ci_high from comparisons where study_id = ? and trial_id = ? "
                                      "and slice_field is null", [sid, good_dev])
    cal = calibrate([{"a": 1.0, "b": 0.0, "tie": 0.5}[h] for h in human], [{"win": 1.0, "loss": 0.0, "tie": 0.5}[j] for j in judge_says],
                    "pairwise")
    n_test = 5
    expected = difference_hook(cal, pairwise=True, seed=0)(np.full(n_test, 0.5), np.ones(n_test))
    assert (diff, low, high) == pytest.approx(tuple(float(x) for x in expected), abs=1e-9)

    # the production sample: every config vs what the incumbent served, through the pairwise judge
    _, [(status, n_chosen)] = wh.fetch("select status, n_chosen from sample_stages where study_id = ?", [sid])
    assert status == "ran" and n_chosen == N_SAMPLES
    _, samples = wh.fetch("select t.role, t.model, t.quality from trials t where t.study_id = ? and t.split = 'samples'", [sid])
    quality = {(r[0], r[1]): r[2] for r in samples}
    assert quality[("incumbent", "fake/old")] == 0.5  # its re-run serves the same reply: ties, no judge call
    assert [q for (role, model), q in quality.items() if model == "fake/good"] == [1.0]
    _, [(judged_samples,)] = wh.fetch("select count(*) from judgements j join trials t using (study_id, trial_id) "
                                      "where j.study_id = ? and t.split = 'samples' and j.cache_key is not null", [sid])
    assert judged_samples == 2 * N_SAMPLES * sum(1 for (_, m) in quality if m == "fake/good")
    _, runs = wh.fetch("select source, n_inputs from slice_discovery where study_id = ? and source = 'samples'", [sid])
    assert runs and all(r[1] == N_SAMPLES for r in runs)

    text = markdown(load_report(wh, sid))
    [line] = [x for x in text.splitlines() if x.startswith("Judge calibration (human.jsonl)")]
    assert f"judge vs {N_HUMAN} human judgements" in line and "corrected for the judge's errors" in line
    assert "Production sample" in text


def test_a_stop_during_the_samples_stage_interrupts_the_study_instead_of_scoring_refused_calls(tmp_path, home, fake):
    """A stop request while the candidates answer the production sample: the study is interrupted
    (resumable), not completed with the refused answers scored as losses; no stage row, no discovery
    from the cut-short trial."""
    from prefect.exceptions import CancelledRun
    from prefect.testing.utilities import prefect_test_harness

    from offramp import stopping
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams
    from offramp.warehouse import warehouse_path

    def good(messages):
        if "logged message" in messages[-1]["content"]:
            stopping.request()  # as a SIGINT would, while the first candidate answers the sample
        return "GOOD reply to " + messages[-1]["content"]

    fake.add("old", answer=lambda m: "a reply")
    fake.add("good", answer=good)
    fake.add("meh", answer=lambda m: "A  Reply")
    fake.add("judge", answer=prefers_good)
    root = make_text_feature(tmp_path / "f", {"mode": "pairwise"})
    traffic(root)
    spec = yaml.safe_load((root / "feature.yaml").read_text())
    spec["data"]["samples"] = {"files": [{"path": "traffic.jsonl"}], "format": "openai_chat"}
    (root / "feature.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        with prefect_test_harness(server_startup_timeout=120), pytest.raises(CancelledRun, match="resumes the study"):
            migrate_feature(MigrateParams(feature_dir=str(root), space=str(judged_space(tmp_path / "space.yaml")), max_trials=2,
                                          trigger="cli"))
    finally:
        stopping.reset()
    wh = Warehouse(warehouse_path())
    _, [(status,)] = wh.fetch("select status from studies")
    assert status == "interrupted"
    _, stages = wh.fetch("select * from sample_stages")
    assert stages == []  # the stage runs again (from the cache) when the study resumes
    _, runs = wh.fetch("select * from slice_discovery where source = 'samples'")
    assert runs == []
