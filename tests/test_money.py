"""Money: the spend cap belongs to the study (across reruns, raised only on purpose, every raise
recorded), reserves the held-out confirmation (a capped study still has a test phase, a selection
and a report), charges an interrupted trial what its calls cost, and records an overshoot when a
provider bills more than the worst case. Under Prefect's test harness, on the in-process fake
provider; the write-ahead ledger under SIGKILL is tests/test_ledger_kill.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from offramp.errors import UserError
from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.evidence.report import load_report
from offramp.tasks.gateway import journal
from offramp.tasks.gateway.llm import GatewayConfig, LLMRequest
from offramp.warehouse import Warehouse, records, state_dir, warehouse_path
from tests.helpers import make_feature, make_space, oracle


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def setup_models(fake, usage_factor: float = 1.0) -> None:
    fake.add("old", answer=lambda m: "alpha")
    fake.add("good", answer=oracle, usage_factor=usage_factor)
    fake.add("sloppy", answer=lambda m: f"maybe {oracle(m)}" if "1" in m[-1]["content"] else oracle(m))


def params(tmp_path: Path, **kwargs) -> MigrateParams:
    feature = tmp_path / "feature"
    if not feature.exists():
        make_feature(feature)
        # 126 configs: more than any cap of these tests lets the search try, so a capped search ends by
        # its cap, never by trying the whole space (seen in CI with 24 configs: space_exhausted)
        make_space(tmp_path / "space.yaml", ["fake/good", "fake/sloppy"], output_mode=["text"],
                   temperature=[round(0.1 * i, 1) for i in range(21)], max_tokens=[16, 32, 64])
    kwargs.setdefault("max_trials", 300)
    return MigrateParams(feature_dir=str(feature), space=str(tmp_path / "space.yaml"), trigger="cli", **kwargs)


def needed_usd(tmp_path: Path) -> float:
    """What the study says it needs at least (its refusal names the amount)."""
    with pytest.raises(UserError, match=r"too small") as info:
        migrate_feature(params(tmp_path, max_spend_usd=1e-6))
    return float(re.search(r"give --max-spend ([0-9.]+)", str(info.value)).group(1))


def fetch(sql: str, args: list) -> list[tuple]:
    return Warehouse(warehouse_path()).fetch(sql, args)[1]


def ledger_spend(study_id: str) -> float:
    return records.study_spend(Warehouse(warehouse_path()), study_id)


def test_cap_too_small_is_refused_before_any_paid_call(harness, home, fake, tmp_path):
    setup_models(fake)
    needed = needed_usd(tmp_path)
    assert needed > 0
    assert sum(m.calls for m in fake.models.values()) == 0
    assert fetch("select count(*) from calls", []) == [(0,)]
    assert fetch("select count(*) from studies", []) == [(0,)]


def test_capped_study_confirms_on_test_selects_and_reports(harness, home, fake, tmp_path):
    """Old code: the search hit the cap and the study ended stopped_by_budget with no test phase,
    no selection and no report."""
    setup_models(fake)
    # 3% above what the cap holds back: at 15% the search could try the whole space first (space_exhausted), more
    # so since p95s within noise tie on the front and racing prunes against those ties
    cap = needed_usd(tmp_path) * 1.03
    summary = migrate_feature(params(tmp_path, max_spend_usd=cap))
    assert summary.stopped_by == "budget" and summary.status == "completed"
    assert summary.selection is not None and summary.report_path and Path(summary.report_path).exists()
    sid = summary.study_id
    test_trials = fetch("select role, status from trials where study_id = ? and split = 'test'", [sid])
    assert ("incumbent", "completed") in test_trials and len(test_trials) >= 2
    assert all(status == "completed" for _, status in test_trials)
    assert fetch("select count(*) from calls where study_id = ? and error like 'BudgetExceeded%'", [sid])[0][0] > 0
    # the trial the cap stopped says how many of its examples were answered and how many refused
    stopped = fetch("select error from trials where study_id = ? and status = 'stopped_by_budget'", [sid])
    assert stopped and all(re.search(r"after \d+ of \d+ examples \((\d+) refused by the spend cap\)", e) for (e,) in stopped)
    spent = ledger_spend(sid)
    assert 0 < spent <= cap
    # the ledger and the calls agree on what was paid
    assert spent == pytest.approx(fetch("select sum(cost_usd) from calls where study_id = ?", [sid])[0][0])
    assert "Recorded spend (ledger)" in Path(summary.report_path).read_text()


def test_rerun_of_a_capped_study_resumes_it_and_raising_is_explicit_and_recorded(harness, home, fake, tmp_path):
    """Old code: the same command started a new study with a fresh cap and spent it again."""
    setup_models(fake)
    # the search may spend only 1% above what the cap holds for the incumbent and the test phase: with a
    # worst case ~4x the real cost, a wider margin can let it try the whole space before the cap stops it
    cap = needed_usd(tmp_path) * 1.01
    first = migrate_feature(params(tmp_path, max_spend_usd=cap))
    assert first.stopped_by == "budget"
    spent, calls = ledger_spend(first.study_id), sum(m.calls for m in fake.models.values())

    again = migrate_feature(params(tmp_path, max_spend_usd=cap))
    assert again.study_id == first.study_id and again.resumed
    assert "spend cap" in again.notice and "--raise-cap" in again.notice
    assert sum(m.calls for m in fake.models.values()) == calls and ledger_spend(first.study_id) == spent
    assert fetch("select count(*) from studies", []) == [(1,)]

    with pytest.raises(UserError, match=r"--max-spend.*spend cap of \$.*--raise-cap"):
        migrate_feature(params(tmp_path, max_spend_usd=cap * 3))
    assert sum(m.calls for m in fake.models.values()) == calls

    # raised a little: the search goes on until the new cap stops it (a big raise would let it run long)
    raised = migrate_feature(params(tmp_path, max_spend_usd=cap * 1.1, raise_cap=True))
    assert raised.study_id == first.study_id
    assert ledger_spend(first.study_id) > spent
    [(from_usd, to_usd, spent_then)] = fetch("select from_usd, to_usd, spent_usd from cap_changes where study_id = ?", [first.study_id])
    assert (from_usd, to_usd) == (pytest.approx(cap), pytest.approx(cap * 1.1)) and spent_then == pytest.approx(spent)
    report = load_report(Warehouse(warehouse_path()), first.study_id)
    assert any(line.startswith(f"Spend cap changed from ${cap:.4f} to ${cap * 1.1:.4f}") for line in report.money_lines())


def test_overshoot_is_recorded_stops_further_calls_and_is_reported(harness, home, fake, tmp_path):
    """A provider that reports 100000x the tokens (its first answer, the preflight call, costs more
    than the cap): the real cost is recorded (not the estimate), the cap
    stops further calls, the report says by how much it was overshot."""
    setup_models(fake, usage_factor=100_000.0)
    cap = needed_usd(tmp_path) * 1.15
    summary = migrate_feature(params(tmp_path, max_spend_usd=cap))
    sid = summary.study_id
    spent = ledger_spend(sid)
    assert spent > cap
    assert spent == pytest.approx(fetch("select sum(cost_usd) from calls where study_id = ?", [sid])[0][0])
    assert fetch("select count(*) from calls where study_id = ? and error like 'BudgetExceeded%'", [sid])[0][0] > 0
    lines = load_report(Warehouse(warehouse_path()), sid).money_lines()
    assert any(f"overshot by ${spent - cap:.6f}" in line for line in lines)


def test_interrupted_trial_is_charged_what_its_calls_cost(home, fake, tmp_path):
    """Old code: a trial left running by a killed process was recorded with spend_usd = 0. Here a
    trial's gateway pays for answers (journaled) and the process 'dies' before its stage is stored:
    the resume charges the trial its calls, from the ledger."""
    fake.add("good", answer=oracle)
    wh = Warehouse(warehouse_path())
    records.start_study(wh, study_id="s1", feature="f", deprecated_model="fake/old", incumbent_model="fake/old", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    records.start_trial(wh, study_id="s1", trial_id=3, role="candidate", split="dev", source_trial_id=None, config_hash="h",
                        model="fake/good", settings={})
    from tests.fake_provider import FAKE_PRICE

    gateway = GatewayConfig(home=state_dir(), prices={"fake/good": FAKE_PRICE}, study_id="s1", trial_id=3).open()
    requests = [LLMRequest("fake/good", [{"role": "user", "content": f"message {i} about apple"}], {"max_tokens": 8}) for i in range(5)]
    results = gateway.complete_many(requests)
    paid = sum(r.cost_usd for r in results)
    assert paid > 0
    journal.ingest(wh, state_dir(), "s1")
    records.resume_study(wh, "s1")
    records.charge_unfinished_trials(wh, "s1")
    [(status, spend)] = wh.fetch("select status, spend_usd from trials where study_id = 's1' and trial_id = 3")[1]
    assert status == "failed" and spend == pytest.approx(paid)


def test_cli_refuses_a_cap_too_small_before_prefect_starts(home, tmp_path):
    """One `error:` line naming --max-spend and the amount needed, exit 2, no traceback, nothing
    written (the models are never called: no server is needed)."""
    import os
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    feature = make_feature(tmp_path / "feature", incumbent="openai/old")
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "name": "s", "models": ["openai/new"], "settings": {"max_tokens": [16]},
        "prices": {m: {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6} for m in ("openai/old", "openai/new")},
    }))
    env = {**os.environ, "OFFRAMP_HOME": str(home), "OPENAI_API_BASE": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-none"}
    result = subprocess.run([sys.executable, "-m", "offramp.flows.cli", "migrate", str(feature), "--space", str(space),
                             "--max-spend", "0.0001"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert re.search(r"error: option --max-spend: \$0\.0001 is too small .* give --max-spend [0-9.]+ or more", result.stderr)
    assert "Traceback" not in result.stderr
    assert not (home / "warehouse.duckdb").exists()


def test_a_paid_answer_is_in_the_journal_before_the_caller_sees_it(home, fake, tmp_path):
    """When `complete_many` hands a result to its caller, the journal file already holds the
    request's intent and its answer (cost, tokens, the answer), read back from disk."""
    import json

    from tests.fake_provider import FAKE_PRICE

    fake.add("good", answer=oracle)
    gateway = GatewayConfig(home=state_dir(), prices={"fake/good": FAKE_PRICE}, study_id="s2", trial_id=1, concurrency=3).open()
    requests = [LLMRequest("fake/good", [{"role": "user", "content": f"message {i} about grape"}], {"max_tokens": 8}) for i in range(6)]
    seen = []

    def on_result(i: int, result) -> None:
        lines = [json.loads(raw) for raw in gateway.journal.path.read_text().splitlines()]
        intent = next(x for x in lines if x["kind"] == "intent" and x["cache_key"] == requests[i].cache_key)
        [answer] = [x for x in lines if x["kind"] == "answer" and x["intent"] == intent["seq"]]
        assert answer["output_text"] == result.text and answer["cost_usd"] == result.cost_usd > 0
        assert intent["worst_usd"] >= answer["cost_usd"]
        seen.append(i)

    gateway.complete_many(requests, on_result=on_result)
    assert sorted(seen) == list(range(6))


