"""Whole studies through a faulty provider: the fake OpenAI-compatible server over real HTTP, reached
by litellm as `openai/<name>` through `OPENAI_API_BASE` (declared endpoints may replace that).

- 20% mixed faults (429 with Retry-After, 500, dropped connections, malformed JSON, slow answers):
  the study completes, every fault is accounted for in `calls`, nothing broken is scored, and each
  config measures the same quality as in a fault-free run;
- an endpoint that goes down mid-study: the breaker stops the requests, the study ends
  `provider_down` with its report, one `error:` line naming the endpoint and exit code 3;
- model ids the endpoint does not serve: the decision names the failed trials and why, and a
  study whose every search trial failed ends `all_trials_failed`, not `completed`.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import GatewayParams, MigrateParams
from offramp.warehouse import Warehouse, warehouse_path
from tests.conftest import ROOT
from tests.fake_openai import Endpoint, FakeOpenAI, Model, labeller
from tests.helpers import LABELS, make_feature, make_space

KEY = "sk-fake-study-0123456789"
FAILING = ("429", "500", "drop", "malformed")  # faults that fail a request (a `slow` answer is an answer)


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def gold(feature: Path) -> dict[str, str]:
    with (feature / "data.csv").open() as handle:
        return {row["text"]: row["label"] for row in csv.DictReader(handle)}


def models(feature: Path) -> dict[str, Model]:
    g = gold(feature)
    return {name: Model(name, labeller(g, accuracy, LABELS, name))
            for name, accuracy in (("old", 0.6), ("new", 0.8), ("cheap", 0.5))}


def study_files(tmp_path: Path, served: list[str] | None = None) -> tuple[Path, Path]:
    feature = make_feature(tmp_path / "feature", incumbent="openai/old")
    space = make_space(tmp_path / "space.yaml", served or ["openai/old", "openai/new", "openai/cheap"], temperature=[0.0, 0.7])
    return feature, space


def run_study(monkeypatch, home: Path, endpoint: Endpoint, feature: Path, space: Path, **gateway):
    monkeypatch.setenv("OFFRAMP_HOME", str(home))
    monkeypatch.setenv("OPENAI_API_BASE", endpoint.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    params = MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", max_trials=5,
                           gateway=GatewayParams(**gateway))
    return migrate_feature(params)


def trial_qualities(study_id: str) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(role, split, config) -> (quality, n_examples) of the study's completed trials."""
    _, rows = Warehouse(warehouse_path()).fetch(
        "select role, split, model, strategy, settings::varchar, quality, n_examples from trials "
        "where study_id = ? and status = 'completed'", [study_id])
    return {(r[0], r[1], f"{r[2]} {r[3]} {r[4]}"): (r[5], r[6]) for r in rows}


def test_a_study_through_20_percent_faults_loses_nothing_and_scores_no_garbage(harness, tmp_path, monkeypatch):
    feature, space = study_files(tmp_path)
    clean = Endpoint("clean", models(feature), api_key=KEY)
    faulty = Endpoint("faulty", models(feature), api_key=KEY, fault_rate=0.2, seed=7, retry_after_s=0.05, slow_s=0.3)
    with FakeOpenAI([clean, faulty]) as fake:
        baseline = run_study(monkeypatch, tmp_path / "clean", clean, feature, space)
        expected = trial_qualities(baseline.study_id)
        billed_before = fake.count("billed")
        # enough retries that every call succeeds in the end (a call failing 9 times in a row: p = 0.2**9)
        summary = run_study(monkeypatch, tmp_path / "faulty", faulty, feature, space, max_retries=8)
        injected = {kind: sum(1 for e, _, what in fake.events if e == "faulty" and what == kind) for kind in (*FAILING, "slow")}
        requests = sum(1 for _, e, _ in fake.requests if e == "faulty")
        billed = fake.count("billed") - billed_before
        wh = Warehouse(warehouse_path())
        assert summary.status == "completed" and summary.selection is not None
        assert all(n > 0 for n in injected.values()), injected  # every kind of fault happened
        assert sum(injected[k] for k in FAILING) >= 0.1 * requests, (injected, requests)
        # the accounting: each paid call's attempts are its requests; its retries (attempts - 1) are the
        # requests a fault failed; the calls that got an answer are the answers the server billed
        _, [(n_calls, n_errors, attempts, retries, answered, unscored)] = wh.fetch(
            "select count(*), count(error), sum(attempts), sum(attempts - 1) filter (where attempts > 0), "
            "count(*) filter (where attempts > 0 and error is null), count(*) filter (where error is null and score is null and purpose = 'eval') "
            "from calls where study_id = ?", [summary.study_id])
        assert n_errors == 0 and unscored == 0
        assert attempts == requests, (attempts, requests)
        assert retries == sum(injected[k] for k in FAILING), (retries, injected)
        assert answered == billed
        # no malformed answer was scored: every scored answer is a label the model gave
        _, outputs = wh.fetch("select distinct output_text from calls where study_id = ? and error is null", [summary.study_id])
        assert {o for (o,) in outputs} <= set(LABELS)
        # each config measured what it measures without faults
        measured = trial_qualities(summary.study_id)
        common = set(measured) & set(expected)
        assert len(common) >= 3 and {k[0] for k in common} >= {"incumbent", "naive_swap"}
        assert {k: measured[k] for k in common} == {k: expected[k] for k in common}


