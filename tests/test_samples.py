"""Production samples: `data.samples` in its three formats, bad rows named by file, line and field,
the sample size chosen from the budget, and a fake end-to-end study comparing with what was served."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from offramp.errors import UserError
from offramp.tasks.feature.samples import agreement_metric
from offramp.tasks.feature.spec import load_feature
from offramp.tasks.study.samples import RESERVE_FRACTION, choose_size, seeded_order
from tests.helpers import LABELS, make_feature, make_space, oracle, word_of

DATA = {"files": [{"path": "data.csv"}], "id_column": "id", "columns": {"text": "text", "label": "label"}, "slices": ["group"]}


def with_samples(root: Path, samples: dict, **feature) -> Path:
    folder = make_feature(root, extra={"data": {**DATA, "samples": samples}, **feature})
    return folder


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def completion(content: str, created: int = 1_700_000_000) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": created, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


# ------------------------------------------------------------------------------------ formats
def test_columns_jsonl_with_dotted_paths_and_timestamps(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    write_jsonl(root / "traffic.jsonl", [
        {"request_id": "r1", "req": {"body": {"text": "card about apple"}}, "served": "alpha", "ts": "2026-01-02T03:04:05Z"},
        {"request_id": "r2", "req": {"body": {"text": "hmm banana"}}, "served": " BETA.", "ts": 1767322800},
        {"request_id": "r3", "req": {"body": {"text": "grape?"}}, "served": "no idea", "ts": 1767322800000},
        {"request_id": "r4", "req": {"body": {"text": "no answer logged"}}, "served": None, "ts": None},
    ])
    feature = load_feature(with_samples(root, {
        "files": [{"path": "traffic.jsonl"}], "columns": {"text": "req.body.text"}, "served_column": "served",
        "timestamp_column": "ts", "id_column": "request_id", "max_samples": 50}))
    s = {x.id: x for x in feature.samples}
    assert list(s) == ["r1", "r2", "r3", "r4"]
    assert s["r1"].inputs == {"text": "card about apple"} and s["r1"].served == {"label": "alpha"}
    assert s["r1"].timestamp == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert s["r2"].served == {"label": "beta"}  # read by the shipped prompt's parser, leniently
    assert s["r2"].timestamp == s["r3"].timestamp == dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)  # seconds, milliseconds
    assert s["r3"].served is None and s["r3"].served_text == "no idea"  # served, but unreadable: kept, not comparable
    assert s["r4"].served is None and s["r4"].served_text is None and s["r4"].timestamp is None
    assert [x.id for x in seeded_order(feature.samples, 0)] and {x.id for x in seeded_order(feature.samples, 0)} == {"r1", "r2"}
    # samples are not examples: train/dev/test are unchanged and hold none of them
    assert len(feature.examples) == 60 and not {x.id for x in feature.samples} & {e.id for e in feature.examples}


def test_columns_csv(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    with (root / "log.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["when", "message", "answer"])
        writer.writerow(["2026-01-01 10:00:00", "about apple, and more", "alpha"])
        writer.writerow(["2026-01-01 11:00:00", "about grape", "gamma"])
    feature = load_feature(with_samples(root, {"files": [{"path": "log.csv"}], "columns": {"text": "message"},
                                               "served_column": "answer", "timestamp_column": "when"}))
    assert [(x.id, x.inputs["text"], x.served, x.line) for x in feature.samples] == [
        ("log-2", "about apple, and more", {"label": "alpha"}, 2), ("log-3", "about grape", {"label": "gamma"}, 3)]
    assert feature.samples[1].timestamp == dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)


def test_openai_chat(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    system = {"role": "system", "content": "Route it."}
    write_jsonl(root / "calls.jsonl", [
        {"messages": [system, {"role": "user", "content": "first about apple"}], "response": completion("alpha")},
        {"request": {"model": "gpt-4o-mini", "messages": [system, {"role": "user", "content": "old"},
                                                          {"role": "assistant", "content": "beta"},
                                                          {"role": "user", "content": [{"type": "text", "text": "latest about grape"}]}]},
         "response": "gamma", "timestamp": "2026-02-01T00:00:00+01:00"},
        {"messages": [{"role": "user", "content": "a message object"}], "response": {"role": "assistant", "content": "Beta"}},
    ])
    feature = load_feature(with_samples(root, {"files": [{"path": "calls.jsonl"}], "format": "openai_chat"}))
    s = feature.samples
    assert [x.inputs["text"] for x in s] == ["first about apple", "latest about grape", "a message object"]
    assert [x.served for x in s] == [{"label": "alpha"}, {"label": "gamma"}, {"label": "beta"}]
    assert s[0].timestamp == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)  # the completion's `created`
    assert s[1].timestamp == dt.datetime(2026, 1, 31, 23, tzinfo=dt.UTC)
    assert s[2].timestamp is None and [x.id for x in s] == ["calls-1", "calls-2", "calls-3"]


def test_openai_chat_json_answer_as_content(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    json_output = {"signature": {"inputs": [{"name": "text"}], "outputs": [
        {"name": "label", "type": "json", "json_schema": {"type": "object", "properties": {"kind": {"type": "string"}}}}]},
        "metric": "json_f1"}
    write_jsonl(root / "calls.jsonl", [
        {"messages": [{"role": "user", "content": "about apple"}], "response": '{"kind": "fruit"}'},
        {"messages": [{"role": "user", "content": "about grape"}], "response": completion('{"kind": "berry"}')},
    ])
    make_feature(root, extra={**json_output, "data": {**DATA, "samples": {"files": [{"path": "calls.jsonl"}], "format": "openai_chat"}}})
    (root / "data.csv").write_text("id,text,label,group\n" + "".join(f'e{i},t {i},"{{""kind"": ""k{i}""}}",g\n' for i in range(60)))
    feature = load_feature(root)
    assert [x.served for x in feature.samples] == [{"label": {"kind": "fruit"}}, {"label": {"kind": "berry"}}]
    m = agreement_metric(feature)
    assert m.score(feature.samples[0].served, {"label": {"kind": "fruit"}}) == 1.0
    assert m.score(feature.samples[0].served, {"label": {"kind": "berry"}}) == 0.0


def spend_log_row(request_id: str, text: str, answer: str, start: str, *, status: str = "success") -> dict:
    """A row of LiteLLM's LiteLLM_SpendLogs table as exported: `messages`/`response` as JSON strings."""
    return {"request_id": request_id, "call_type": "acompletion", "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "spend": 0.00012, "total_tokens": 40, "prompt_tokens": 35, "completion_tokens": 5, "startTime": start,
            "endTime": start, "model": "gpt-4o-mini", "model_group": "router", "custom_llm_provider": "openai", "api_base": "",
            "user": "", "metadata": json.dumps({"user_api_key_alias": None}), "cache_hit": "False", "cache_key": "",
            "request_tags": "[]", "messages": json.dumps([{"role": "system", "content": "Route it."}, {"role": "user", "content": text}]),
            "response": json.dumps(completion(answer)) if status == "success" else "{}", "status": status,
            "proxy_server_request": "{}"}