def test_an_answer_that_outlives_its_task_is_ingested_with_its_cost(home):
    """Seen in CI: a DSPy compile's call was in flight when a stop was requested; the task ended,
    its journal (holding the call's intent) was ingested and removed, and the answer came back
    after, into a new file without its intent: the resumed study died on it (KeyError). Now the
    answer line carries what its intent said: it lands in the ledger, the study and the cache."""
    wh = Warehouse(warehouse_path())
    wh.ensure_schema()
    book = journal.Journal(state_dir(), "s3", trial_id=2, purpose="optimize")
    seq = book.intent(model="fake/good", cache_key="k-late", worst_usd=0.01)
    book.close()
    journal.ingest_file(wh, book.path, remove=True)  # the task ended: its file is ingested and gone
    assert not book.path.exists()
    book.answer(seq, model="fake/good", cache_key="k-late", request={"model": "fake/good", "messages": [], "settings": {}},
                text="late", prompt_tokens=3, completion_tokens=1, cost_usd=0.004, latency_s=0.5)
    book.close()
    journal.ingest(wh, state_dir(), "s3")  # the resume
    rows = wh.fetch("select kind, study_id, trial_id, purpose, model, cost_usd from ledger where cache_key = 'k-late' order by seq")[1]
    assert rows == [("intent", "s3", 2, "optimize", "fake/good", None), ("answer", "s3", 2, "optimize", "fake/good", 0.004)]
    assert wh.fetch("select output_text from llm_cache where cache_key = 'k-late'")[1] == [("late",)]