def test_a_model_the_endpoint_does_not_serve_is_named_in_the_decision(harness, tmp_path, monkeypatch):
    """A model that answers the preflight call, then is gone (retired mid-study: 404 on every call)."""
    feature, space = study_files(tmp_path, ["openai/old", "openai/new", "openai/gpt-9-ultra"])
    endpoint = Endpoint("e", {**models(feature), "gpt-9-ultra": Model("gpt-9-ultra", gone_after=1)}, api_key=KEY)
    with FakeOpenAI([endpoint]) as fake:
        summary = run_study(monkeypatch, tmp_path / "home", endpoint, feature, space)
        unknown = sum(1 for _, _, model in fake.requests if model == "gpt-9-ultra")
    assert summary.status == "completed"
    reason = summary.selection["reason"]
    assert "failed: openai/gpt-9-ultra — " in reason and "(every call;" in reason and "does not exist" in reason, reason
    _, [(n_calls, attempts)] = Warehouse(warehouse_path()).fetch(
        "select count(*), sum(attempts) from calls where study_id = ? and model = 'openai/gpt-9-ultra'", [summary.study_id])
    assert unknown == attempts == n_calls > 0  # one request per call: a 404 is not retried

    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report

    md = markdown(load_report(Warehouse(warehouse_path()), summary.study_id))
    assert "failed: openai/gpt-9-ultra — BadRequestError (every call; trial" in md, md
    print(reason)


def test_a_study_whose_every_search_trial_failed_does_not_say_completed(harness, tmp_path, monkeypatch):
    feature, space = study_files(tmp_path, ["openai/old", "openai/claude-v2", "openai/gpt-9-ultra"])
    gone = {name: Model(name, gone_after=1) for name in ("claude-v2", "gpt-9-ultra")}  # each answers its preflight call only
    endpoint = Endpoint("e", {**models(feature), **gone}, api_key=KEY)
    with FakeOpenAI([endpoint]):
        summary = run_study(monkeypatch, tmp_path / "home", endpoint, feature, space)
    assert summary.status == "all_trials_failed" and summary.selection["trial_id"] is None
    assert "openai/claude-v2 — " in summary.error and "openai/gpt-9-ultra — " in summary.error
    _, [(status,)] = Warehouse(warehouse_path()).fetch("select status from studies where id = ?", [summary.study_id])
    assert status == "all_trials_failed"


def test_an_endpoint_that_goes_down_ends_the_study_provider_down(tmp_path):
    """Through the CLI, in its own process: the incumbent is measured, then the endpoint answers 503
    to everything. The breaker (K=5 failed calls) stops the requests; the study ends `provider_down`
    with its report, one `error:` line naming the endpoint, exit code 3, no traceback."""
    feature, space = study_files(tmp_path, ["openai/old", "openai/new"])
    endpoint = Endpoint("e", models(feature), api_key=KEY, down_after=25)
    home = tmp_path / "home"
    with FakeOpenAI([endpoint]) as fake:
        env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT),
               "OPENAI_API_BASE": endpoint.url, "OPENAI_API_KEY": KEY}
        env.pop("PREFECT_API_URL", None)

        def migrate() -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "offramp.flows.cli", "migrate", str(feature), "--space", str(space),
                                   "--max-trials", "4", "--concurrency", "4", "--no-racing"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

        run = migrate()
        after_outage = len(fake.requests) - 25
        check_provider_down(run, home, endpoint, after_outage)
        endpoint.down_after = None  # the endpoint is back: the same command resumes the study
        again = migrate()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    _, [(study_id, status)] = Warehouse(home / "warehouse.duckdb").fetch("select id, status from studies")
    assert status == "completed" and f"(resumed an interrupted study: {study_id})" in again.stdout


def check_provider_down(run: subprocess.CompletedProcess, home: Path, endpoint: Endpoint, after_outage: int) -> None:
    assert run.returncode == 3, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "provider_down" in errors[0] and endpoint.url in errors[0], run.stderr[-2000:]
    k, concurrency, attempts = 5, 4, 3 + 1
    assert 0 < after_outage <= (k + concurrency - 1) * attempts, after_outage  # not 20 examples x 4 attempts
    wh = Warehouse(home / "warehouse.duckdb")
    _, [(study_id, status, error)] = wh.fetch("select id, status, error from studies")
    assert status == "provider_down" and endpoint.url in error
    _, trials = wh.fetch("select role, status from trials where study_id = ? order by trial_id", [study_id])
    assert trials[0] == ("incumbent", "completed") and trials[-1][1] == "provider_down"
    assert (home / "reports" / f"{study_id}.html").exists()
    _, [(down_calls, paid)] = wh.fetch(
        "select count(*) filter (where error like 'EndpointDown:%' and attempts = 0), "
        "sum(cost_usd) filter (where error like 'EndpointDown:%') from calls where study_id = ?", [study_id])
    assert down_calls > 0 and paid == 0
