"""Tune our own: offramp's classifier is trained on train only, stored like a compiled program,
served through the gateway as `tuned/<hash>` (calls, cost, latency recorded like any model's),
its training machine time on the bill (purpose `tune`, in the ledger), and a release of it
answers through `load_release`."""

from __future__ import annotations

import json
import math

import pytest
from prefect.testing.utilities import prefect_test_harness

from offramp.errors import UserError
from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.gateway import tuned
from offramp.tasks.gateway.llm import GatewayConfig, LLMRequest
from offramp.tasks.watch.releases import load_release, promote
from offramp.warehouse import Warehouse, state_dir, warehouse_path
from tests.helpers import make_feature, make_space

TEXTS = [f"{w} number {i}" for i in range(12) for w in ("my card is lost", "send money abroad", "atm ate my cash")]
LABELS = [label for _ in range(12) for label in ("cards", "transfers", "cash")]


def test_fit_serves_from_json_state_and_is_deterministic():
    state = tuned.fit(TEXTS, LABELS, seed=1)
    again = tuned.fit(TEXTS, LABELS, seed=1)
    assert json.dumps(state, sort_keys=True) == json.dumps(again, sort_keys=True)  # same train, same model id
    state = json.loads(json.dumps(state))  # what the warehouse gives back
    model = tuned.register("h-test", state)
    label, probability, words, seconds = tuned.answer(model, [{"role": "user", "content": "the atm kept my cash"}])
    assert label == "cash" and 1 / 3 < probability <= 1 and words == 5 and seconds >= 0
    with pytest.raises(LookupError, match="not loaded"):
        tuned.answer("tuned/never-registered", [{"role": "user", "content": "x"}])


def test_gateway_answers_a_tuned_model_with_a_machine_time_price(home):
    model = tuned.register("h-gw", tuned.fit(TEXTS, LABELS, seed=0))
    gateway = GatewayConfig(home=state_dir()).open()
    [result] = gateway.complete_many([LLMRequest(model, [{"role": "user", "content": "lost my card"}], {"max_tokens": 8})])
    assert result.error is None and result.text == "cards"
    assert result.cost_usd > 0 and result.prompt_tokens == 3 and result.completion_tokens == 1
    assert -math.log(3) < result.confidence <= 0  # the label's log-probability, what a confidence cascade reads
    again = gateway.complete_many([LLMRequest(model, [{"role": "user", "content": "lost my card"}], {"max_tokens": 8})])[0]
    assert not again.cache_hit and again.confidence == result.confidence  # answered again in process, never cached
    assert gateway.prices.source(model).startswith("bundled self-hosted")


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_a_tuned_candidate_is_trained_on_train_served_billed_and_released(harness, home, fake, tmp_path):
    fake.add("old", answer=lambda m: "alpha")  # the incumbent: right on a third
    fake.add("sloppy", answer=lambda m: "beta")
    feature = make_feature(tmp_path / "feature", n=90, extra={"splits": {"seed": 3, "train": 30, "dev": 30, "test": 30}})
    space = make_space(tmp_path / "space.yaml", ["fake/sloppy"], strategies={"incumbent": {}, "tuned": {}})
    summary = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=6, trigger="cli"))
    wh = Warehouse(warehouse_path())
    [(trial_id, status, quality, model)] = wh.fetch(
        "select trial_id, status, quality, model from trials where study_id = ? and strategy = 'tuned' and split = 'dev'",
        [summary.study_id])[1]
    assert status == "completed" and model == "tuned/tfidf-char-logreg" and quality > 0.9
    served = {m for (m,) in wh.fetch("select distinct model from calls where trial_id = ? and study_id = ? and purpose = 'eval'",
                                      [trial_id, summary.study_id])[1]}
    [program_hash] = [m.removeprefix("tuned/") for m in served]
    [(n, with_confidence)] = wh.fetch("select count(*), count(confidence) from calls where trial_id = ? and study_id = ? "
                                      "and purpose = 'eval'", [trial_id, summary.study_id])[1]
    assert n == with_confidence == 30
    assert wh.fetch("select count(*) from programs where program_hash = ? and strategy = 'tuned'", [program_hash])[1] == [(1,)]
    # training: one machine-time call, on the bill and in the ledger, purpose tune
    [(tune_cost,)] = wh.fetch("select sum(cost_usd) from calls where study_id = ? and purpose = 'tune'", [summary.study_id])[1]
    [(ledger_tune,)] = wh.fetch("select sum(cost_usd) from ledger where study_id = ? and purpose = 'tune' and kind = 'answer'",
                                [summary.study_id])[1]
    assert tune_cost > 0 and ledger_tune == pytest.approx(tune_cost)
    # the classifier beats the incumbent on held-out test and is selected
    assert summary.selection is not None and summary.selection["trial_id"] in {
        t for (t,) in wh.fetch("select trial_id from trials where study_id = ? and strategy = 'tuned'", [summary.study_id])[1]}
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report

    assert "| tuned/tfidf-char-logreg (tuned on train) |" in markdown(load_report(wh, summary.study_id))  # no decoding settings
    path, entry, _ = promote(wh, summary.study_id, directory=tmp_path / "releases")
    assert entry["model"] == "tuned/tfidf-char-logreg"
    program = load_release(path)
    assert program(text="a message about banana and nothing else") == {"label": "beta"}
    assert program.last_confidence is not None and program.last_confidence > math.log(1 / 3)


def test_tuned_needs_a_label_output(home, tmp_path):
    feature = make_feature(tmp_path / "feature", extra={
        "signature": {"inputs": [{"name": "text"}], "outputs": [{"name": "label", "type": "text"}]}, "metric": "exact_match"})
    space = make_space(tmp_path / "space.yaml", ["fake/sloppy"], strategies={"incumbent": {}, "tuned": {}})
    with pytest.raises(UserError, match=r"field `strategies.tuned`: it trains a classifier, which needs a label output"):
        migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=2, trigger="cli"))


def test_taught_labels_come_from_the_incumbents_recorded_answers(harness, home, fake, tmp_path):
    """Few gold labels, many logged inputs with what the incumbent answered: the classifier learns
    from both (distillation); the report says how many labels were gold and how many taught, and
    an answer that names no label teaches nothing."""
    import csv

    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from tests.helpers import LABELS, word_of

    fake.add("old", answer=lambda m: "alpha")
    fake.add("sloppy", answer=lambda m: "beta")
    feature = make_feature(tmp_path / "feature", n=60, extra={"splits": {"seed": 3, "train": 12, "dev": 24, "test": 24}})
    with (feature / "log.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "answer"])
        for i in range(90):  # the incumbent served these answers (a production log); 10 of them were not a label
            label = LABELS[i % 3]
            writer.writerow([f"logged {i} about {word_of(label)}", "I cannot tell" if i % 9 == 0 else f"Queue: {label}"])
    spec = (feature / "feature.yaml").read_text().replace(
        "  slices:\n", "  unlabeled:\n    files: [{path: log.csv}]\n    served_column: answer\n  slices:\n")
    (feature / "feature.yaml").write_text(spec)
    space = make_space(tmp_path / "space.yaml", ["fake/sloppy"], strategies={"incumbent": {}, "tuned": {}})
    summary = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=6, trigger="cli"))
    wh = Warehouse(warehouse_path())
    report = load_report(wh, summary.study_id)
    [row] = report.tuned
    assert (row["gold_labels"], row["taught_labels"], row["unlabeled_inputs"]) == (12, 80, 90)
    assert "trained on 12 gold labels + 80 taught by the incumbent's recorded answers (of 90 unlabeled inputs)" in markdown(report)
