"""Judge metrics (tasks/feature/judge.py): rubric and pairwise judges on the fake provider."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from offramp.errors import UserError
from offramp.search_spaces.schema import Config, Settings
from offramp.tasks.feature.evaluate import evaluate_config
from offramp.tasks.feature.judge import (
    SELF,
    combine_orders,
    judged_verdicts,
    parse_five_point,
    parse_pairwise,
    parse_pass_fail,
)
from offramp.tasks.feature.metrics import build_metric
from offramp.tasks.feature.spec import load_feature
from offramp.tasks.gateway.budget import Budget
from offramp.tasks.gateway.journal import Journal
from offramp.tasks.gateway.llm import Gateway
from offramp.tasks.gateway.prices import PriceBook
from offramp.warehouse import Warehouse, records
from tests import fake_provider as fp

N = 12
PRICES = {m: fp.FAKE_PRICE for m in ("fake/judge", "fake/cand", "fake/old", "fake/good")}


def make_text_feature(root: Path, judge: dict, *, gold: bool = False, n: int = N) -> Path:
    """A reply-writing feature (text output); by default its data has no reply column (no gold)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "message", "reply", "tone"])
        for i in range(n):
            writer.writerow([f"m{i}", f"customer message {i}", f"gold reply {i}", "calm" if i % 2 else "angry"])
    columns = {"message": "message", **({"reply": "reply"} if gold else {})}
    spec = {
        "name": "reply-writer",
        "signature": {"inputs": [{"name": "message"}], "outputs": [{"name": "reply", "type": "text"}]},
        "incumbent": {"model": "fake/old", "instructions": "Reply kindly.", "settings": {"max_tokens": 32}},
        "data": {"files": [{"path": "data.csv"}], "id_column": "id", "columns": columns, "slices": ["tone"]},
        "metric": {"judge": {"model": "fake/judge", "instructions": "A good reply is kind and answers the message.", **judge}},
        "splits": {"seed": 1, "train": 2, "dev": 5, "test": 5},
    }
    (root / "feature.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def _answer(messages: list[dict], name: str) -> str:
    match = re.search(rf"Answer {name}:\n(.*?)(\n\n|$)", messages[-1]["content"], re.DOTALL)
    assert match is not None
    return match.group(1)


def prefers_good(messages: list[dict]) -> str:
    """A fair judge: the answer containing GOOD is better, whichever position it is in."""
    return "A" if "GOOD" in _answer(messages, "A") else "B"


def gateway(home: Path, *, budget: Budget | None = None, journal: Journal | None = None, use_cache: bool = True) -> Gateway:
    return Gateway(Warehouse(home / "w.duckdb"), PriceBook(PRICES), home=home, concurrency=2, use_cache=use_cache,
                   budget=budget, journal=journal)


def examples_of(feature):
    return list(feature.examples)


def config(model: str) -> Config:
    return Config(model=model, instructions="Reply kindly.", settings=Settings(max_tokens=32))


def test_parsers_are_lenient():
    assert [parse_pairwise(t) for t in ["A", " b.", "Tie", "Answer A is better", "It's a tie", "both equal", "?", None]] == \
        ["A", "B", "tie", "A", "tie", "tie", None, None]
    assert [parse_pass_fail(t) for t in ["PASS", "fail.", "Yes", "no", "passes", "maybe"]] == ["pass", "fail", "pass", "fail", "pass", None]
    assert [parse_five_point(t) for t in ["4", "Score: 5/5", "0 or 9", "three"]] == ["4", "5", None, None]
    assert combine_orders("A", "B") == ("win", 1.0)  # A in ab is the judged answer, B in ba is too
    assert combine_orders("B", "A") == ("loss", 0.0)
    assert combine_orders("A", "A") == ("tie", 0.5)  # position bias: each order prefers position A
    assert combine_orders("tie", "B") == ("tie", 0.5)
    assert combine_orders(None, "B") == (None, 0.0)


def test_a_judge_preferring_position_a_gives_ties_never_wins(tmp_path, home, fake):
    feature = load_feature(make_text_feature(tmp_path / "f", {"mode": "pairwise"}))
    judge = fake.add("judge", answer=lambda m: "A")
    fake.add("cand", answer=lambda m: "GOOD reply to " + m[-1]["content"])
    examples = examples_of(feature)
    references = {e.id: {"reply": f"meh {e.id}"} for e in examples}
    ev = evaluate_config(feature.spec, build_metric(feature), config("fake/cand"), examples, gateway(home), references=references)
    assert ev.scores == [0.5] * N and ev.measurement.quality == 0.5
    assert judge.calls == 2 * N
    judge_calls = [c for c in ev.calls if c.purpose == "judge"]
    assert len(judge_calls) == 2 * N and {c.trial_id for c in judge_calls} == {None}
    outcomes = {r["example_id"]: r["outcome"] for r in ev.judgements}
    assert set(outcomes.values()) == {"tie"} and len(outcomes) == N
    assert sorted({(r["order"], r["verdict"], r["score"]) for r in ev.judgements}) == [("ab", "A", 1.0), ("ba", "A", 0.0)]


def test_a_judge_preferring_the_candidate_in_both_orders_gives_wins_and_the_reverse_losses(tmp_path, home, fake):
    feature = load_feature(make_text_feature(tmp_path / "f", {"mode": "pairwise"}))
    fake.add("judge", answer=prefers_good)
    fake.add("cand", answer=lambda m: "GOOD reply to " + m[-1]["content"])
    fake.add("old", answer=lambda m: "a reply")
    examples = examples_of(feature)
    metric = build_metric(feature)
    better = evaluate_config(feature.spec, metric, config("fake/cand"), examples, gateway(home),
                             references={e.id: {"reply": "a reply"} for e in examples})
    assert better.scores == [1.0] * N
    assert {r["outcome"] for r in better.judgements} == {"win"}
    worse = evaluate_config(feature.spec, metric, config("fake/old"), examples, gateway(home),
                            references={e.id: {"reply": f"GOOD {e.id}"} for e in examples})
    assert worse.scores == [0.0] * N and {r["outcome"] for r in worse.judgements} == {"loss"}


def test_ties_identical_answers_self_and_missing_answers(tmp_path, home, fake):
    feature = load_feature(make_text_feature(tmp_path / "f", {"mode": "pairwise"}))
    judge = fake.add("judge", answer=lambda m: "tie")
    answers = iter(["Same Reply", "different one"] * N)
    fake.add("cand", answer=lambda m: next(answers))
    examples = examples_of(feature)[:4]
    metric = build_metric(feature)
    refs = {examples[0].id: {"reply": "same   reply"}, examples[1].id: {"reply": "other"}, examples[2].id: {"reply": "same reply"},
            examples[3].id: None}  # the incumbent gave no answer to the last one
    gw = gateway(home, use_cache=False)
    ev = evaluate_config(feature.spec, metric, config("fake/cand"), examples, gw, references=refs)
    # identical (normalised): tie without a call; different: judged tie (2 calls); no reference: a win, no call
    assert ev.scores == [0.5, 0.5, 0.5, 1.0]
    assert judge.calls == 2
    assert [r["outcome"] for r in ev.judgements if r["order"] == "single"] == ["tie", "tie", "win"]
    # the incumbent judged against itself: 0.5 everywhere, no judge call
    judge.calls = 0
    own = evaluate_config(feature.spec, metric, config("fake/cand"), examples, gw, references=SELF)
    assert own.scores == [0.5] * 4 and judge.calls == 0
    with pytest.raises(ValueError, match="reference"):
        evaluate_config(feature.spec, metric, config("fake/cand"), examples, gw)


def test_rubric_criteria_share_passed_five_point_and_unparseable(tmp_path, home, fake):
    criteria = ["It is kind.", "It answers the question.", "It is short."]
    feature = load_feature(make_text_feature(tmp_path / "f", {"mode": "rubric", "criteria": criteria}, gold=True))
    fake.add("judge", answer=lambda m: "fail" if "short" in m[0]["content"] else "PASS.")
    fake.add("cand", answer=lambda m: "a reply")
    examples = examples_of(feature)
    ev = evaluate_config(feature.spec, build_metric(feature), config("fake/cand"), examples, gateway(home))
    assert ev.scores == pytest.approx([2 / 3] * N)
    assert len([c for c in ev.calls if c.purpose == "judge"]) == 3 * N
    assert {(r["criterion"], r["verdict"]) for r in ev.judgements} == {(criteria[0], "pass"), (criteria[1], "pass"), (criteria[2], "fail")}
    five = load_feature(make_text_feature(tmp_path / "g", {"mode": "rubric", "scale": "five_point"}))
    scores = iter(["Score: 4", "1", "5/5", "I cannot rate this"] * N)
    fake.add("judge", answer=lambda m: next(scores))
    ev5 = evaluate_config(five.spec, build_metric(five), config("fake/cand"), examples_of(five)[:4], gateway(home, use_cache=False))
    # 4 -> 0.75, 1 -> 0, 5 -> 1; unparseable: the example is unjudged and scores 0 (as a failed call)
    assert ev5.scores == [0.75, 0.0, 1.0, 0.0]
    assert [r["verdict"] for r in ev5.judgements] == ["4", "1", "5", None]
    assert ev5.judgements[-1]["raw_answer"] == "I cannot rate this"


def test_rubric_prompt_shows_the_gold_reply_only_when_given(tmp_path, home, fake):
    seen = []
    fake.add("judge", answer=lambda m: seen.append(m[-1]["content"]) or "pass")
    fake.add("cand", answer=lambda m: "a reply")
    for gold in (True, False):
        feature = load_feature(make_text_feature(tmp_path / f"f{gold}", {"mode": "rubric"}, gold=gold))
        evaluate_config(feature.spec, build_metric(feature), config("fake/cand"), examples_of(feature)[:1], gateway(home, use_cache=False))
    assert "gold reply 0" in seen[0] and "Reference answer" in seen[0]
    assert "Reference answer" not in seen[1] and "customer message 0" in seen[1] and "a reply" in seen[1]


def test_judge_calls_are_cached_journaled_as_judge_capped_and_stored(tmp_path, home, fake):
    feature = load_feature(make_text_feature(tmp_path / "f", {"mode": "pairwise"}))
    judge = fake.add("judge", answer=prefers_good)
    fake.add("cand", answer=lambda m: "GOOD reply to " + m[-1]["content"])
    examples = examples_of(feature)
    refs = {e.id: {"reply": "a reply"} for e in examples}
    metric = build_metric(feature)
    wh = Warehouse(home / "w.duckdb")
    budget = Budget(10.0)
    journal = Journal(home, "study-j", 7, "eval")
    first = evaluate_config(feature.spec, metric, config("fake/cand"), examples, gateway(home, budget=budget, journal=journal),
                            references=refs, study_id="study-j", trial_id=7)
    journal.close()
    records.store_calls(wh, first.calls)
    records.store_judgements(wh, first.judgements)
    judge_calls = [c for c in first.calls if c.purpose == "judge"]
    judge_cost = sum(c.cost_usd for c in judge_calls)
    assert judge_cost > 0 and budget.spent_usd == pytest.approx(judge_cost + sum(r.cost_usd for r in first.results))
    lines = [json.loads(x) for x in journal.path.read_text().splitlines()]
    purposes = {(x["model"], x["purpose"]) for x in lines if x["kind"] == "answer"}
    assert purposes == {("fake/judge", "judge"), ("fake/cand", "eval")}
    _, rows = wh.fetch("select purpose, count(*), min(trial_id), count(example_id) from calls group by purpose order by purpose")
    assert rows == [("eval", N, 7, N), ("judge", 2 * N, 7, 2 * N)]
    _, view = wh.fetch("select count(*), count(distinct example_id), sum(unparsed::int), min(model) from v_judgements "
                       "where study_id = 'study-j' and trial_id = 7")
    assert view == [(2 * N, N, 0, None)]  # no trial row in this unit test: the view's trial columns are empty
    verdicts = judged_verdicts(wh, "study-j", 7)
    assert len(verdicts) == N and {v.outcome for v in verdicts.values()} == {"win"}
    assert {tuple(sorted(v.verdicts.items())) for v in verdicts.values()} == {(("ab", "A"), ("ba", "B"))}
    # second run: every judge answer from the cache, nothing paid
    calls_before = judge.calls
    again = evaluate_config(feature.spec, metric, config("fake/cand"), examples, gateway(home), references=refs)
    again_judge = [c for c in again.calls if c.purpose == "judge"]
    assert judge.calls == calls_before and all(c.cache_hit and c.cost_usd == 0 for c in again_judge)
    assert again.scores == first.scores
    # a tiny cap: the candidate's answers fit, the judge's calls are refused, the examples unjudged
    fake.add("judge", answer=lambda m: "A")  # a different judge answer would not matter: nothing is called
    cand_only = sum(r.cost_usd for r in first.results)
    tight = Budget(cand_only * 1.5 + 1e-4)
    capped = evaluate_config(feature.spec, metric, config("fake/cand"), examples, gateway(home, budget=tight, use_cache=False),
                             references=refs)
    refused = [c for c in capped.calls if c.purpose == "judge" and (c.error or "").startswith("BudgetExceeded")]
    assert refused and tight.exhausted and tight.spent_usd <= tight.max_usd
    assert all(capped.scores[i] == 0.0 for i, e in enumerate(examples) if any(c.example_id == e.id for c in refused))


@pytest.mark.parametrize(("judge", "field", "expected"), [
    ({"mode": "ranking"}, "metric.judge.mode", "rubric"),
    ({"mode": "pairwise", "criteria": ["kind"]}, "metric.judge", "criteria"),
    ({"mode": "rubric", "human_judgements": {"path": "human.jsonl"}}, "metric.judge.human_judgements.path", "does not exist"),
])
def test_a_bad_judge_names_feature_yaml_and_the_field(tmp_path, judge, field, expected):
    root = make_text_feature(tmp_path / "f", judge)
    with pytest.raises(UserError, match="feature.yaml") as info:
        load_feature(root)
    message = str(info.value)
    assert "feature.yaml" in message and f"`{field}" in message and expected in message


def test_a_judge_with_a_name_or_function_too_is_refused_and_others_need_their_gold(tmp_path):
    root = make_text_feature(tmp_path / "f", {"mode": "rubric"})
    spec = yaml.safe_load((root / "feature.yaml").read_text())
    spec["metric"]["name"] = "exact_match"
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match="exactly one of `name`"):
        load_feature(root)
    spec["metric"] = "exact_match"  # without a judge the reply column is needed
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match=r"missing: \['reply'\]"):
        load_feature(root)
    (root / "human.jsonl").write_text("{}\n")
    spec["metric"] = {"judge": {"mode": "rubric", "model": "fake/judge", "instructions": "x", "human_judgements": {"path": "human.jsonl"}}}
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))
    feature = load_feature(root)
    assert feature.spec.metric.judge.human_judgements.path == "human.jsonl" and not feature.spec.has_gold
    assert all("reply" not in e.outputs for e in feature.examples)