def test_litellm_spend_log_jsonl_and_csv(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    rows = [spend_log_row("a1", "about apple", "alpha", "2026-03-01T10:00:00.123Z"),
            spend_log_row("a2", "about banana", "beta", "2026-03-01 11:00:00"),
            spend_log_row("a3", "about grape", "", "2026-03-01T12:00:00Z", status="failure")]
    write_jsonl(root / "spend.jsonl", rows)
    with (root / "spend.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "request_id": row["request_id"] + "-csv"})
    feature = load_feature(with_samples(root, {"files": [{"path": "spend.jsonl"}, {"path": "spend.csv"}], "format": "litellm_spend_log"}))
    s = {x.id: x for x in feature.samples}
    assert list(s) == ["a1", "a2", "a3", "a1-csv", "a2-csv", "a3-csv"]  # request_id is the id
    for suffix in ("", "-csv"):
        assert s["a1" + suffix].inputs == {"text": "about apple"} and s["a1" + suffix].served == {"label": "alpha"}
        assert s["a2" + suffix].served == {"label": "beta"}
        assert s["a2" + suffix].timestamp == dt.datetime(2026, 3, 1, 11, tzinfo=dt.UTC)  # startTime
        assert s["a3" + suffix].served is None  # a failed request: nothing was served
    assert s["a1"].line == 1 and s["a1-csv"].line == 2


# ------------------------------------------------------------------------------------ bad rows
def bad_load(tmp_path: Path, lines: list, samples: dict | None = None) -> str:
    root = tmp_path / "f"
    root.mkdir(exist_ok=True)
    write_jsonl(root / "traffic.jsonl", lines)
    spec = samples or {"files": [{"path": "traffic.jsonl"}], "format": "openai_chat"}
    with pytest.raises(UserError, match=r" line \d+: field `") as info:
        load_feature(with_samples(root, spec))
    return str(info.value)


def good_chat(text: str = "about apple") -> dict:
    return {"messages": [{"role": "user", "content": text}], "response": completion("alpha")}


def test_bad_rows_name_file_line_and_field(tmp_path):
    message = bad_load(tmp_path, [good_chat(), good_chat(), '{"messages": [', good_chat(), "[1, 2]",
                                  {"messages": [{"role": "system", "content": "only a system message"}], "response": "alpha"},
                                  {"response": "alpha"}, good_chat("   ")])
    assert message.startswith(f"{tmp_path / 'f' / 'traffic.jsonl'} line 3: field `(the line)`: not valid JSON")
    assert "(4 other bad rows: traffic.jsonl line 5, traffic.jsonl line 6, traffic.jsonl line 7, traffic.jsonl line 8)" in message
    assert "data.samples (format openai_chat)" in message and "feature.yaml" in message


@pytest.mark.parametrize(("line", "needle"), [
    ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], "response": "alpha"},
     "line 1: field `messages`: expected a list of chat messages with a user message, got [{\"role\": \"system\""),
    ({"response": "alpha"}, "line 1: field `messages`: expected a list of chat messages with a user message, got null"),
    ({"messages": "not a list", "response": "alpha"}, "line 1: field `messages`: expected a list of chat messages with a user message, got 'not a list'"),
    (good_chat(""), "line 1: field `messages`: expected a non-empty last user message (the input), got an empty one"),
    ({**good_chat(), "created": "yesterday"}, "line 1: field `created`: expected a timestamp (ISO 8601, or seconds since the epoch), got 'yesterday'"),
    ({**good_chat(), "response": {"usage": {}}}, "line 1: field `response`: expected a chat completion object"),
    ("not json at all", "line 1: field `(the line)`: not valid JSON"),
])
def test_each_kind_of_bad_row(tmp_path, line, needle):
    message = bad_load(tmp_path, [line])
    assert "traffic.jsonl " + needle in message and "other bad row" not in message