def test_spec_hash_of_a_feature_without_judge_is_unchanged(tmp_path):
    from offramp.tasks.feature.spec import MetricSpec
    from tests.helpers import make_feature

    feature = load_feature(make_feature(tmp_path / "f"))
    dumped = feature.spec.model_dump(mode="json")
    assert "judge" in dumped["metric"]  # the field exists, and is dropped from the hash when unset
    assert MetricSpec(name="exact_match").judge is None
    from offramp.util import content_hash

    dumped["metric"].pop("judge")
    dumped["incumbent"].pop("endpoint", None)
    dumped["data"].pop("unlabeled", None)
    dumped["data"].pop("slice_files", None)
    dumped["data"].pop("samples", None)
    assert feature.spec.spec_hash() == content_hash(dumped, compact=False)


def judged_space(path: Path, strategies: dict | None = None, priced: tuple[str, ...] = ("fake/judge",)) -> Path:
    models = ["fake/good", "fake/meh"]
    space = {
        "name": "judged-space", "models": models, "strategies": strategies or {"incumbent": {}},
        "settings": {"max_tokens": [32], "output_mode": ["text"]},
        "prices": {m: {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6} for m in [*models, "fake/old", *priced]},
    }
    space["prices"]["fake/meh"] = {"input_cost_per_token": 1e-5, "output_cost_per_token": 2e-5}  # dearer than good
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def test_preflight_checks_the_judge_price_and_refuses_optimizers_that_need_the_metric(tmp_path, home, fake):
    from offramp.flows.params import MigrateParams
    from offramp.tasks.study.plan import plan_study
    from offramp.tasks.study.prepare import StudyInputs, preflight

    feature = make_text_feature(tmp_path / "f", {"mode": "pairwise"})
    with pytest.raises(UserError, match=r"field `metric.judge.model`.*fake/judge"):
        preflight(StudyInputs(str(feature), space=str(judged_space(tmp_path / "s0.yaml", priced=()))))
    with pytest.raises(UserError, match=r"strategies.few_shot.*metric.judge"):
        preflight(StudyInputs(str(feature), space=str(judged_space(tmp_path / "s1.yaml", {"incumbent": {}, "few_shot": {"k": [2]}}))))
    space = judged_space(tmp_path / "s2.yaml", {"incumbent": {}, "zero_shot": {}})
    prepared = preflight(StudyInputs(str(feature), space=str(space)))
    plan = plan_study(prepared, MigrateParams(feature_dir=str(feature), space=str(space), max_trials=3))
    [judge] = [p for p in plan.phases if p.name.startswith("judge")]
    assert judge.calls == 2 * 3 * (5 + 5)  # both orders, every trial's dev and test answers (the incumbent's: none)
    assert judge.worst_usd == pytest.approx(judge.calls * plan.per_call_usd["fake/judge"]) and judge.worst_usd > 0
    rubric = make_text_feature(tmp_path / "r", {"mode": "rubric", "criteria": ["kind", "short"]})
    plan = plan_study(preflight(StudyInputs(str(rubric), space=str(space))),
                      MigrateParams(feature_dir=str(rubric), space=str(space), max_trials=3))
    [judge] = [p for p in plan.phases if p.name.startswith("judge")]
    assert judge.calls == 2 * (3 + 1) * (5 + 5)  # one call per criterion, the incumbent's answers judged too