def test_bad_rows_columns_format(tmp_path):
    spec = {"files": [{"path": "traffic.jsonl"}], "columns": {"text": "msg.text"}, "served_column": "served", "timestamp_column": "ts"}
    assert "traffic.jsonl line 2: field `msg.text`: missing" in bad_load(
        tmp_path, [{"msg": {"text": "ok"}, "served": "alpha", "ts": 1}, {"msg": {}, "served": "alpha", "ts": 1}], spec)
    assert "traffic.jsonl line 1: field `msg.text`: expected a non-empty input for `text`" in bad_load(
        tmp_path, [{"msg": {"text": " "}, "served": "alpha", "ts": 1}], spec)
    assert "traffic.jsonl line 1: field `served`: missing" in bad_load(tmp_path, [{"msg": {"text": "x"}, "ts": 1}], spec)
    assert "traffic.jsonl line 1: field `ts`: missing" in bad_load(tmp_path, [{"msg": {"text": "x"}, "served": "alpha"}], spec)


def test_spend_log_without_stored_prompts_says_how_to_store_them(tmp_path):
    row = {**spend_log_row("a1", "x", "alpha", "2026-03-01T10:00:00Z"), "messages": "{}"}
    message = bad_load(tmp_path, [row], {"files": [{"path": "traffic.jsonl"}], "format": "litellm_spend_log"})
    assert "traffic.jsonl line 1: field `messages`" in message and "store_prompts_in_spend_logs" in message


def test_spec_errors(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    write_jsonl(root / "t.jsonl", [good_chat()])
    two_inputs = {"signature": {"inputs": [{"name": "text"}, {"name": "channel"}],
                                "outputs": [{"name": "label", "type": "label", "labels": LABELS}]}}
    data = {**DATA, "columns": {**DATA["columns"], "channel": "group"}, "samples": {"files": [{"path": "t.jsonl"}], "format": "openai_chat"}}
    make_feature(root, extra={**two_inputs, "data": data})
    with pytest.raises(UserError, match=r"field `data.samples.format`: format `openai_chat` maps the last user message onto the "
                                        r"feature's one input, but it has 2 \(text, channel\); expected format `columns`"):
        load_feature(root)
    with pytest.raises(UserError, match=r"data.samples.columns.*missing \['text'\]"):
        load_feature(with_samples(root, {"files": [{"path": "t.jsonl"}], "columns": {"txt": "x"}}))
    with pytest.raises(UserError, match="data.samples"):  # pydantic: `columns` format needs `columns`
        load_feature(with_samples(root, {"files": [{"path": "t.jsonl"}]}))
    with pytest.raises(UserError, match="data.samples.files.path"):
        load_feature(with_samples(root, {"files": [{"path": "nope.jsonl"}], "format": "openai_chat"}))


def test_spec_hash_is_unchanged_without_samples(tmp_path):
    feature = load_feature(make_feature(tmp_path / "f"))
    dumped = feature.spec.model_dump(mode="json")
    assert dumped["data"].pop("samples") is None
    with_samples_spec = feature.spec.model_copy(update={"data": feature.spec.data.model_copy(update={"samples": {"files": []}})})
    assert with_samples_spec.spec_hash() != feature.spec.spec_hash()


# ------------------------------------------------------------------------------------ agreement, size
def test_agreement_metric_by_target_type(tmp_path):
    label = load_feature(make_feature(tmp_path / "label"))
    m = agreement_metric(label)
    assert m.score({"label": "alpha"}, {"label": "Alpha"}) == 1.0 and m.score({"label": "alpha"}, {"label": "beta"}) == 0.0
    assert m.score({"label": "alpha"}, None) == 0.0
    number = {"signature": {"inputs": [{"name": "text"}], "outputs": [{"name": "label", "type": "number"}]},
              "metric": {"name": "numeric_match", "tolerance": 0.5}}
    root = make_feature(tmp_path / "number", extra=number)
    (root / "data.csv").write_text("id,text,label,group\n" + "".join(f"e{i},t {i},{i},g\n" for i in range(60)))
    m = agreement_metric(load_feature(root))
    assert m.score({"label": 2.0}, {"label": 2.4}) == 1.0 and m.score({"label": 2.0}, {"label": 2.6}) == 0.0


def test_text_targets_need_a_judge(tmp_path):
    from offramp.tasks.feature.samples import comparable

    assert comparable(load_feature(make_feature(tmp_path / "label"))) is None
    text = {"signature": {"inputs": [{"name": "text"}], "outputs": [{"name": "label", "type": "text"}]}, "metric": "exact_match"}
    reason = comparable(load_feature(make_feature(tmp_path / "text", extra=text)))
    assert reason is not None and "pairwise judge" in reason


def test_choose_size_from_the_budget():
    costs = [0.01] * 50
    no_cap = choose_size(costs, 30, None, configs=3)
    assert no_cap.n == 30 and "no spend cap" in no_cap.reason
    assert choose_size(costs[:20], 30, None, configs=3).n == 20  # fewer available than max_samples
    ample = choose_size(costs, 30, 10.0, configs=3)
    assert ample.n == 30 and "max_samples (30)" in ample.reason
    small = choose_size(costs, 30, 0.1, configs=3)  # 0.1 * 0.9 = 0.09: 9 samples fit
    assert small.n == 9 and small.worst_usd == pytest.approx(0.09) and small.worst_usd <= 0.1 * (1 - RESERVE_FRACTION)
    assert "the largest sample whose worst case for 3 configs ($0.0900) fits in 90% of the $0.1000 left" in small.reason
    assert choose_size(costs, 30, 0.05, configs=3).n < small.n
    nothing = choose_size(costs, 30, 0.005, configs=3)
    assert nothing.n == 0 and nothing.reason.startswith("n = 0: one sample answered by 3 configs costs up to $0.010000")
    assert choose_size(costs, 30, -1.0, configs=3).n == 0  # overspent already


# ------------------------------------------------------------------------------------ end to end
def traffic(root: Path, n: int, *, pad: int = 0) -> list[dict]:
    """Logged calls: fruit messages; what was served is mostly the old model's `alpha`, some other labels."""
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        served = "alpha" if i % 4 else label  # the incumbent served alpha 3 times in 4, else the right label
        rows.append({"id": f"req{i}", "text": f"logged {i} about {word_of(label)}" + " x" * pad, "served": served,
                     "ts": 1_767_225_600 + 3600 * i})
    write_jsonl(root / "traffic.jsonl", rows)
    return rows


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def study(tmp_path: Path, fake, *, max_samples: int, pad: int = 0, **params):
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams

    fake.add("old", answer=lambda m: "alpha")
    fake.add("good", answer=oracle)
    root = tmp_path / "feature"
    root.mkdir(parents=True)
    rows = traffic(root, 30, pad=pad)
    folder = with_samples(root, {"files": [{"path": "traffic.jsonl"}], "columns": {"text": "text"}, "served_column": "served",
                                 "timestamp_column": "ts", "id_column": "id", "max_samples": max_samples})
    space = make_space(tmp_path / "space.yaml", ["fake/good"], output_mode=["text"])
    params = MigrateParams(feature_dir=str(folder), space=str(space), trigger="cli", max_trials=2, deprecated_model="fake/old", **params)
    return migrate_feature(params), {r["id"]: r for r in rows}, params


def test_study_compares_candidates_with_what_was_served(harness, home, fake, tmp_path):
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from offramp.warehouse import Warehouse, warehouse_path

    summary, rows, params = study(tmp_path, fake, max_samples=12)
    assert summary.status == "completed"
    wh = Warehouse(warehouse_path())
    _, [(status, n_logged, n_served, n_chosen, configs, reason)] = wh.fetch(
        "select status, n_logged, n_served, n_chosen, configs, reason from sample_stages where study_id = ?", [summary.study_id])
    assert (status, n_logged, n_served, n_chosen) == ("ran", 30, 30, 12) and "no spend cap" in reason
    _, trials = wh.fetch("select trial_id, role, source_trial_id, model, status, n_examples, quality, quality_ci_low, quality_ci_high, "
                         "spend_usd from trials where study_id = ? and split = 'samples' order by trial_id", [summary.study_id])
    assert len(trials) == configs >= 2 and trials[0][1] == "incumbent" and trials[0][3] == "fake/old"
    assert {t[3] for t in trials[1:]} == {"fake/good"} and all(t[4] == "completed" and t[5] == 12 for t in trials)
    _, answers = wh.fetch("select trial_id, sample_id, served, prediction, agreement, input_text from v_sample_agreement "
                          "where study_id = ? order by trial_id, sample_id", [summary.study_id])
    assert len(answers) == 12 * len(trials)
    chosen = {a[1] for a in answers}
    assert len(chosen) == 12 and all({a[1] for a in answers if a[0] == t[0]} == chosen for t in trials)  # the same sample for all
    by_trial = {}
    for trial_id, sample_id, served, prediction, agreement, input_text in answers:
        row = rows[sample_id]
        assert json.loads(served) == {"label": row["served"]} and input_text == row["text"]
        model = next(t[3] for t in trials if t[0] == trial_id)
        expected = "alpha" if model == "fake/old" else oracle([{"role": "user", "content": row["text"]}])
        assert json.loads(prediction) == {"label": expected}
        assert agreement == float(expected == row["served"])
        by_trial.setdefault(trial_id, []).append(agreement)
    for t in trials:  # the trial's quality is its agreement with what was served
        assert t[6] == pytest.approx(sum(by_trial[t[0]]) / 12) and t[7] <= t[6] <= t[8]
    # money: the samples trials' calls are paid and counted in the study's spend
    _, [(n_calls, paid)] = wh.fetch("select count(*), sum(c.cost_usd) from calls c join trials t using (study_id, trial_id) "
                                    "where c.study_id = ? and t.split = 'samples' and c.purpose = 'eval'", [summary.study_id])
    assert n_calls == 12 * len(trials) and paid > 0 and paid == pytest.approx(sum(t[9] for t in trials))
    _, [(ledger,)] = wh.fetch("select sum(cost_usd) from calls where study_id = ?", [summary.study_id])
    assert ledger >= paid
    text = markdown(load_report(wh, summary.study_id))
    assert "**Production sample:** 12 of 30 logged inputs (logged from 2026-01-01 00:00 to 2026-01-02 05:00 UTC by timestamp)" in text
    assert f"incumbent re-run {trials[0][6]:.3f} [{trials[0][7]:.3f}, {trials[0][8]:.3f}]" in text
    assert "Agreement by time (first and second half of the sample by timestamp)" in text
    # a run killed during the stage (its row not written yet): the same command resumes the study and
    # runs the stage again, from the cache (nothing paid twice), without doubling the answers
    from offramp.flows.migrate_feature import migrate_feature

    with wh.writer() as con:
        con.execute("update studies set status = 'interrupted' where id = ?", [summary.study_id])
        con.execute("delete from sample_stages where study_id = ?", [summary.study_id])
    again = migrate_feature(params)
    assert again.study_id == summary.study_id and again.resumed and again.status == "completed"
    _, [(n_trials, n_answers, n_stages, paid_again)] = wh.fetch(
        "select (select count(*) from trials where study_id = $1 and split = 'samples'), "
        "(select count(*) from sample_answers where study_id = $1), (select count(*) from sample_stages where study_id = $1), "
        "(select sum(spend_usd) from trials where study_id = $1 and split = 'samples' and trial_id > $2)",
        [summary.study_id, max(t[0] for t in trials)])
    assert (n_trials, n_answers, n_stages, paid_again) == (2 * len(trials), 12 * len(trials), 1, 0.0)


def test_small_cap_gives_a_smaller_sample_and_nothing_affordable_gives_none(harness, home, fake, tmp_path):
    from offramp.warehouse import Warehouse, warehouse_path

    # long logged inputs: each sample costs far more than an example; the cap left covers a few
    summary, _, _ = study(tmp_path / "a", fake, max_samples=30, pad=10_000, max_spend_usd=0.6)
    assert summary.status == "completed"
    wh = Warehouse(warehouse_path())
    _, [(status, n_chosen, worst, left, reason)] = wh.fetch(
        "select status, n_chosen, worst_usd, left_usd, reason from sample_stages where study_id = ?", [summary.study_id])
    assert status == "ran" and 0 < n_chosen < 30 and worst <= left * (1 - RESERVE_FRACTION)
    assert "the largest sample whose worst case" in reason
    _, [(spent,)] = wh.fetch("select sum(cost_usd) from calls where study_id = ?", [summary.study_id])
    assert spent <= 0.6
    # inputs so long that one sample costs more than the cap has left: n = 0, the study still completes
    summary, _, _ = study(tmp_path / "b", fake, max_samples=30, pad=200_000, max_spend_usd=0.6)
    assert summary.status == "completed" and summary.selection is not None
    _, [(status, n_chosen, reason)] = Warehouse(warehouse_path()).fetch(
        "select status, n_chosen, reason from sample_stages where study_id = ?", [summary.study_id])
    assert (status, n_chosen) == ("skipped", 0) and "n = 0: one sample answered by" in reason
    _, [(n,)] = Warehouse(warehouse_path()).fetch(
        "select count(*) from trials where study_id = ? and split = 'samples'", [summary.study_id])
    assert n == 0


def test_dry_run_plan_shows_the_samples_stage(home, tmp_path):
    from offramp.flows.migrate_feature import study_inputs
    from offramp.flows.params import MigrateParams
    from offramp.tasks.study.plan import plan_study
    from offramp.tasks.study.prepare import prepare

    root = tmp_path / "feature"
    root.mkdir()
    traffic(root, 30)
    folder = with_samples(root, {"files": [{"path": "traffic.jsonl"}], "columns": {"text": "text"}, "served_column": "served",
                                 "max_samples": 12})
    space = make_space(tmp_path / "space.yaml", ["fake/good"], output_mode=["text"])
    params = MigrateParams(feature_dir=str(folder), space=str(space), max_trials=2)
    plan = plan_study(prepare(study_inputs(params)), params)
    phase = next(p for p in plan.phases if p.name.startswith("production samples"))
    assert (phase.configs, phase.examples, phase.calls) == (3, 12, 36) and phase.worst_usd > 0


def test_cli_refuses_a_bad_samples_file_with_exit_2_before_anything_is_paid(home, tmp_path):
    import os
    import subprocess
    import sys

    root = tmp_path / "feature"
    root.mkdir()
    write_jsonl(root / "traffic.jsonl", [good_chat(), {"response": "alpha"}])
    folder = with_samples(root, {"files": [{"path": "traffic.jsonl"}], "format": "openai_chat"})
    env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run([sys.executable, "-m", "offramp.flows.cli", "migrate", str(folder), "--space", "local-zoo"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "traffic.jsonl line 2: field `messages`: expected a list of chat messages with a user message" in message
    assert "Traceback" not in result.stderr and not (home / "warehouse.duckdb").exists()