def test_a_pairwise_judged_study_end_to_end(tmp_path, home, fake):
    from prefect.testing.utilities import prefect_test_harness

    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams
    from offramp.warehouse import warehouse_path

    fake.add("old", answer=lambda m: "a reply")
    fake.add("good", answer=lambda m: "GOOD reply to " + m[-1]["content"])
    fake.add("meh", answer=lambda m: "A  Reply")  # the incumbent's answer, normalised: ties without a judge call
    judge = fake.add("judge", answer=prefers_good)
    feature = make_text_feature(tmp_path / "f", {"mode": "pairwise"})
    space = judged_space(tmp_path / "space.yaml")
    with prefect_test_harness(server_startup_timeout=120):
        summary = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=2, trigger="cli"))
    assert summary.status == "completed"
    wh = Warehouse(warehouse_path())
    sid = summary.study_id
    _, trials = wh.fetch("select trial_id, role, split, model, quality from trials where study_id = ? order by trial_id", [sid])
    quality = {(r[1] == "incumbent", r[2], r[3]): r[4] for r in trials}
    assert quality[(True, "dev", "fake/old")] == 0.5 and quality[(True, "test", "fake/old")] == 0.5
    assert quality[(False, "dev", "fake/good")] == 1.0 and quality[(False, "dev", "fake/meh")] == 0.5
    _, [(selected,)] = wh.fetch("select selected_trial_id from studies where id = ?", [sid])
    assert {r[0]: r[3] for r in trials}[selected] == "fake/good"
    # judge calls: both orders for every answer of the good model (dev and test), none for the incumbent or the tie
    _, calls = wh.fetch("select c.trial_id, t.model, t.split, count(*) from calls c join trials t using (study_id, trial_id) "
                        "where c.study_id = ? and c.purpose = 'judge' group by all order by 1", [sid])
    good = {r[0] for r in trials if r[3] == "fake/good"}
    assert {r[0] for r in calls} == good and all(r[3] == 2 * 5 for r in calls)
    assert judge.calls == 2 * 5 * len(good)
    _, ledger = wh.fetch("select count(*) from ledger where study_id = ? and purpose = 'judge' and kind = 'answer'", [sid])
    assert ledger == [(2 * 5 * len(good),)]
    _, view = wh.fetch("select trial_id, outcome, count(*) from v_judgements where study_id = ? group by all", [sid])
    by_trial = {(r[0], r[1]): r[2] for r in view}
    for t in good:
        assert by_trial[(t, "win")] == 10 and judged_verdicts(wh, sid, t) and all(
            v.outcome == "win" for v in judged_verdicts(wh, sid, t).values())
    meh = [r[0] for r in trials if r[3] == "fake/meh"]
    for t in meh:  # every answer it gave is a tie (racing may have stopped it before all 5)
        _, [(answered,)] = wh.fetch("select count(*) from calls where study_id = ? and trial_id = ? and purpose = 'eval'", [sid, t])
        assert answered >= 1 and by_trial[(t, "tie")] == answered
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report

    text = markdown(load_report(wh, sid))
    [line] = [x for x in text.splitlines() if x.startswith("### Judge (metric.judge")]
    assert "0 judge answers did not parse" in line
    [calibration] = [x for x in text.splitlines() if x.startswith("Judge calibration")]
    assert "no human judgements" in calibration and "assumes a perfect judge" in calibration
    some_good = min(good)
    assert f"- trial {some_good} (" in text and "5 won, 0 tied, 0 lost" in text and "in 10 judge calls" in text


def test_a_judge_model_may_be_a_declared_endpoint(tmp_path, home, fake):
    from offramp.tasks.study.prepare import StudyInputs, preflight

    declared = {"id": "openai/judge-9", "name": "my-judge", "api_base": "http://127.0.0.1:9/v1",
                "price": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}}
    root = make_text_feature(tmp_path / "f", {"mode": "rubric", "model": declared})
    feature = load_feature(root)
    judge = feature.spec.metric.judge
    assert judge.model == "my-judge" and judge.endpoint.api_base == "http://127.0.0.1:9/v1"
    prepared = preflight(StudyInputs(str(root), space=str(judged_space(tmp_path / "s.yaml", priced=()))))
    assert prepared.endpoints["my-judge"].id == "openai/judge-9"  # the gateway routes and prices the judge by its name
