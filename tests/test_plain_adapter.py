"""The output adapter as a search dimension (`settings.adapter`: chat, json, plain), the plain
adapter's lenient reading of answers, and an optimizer's `budget` as a bound on its calls.

Compiles run DSPy for real on the fake provider (tests/fake_provider.py)."""

from __future__ import annotations

import subprocess
from typing import Literal

import dspy
import pydantic
import pytest
from dspy.utils.exceptions import AdapterParseError

from offramp.errors import SpaceError
from offramp.search_spaces.answers import read_json, read_label, read_number
from offramp.search_spaces.optuna_space import all_params, config_from_params
from offramp.search_spaces.plain_adapter import PlainAdapter, PromptedJSONAdapter
from offramp.search_spaces.schema import Config, Settings, Strategy, load_space
from offramp.search_spaces.strategies import strategy_class
from offramp.tasks.evidence.report import StudyReport
from offramp.tasks.feature.evaluate import evaluate_config
from offramp.tasks.feature.metrics import build_metric
from offramp.tasks.feature.programs import compile_program
from offramp.tasks.feature.prompts import parse_answer
from offramp.tasks.feature.spec import load_feature, split_examples
from offramp.tasks.gateway.llm import Gateway
from offramp.tasks.gateway.prices import PriceBook
from offramp.util import content_hash
from offramp.warehouse import Warehouse
from tests import fake_provider as fp
from tests.helpers import LABELS, _label_for, make_feature, make_space, oracle

QUEUES = ["cards", "card", "card_arrival", "auto_and_commute", "transfer"]


# -- reading answers -------------------------------------------------------------------------------
@pytest.mark.parametrize(("answer", "label"), [
    ("cards", "cards"),
    ("Cards", "cards"),
    ("  CARDS.\n", "cards"),
    ("[[ auto_and_commute ]]", "auto_and_commute"),  # what Qwen answered to every input
    ("Auto and commute", "auto_and_commute"),
    ('"card arrival".', "card_arrival"),
    ("`card-arrival`", "card_arrival"),
    ("label: transfer", "transfer"),
    ("The answer is **transfer**.", "transfer"),
    ("my card arrival is late", "card_arrival"),  # `card` inside `card arrival` is not a second label
    ("card", "card"),  # exact beats `card` being part of other labels
])
def test_a_label_is_read_through_case_quotes_brackets_and_separators(answer, label):
    assert read_label(answer, QUEUES) == label


@pytest.mark.parametrize("answer", ["cards or transfer", "transfer, not cards", "none of these", "", "cardsx", "pre-transfer"])
def test_no_label_or_two_labels_is_unparsed(answer):
    assert read_label(answer, QUEUES) is None


def test_a_label_inside_a_dashed_word_is_not_mentioned():
    assert read_label("This one is non-urgent.", ["urgent", "not_urgent"]) is None
    assert read_label("not urgent", ["urgent", "not_urgent"]) == "not_urgent"
    assert read_label("It is urgent!", ["urgent", "not_urgent"]) == "urgent"


def test_numbers_and_json_objects_are_read_from_prose():
    assert read_number("The amount is 1,200.50 USD (not 3)") == 1200.5
    assert read_number("-.5") == -0.5
    assert read_number("no digits") is None
    assert read_json('Sure! ```json\n{"a": {"b": [1, 2]}}\n``` and {"c": 3}') == {"a": {"b": [1, 2]}}
    assert read_json('{not json} then {"a": 1}') == {"a": 1}
    assert read_json("[1, 2] only") is None
    assert read_json("x [1, 2]", list) == [1, 2]


def test_the_shipped_prompt_parser_reads_labels_as_leniently():
    spec = _spec(["auto_and_commute", "cards", "transfer"])
    cfg = Config(model="m", instructions="Route it.")
    assert parse_answer(spec, cfg, "[[ Auto_and_Commute ]]") == {"label": "auto_and_commute"}
    assert parse_answer(spec, cfg, "auto and commute") == {"label": "auto_and_commute"}
    assert parse_answer(spec, cfg, "It is about cards.") == {"label": "cards"}  # as before: the one label named
    assert parse_answer(spec, cfg, "cards or transfer") is None
    assert parse_answer(spec, cfg, "'cards'") == {"label": "cards"}


def _spec(labels):
    from offramp.tasks.feature.spec import FeatureSpec

    return FeatureSpec.model_validate({
        "name": "t", "signature": {"inputs": [{"name": "text"}], "outputs": [{"name": "label", "type": "label", "labels": labels}]},
        "incumbent": {"model": "m", "instructions": "Route it."},
        "data": {"files": [{"path": "x.csv"}], "columns": {"text": "text", "label": "label"}}, "metric": "label_accuracy",
    })


# -- the plain adapter -----------------------------------------------------------------------------
class Amount(pydantic.BaseModel):
    currency: str
    value: float


def _signature(outputs: dict) -> type[dspy.Signature]:
    fields = {"text": (str, dspy.InputField(desc="text"))}
    fields.update({name: (kind, dspy.OutputField(desc=name)) for name, kind in outputs.items()})
    return dspy.Signature(fields, "Route the message.")


def test_plain_renders_instructions_labels_and_bare_demos():
    sig = _signature({"queue": Literal[tuple(QUEUES)]})
    messages = PlainAdapter().format(sig, [{"text": "where is my card", "queue": "card_arrival"}], {"text": "hello"})
    assert messages[0]["content"].startswith("Route the message.")
    assert "exactly one of: cards, card, card_arrival, auto_and_commute, transfer" in messages[0]["content"]
    assert messages[1:] == [{"role": "user", "content": "where is my card"}, {"role": "assistant", "content": "card_arrival"},
                            {"role": "user", "content": "hello"}]
    assert "[[ ##" not in str(messages)


def test_plain_parses_one_field_of_each_type():
    adapter = PlainAdapter()
    assert adapter.parse(_signature({"queue": Literal[tuple(QUEUES)]}), "[[ Auto_and_commute ]]") == {"queue": "auto_and_commute"}
    assert adapter.parse(_signature({"amount": float}), "amount: about 42.5 dollars") == {"amount": 42.5}
    parsed = adapter.parse(_signature({"amount": Amount}), 'Here: {"currency": "EUR", "value": 3}')
    assert parsed["amount"] == Amount(currency="EUR", value=3.0)
    assert adapter.parse(_signature({"reply": str}), "reply: Hello there.") == {"reply": "Hello there."}
    for sig, answer, field in ((_signature({"queue": Literal[tuple(QUEUES)]}), "cards or transfer", "queue"),
                               (_signature({"amount": float}), "none", "amount"),
                               (_signature({"amount": Amount}), '{"currency": "EUR"}', "amount")):
        with pytest.raises(AdapterParseError, match=f"no {field} could be read from the answer"):
            adapter.parse(sig, answer)


def test_plain_parses_several_fields_as_lines_or_one_json_object():
    sig = _signature({"queue": Literal[tuple(QUEUES)], "urgency": float})
    adapter = PlainAdapter()
    system = adapter.format(sig, [], {"text": "x"})[0]["content"]
    assert "`name: value`" in system and "- `queue`" in system and "- `urgency`" in system
    assert adapter.format_assistant_message_content(sig, {"queue": "cards", "urgency": 2}) == "queue: cards\nurgency: 2"
    assert adapter.parse(sig, "Queue: [[cards]]\nurgency: 3 of 5") == {"queue": "cards", "urgency": 3.0}
    assert adapter.parse(sig, '{"queue": "transfer", "urgency": 1}') == {"queue": "transfer", "urgency": 1.0}
    with pytest.raises(AdapterParseError, match=r"expected one `name: value` line for each of \['queue', 'urgency'\]"):
        adapter.parse(sig, "queue: cards")  # urgency missing


# -- the adapter as a setting of the space -------------------------------------------------------------
def test_the_default_adapter_keeps_configs_and_their_hashes():
    """A config without an adapter dumps (and hashes) exactly as before the adapter was a setting:
    recorded trials and cached programs keep matching."""
    cfg = Config(model="m", instructions="x", strategy=Strategy(name="zero_shot"))
    dumped = cfg.model_dump(mode="json")
    assert "adapter" not in dumped["settings"]
    assert cfg.config_hash() == content_hash(dumped, length=16, compact=False)
    plain = cfg.model_copy(update={"settings": Settings(adapter="plain")})
    assert plain.config_hash() != cfg.config_hash()
    assert Config.model_validate(plain.model_dump(mode="json")) == plain
    assert plain.label() == "m zero_shot plain t=0 max=64"


def test_the_shipped_prompt_and_json_output_take_no_adapter():
    with pytest.raises(pydantic.ValidationError, match="settings.adapter: strategy incumbent is not a DSPy program"):
        Config(model="m", instructions="x", settings=Settings(adapter="plain"))
    with pytest.raises(pydantic.ValidationError, match="settings.adapter: plain is for output_mode text"):
        Config(model="m", instructions="x", strategy=Strategy(name="zero_shot"), settings=Settings(adapter="plain", output_mode="json_schema"))


@pytest.mark.parametrize(("strategies", "settings", "expected"), [
    ({"zero_shot": {}}, {"adapter": ["xml"]}, r"field `settings.adapter.0`: Input should be 'chat', 'json' or 'plain'"),
    ({"zero_shot": {}}, {"adapter": ["plain", "plain"]}, r"field `settings.adapter`: .*values repeat"),
    ({"incumbent": {}}, {"adapter": ["plain"]}, r"settings.adapter: only DSPy strategies .* use an adapter"),
    ({"zero_shot": {}}, {"adapter": ["plain"], "output_mode": ["json_schema"]}, r"settings.adapter: adapters apply to output_mode text"),
])
def test_a_bad_adapter_in_a_space_is_refused_at_load(tmp_path, strategies, settings, expected):
    path = make_space(tmp_path / "space.yaml", ["fake/good"], strategies=strategies, **settings)
    with pytest.raises(SpaceError, match=rf"{path}: invalid search space: .*{expected}"):
        load_space(path)


def test_the_adapter_is_a_dimension_for_dspy_strategies_only(tmp_path):
    space = load_space(make_space(tmp_path / "space.yaml", ["fake/a", "fake/b"], strategies={"incumbent": {}, "few_shot": {"k": [2]}},
                                  adapter=["chat", "plain"], output_mode=["text", "json_schema"]))
    incumbent = Config(model="fake/old", instructions="Route it.")
    grid = space.grid(incumbent)
    # per model: incumbent x 2 modes + few_shot x (text x 2 adapters + json_schema x its JSON default)
    assert len(grid) == 2 * (2 + 3)
    assert {c.settings.adapter for c in grid if c.strategy.name == "incumbent"} == {None}
    assert {(c.settings.output_mode, c.settings.adapter) for c in grid if c.strategy.name == "few_shot"} == {
        ("text", "chat"), ("text", "plain"), ("json_schema", None)}
    points = all_params(space, incumbent, space.models)
    assert len(points) == len(grid)
    rebuilt = {config_from_params(p, space, incumbent, space.models).config_hash() for p in points}
    assert rebuilt == {c.config_hash() for c in grid}
    assert all(("adapter" in p) == (p["strategy"] == "few_shot" and p["output_mode"] == "text") for p in points)


def test_a_space_without_adapters_keeps_its_optuna_parameters(tmp_path):
    space = load_space(make_space(tmp_path / "space.yaml", ["fake/a"], strategies={"zero_shot": {}}))
    incumbent = Config(model="fake/old", instructions="Route it.")
    assert all("adapter" not in p for p in all_params(space, incumbent, space.models))


@pytest.mark.parametrize("name", ["chat", "json", "plain", None])
def test_the_strategy_builds_the_named_adapter(name):
    adapter = strategy_class("few_shot").adapter("text", name)
    expected = {"chat": dspy.ChatAdapter, "json": PromptedJSONAdapter, "plain": PlainAdapter, None: dspy.ChatAdapter}[name]
    assert type(adapter) is expected
    assert strategy_class("incumbent").adapter("text", name) is None


# -- through the gateway -------------------------------------------------------------------------------
PRICES = PriceBook({f"fake/{m}": fp.FAKE_PRICE for m in ("good", "plain", "reflect", "jsonish")})


@pytest.fixture()
def setup(tmp_path, home, fake):
    fake.add("good", answer=oracle)
    fake.add("reflect", answer=oracle)
    # right every time, but plainly and in its own style: never in DSPy's field markers
    fake.add("plain", answer=lambda messages: f"[[ {_label_for(messages[-1]['content']).upper()} ]]")
    feature = load_feature(make_feature(tmp_path / "f", n=90, extra={"splits": {"seed": 3, "train": 30, "dev": 20, "test": 20}}))
    gateway = Gateway(Warehouse(home / "w.duckdb"), PRICES, home=home, concurrency=2)
    return feature, split_examples(feature), gateway


@pytest.mark.parametrize("strategy", [Strategy(name="zero_shot"), Strategy(name="few_shot", k=2)], ids=lambda s: s.name)
def test_a_model_that_answers_plainly_scores_with_plain_and_not_with_chat(setup, strategy):
    feature, splits, gateway = setup
    metric = build_metric(feature)
    scores = {}
    for adapter in ("chat", "plain"):
        cfg = Config(model="fake/plain", instructions="Route it.", strategy=strategy, settings=Settings(adapter=adapter))
        compiled = compile_program(feature.spec, metric, cfg, splits.train, gateway, seed=0)
        assert compiled.status == "compiled", compiled.error
        evaluation = evaluate_config(feature.spec, metric, cfg, splits.dev, gateway, program=compiled.state)
        scores[adapter] = evaluation.measurement
        if strategy.k and adapter == "plain":  # bootstrapped demos are the model's own right answers, shown bare
            assert len(compiled.state["demos"]) == strategy.k
            assert all(d["label"] in LABELS for d in compiled.state["demos"])
        assert all("[[ ## label ## ]]" in str(c.output_text) or c.output_text.startswith("[[ ") for c in evaluation.calls)
    assert scores["chat"].quality == 0.0 and scores["chat"].parse_failure_rate == 1.0
    assert scores["plain"].quality == 1.0 and scores["plain"].parse_failure_rate == 0.0


def test_the_json_adapter_on_text_output_compiles_as_it_is_evaluated(setup, fake):
    """`adapter: json` with text output asks for JSON in the prompt; the compile must not ask the
    provider for JSON mode, which evaluation never does."""
    feature, splits, gateway = setup
    fake.add("jsonish", answer=lambda m: f'{{"label": "{_label_for(m[-1]["content"])}"}}')
    cfg = Config(model="fake/jsonish", instructions="Route it.", strategy=Strategy(name="few_shot", k=2), settings=Settings(adapter="json"))
    compiled = compile_program(feature.spec, build_metric(feature), cfg, splits.train, gateway, seed=0)
    assert compiled.status == "compiled" and compiled.calls
    assert all("response_format" not in c.settings for c in compiled.calls)
    evaluation = evaluate_config(feature.spec, build_metric(feature), cfg, splits.dev, gateway, program=compiled.state)
    assert evaluation.measurement.quality == 1.0


# -- an optimizer's budget is a bound --------------------------------------------------------------------
@pytest.mark.parametrize(("strategy", "bound"), [
    (Strategy(name="gepa", optimizer_model="fake/reflect", budget=8), 8),
    (Strategy(name="gepa", optimizer_model="fake/reflect", budget=30), 30),
    (Strategy(name="mipro", k=2, budget=12), 12),
    (Strategy(name="mipro", k=2, budget=40), 40),
], ids=lambda x: getattr(x, "name", x))
def test_an_optimizers_budget_bounds_its_calls(setup, strategy, bound):
    feature, splits, gateway = setup
    gateway.use_cache = False  # every call a paid one: the bound is not helped by the cache
    cfg = Config(model="fake/good", instructions="Route it.", strategy=strategy)
    compiled = compile_program(feature.spec, build_metric(feature), cfg, splits.train, gateway, seed=0)
    assert compiled.status == "compiled", compiled.error
    assert 0 < len(compiled.calls) <= bound
    assert compiled.cut is not None and compiled.cut.startswith(f"cut by its budget of {bound} calls")
    assert compiled.state is not None  # a program is kept: the optimizer's best so far, or the student


def test_a_compile_without_a_budget_is_not_cut(setup):
    feature, splits, gateway = setup
    cfg = Config(model="fake/good", instructions="Route it.", strategy=Strategy(name="few_shot", k=2))
    compiled = compile_program(feature.spec, build_metric(feature), cfg, splits.train, gateway, seed=0)
    assert compiled.status == "compiled" and compiled.cut is None


# -- the report says what to try ---------------------------------------------------------------------------
def _report(rows):
    return StudyReport(study={}, trials=[], front_ids=set(), regressions=[], flips=[], spend=[], health=[], unparsed=rows)


def test_a_mostly_unparsed_dspy_trial_gets_an_example_and_a_hint():
    row = {"trial_id": 3, "split": "dev", "model": "local/qwen2.5-0.5b", "strategy": "few_shot", "parse_failure_rate": 0.9,
           "example_answer": "[[ auto_and_commute ]]", "adapter": None, "output_mode": "text"}
    [line] = _report([row]).unparsed_warnings()
    assert "90% of its answers could not be parsed, e.g. '[[ auto_and_commute ]]'" in line
    assert line.endswith("read with the chat adapter: try `settings: adapter: [plain]` in the search space")
    [plain] = _report([{**row, "adapter": "plain"}]).unparsed_warnings()
    assert "plain adapter could not read these either" in plain
    [shipped] = _report([{**row, "strategy": "incumbent"}]).unparsed_warnings()
    assert "try" not in shipped


def test_a_released_plain_program_renders_and_reads_plainly(setup):
    """A release stores the config's settings (the adapter among them): the released program asks
    and reads as the trial did."""
    from offramp.tasks.watch.releases import ReleasedProgram

    feature, splits, gateway = setup
    cfg = Config(model="fake/plain", instructions="Route it.", strategy=Strategy(name="few_shot", k=2), settings=Settings(adapter="plain"))
    compiled = compile_program(feature.spec, build_metric(feature), cfg, splits.train, gateway, seed=0)
    entry = {"model": cfg.model, "instructions": cfg.instructions, "strategy": cfg.strategy.model_dump(mode="json"),
             "settings": cfg.settings.model_dump(mode="json"), "spec": feature.spec.model_dump(mode="json"), "program": compiled.state}
    seen = []
    program = ReleasedProgram(entry, call_model=lambda messages, **settings: seen.append(messages) or "Label: [[ BETA ]]")
    assert program(text="a message") == {"label": "beta"}
    assert seen[0][-1] == {"role": "user", "content": "a message"} and "[[ ##" not in str(seen[0])


def test_a_study_records_a_compile_its_budget_cut(tmp_path):
    """End to end (CLI, Prefect, warehouse): a MIPRO compile with `budget: 10` makes at most 10
    calls, and the program's record says it was cut and what was kept."""
    from tests.test_cli_commands import OFFRAMP, _env, sql

    home = tmp_path / "home"
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good"], strategies={"mipro": {"k": [2], "budget": 10}})
    env = {**_env(home), "OFFRAMP_PLUGINS": "tests.fake_plugin:install"}
    result = subprocess.run([str(OFFRAMP), "migrate", str(feature), "--space", str(space), "--max-trials", "2", "--no-racing"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [program] = sql(home, "select compile_calls, compile_cut from v_programs where strategy = 'mipro'", tmp_path)
    [calls] = sql(home, "select count(*) as n from calls where purpose = 'optimize'", tmp_path)
    assert 0 < program["compile_calls"] == calls["n"] <= 10
    assert program["compile_cut"].startswith("cut by its budget of 10 calls after 10 (")


def test_an_adapter_on_the_incumbent_is_refused_naming_the_file_and_field(tmp_path):
    from offramp.errors import UserError

    root = make_feature(tmp_path / "f", extra={"incumbent": {"model": "fake/old", "instructions": "Route it.",
                                                              "settings": {"adapter": "plain"}}})
    with pytest.raises(UserError, match=r"feature.yaml.*incumbent.*`settings.adapter` is for DSPy strategies"):
        load_feature(root)


def test_a_study_searches_the_adapter_and_the_plain_answers_count(tmp_path):
    """End to end: a space listing `adapter: [chat, plain]` makes the adapter an Optuna parameter of
    the DSPy strategy; on a model that answers plainly the plain trial scores, the chat one does not."""
    from tests.test_cli_commands import OFFRAMP, _env, sql

    home = tmp_path / "home"
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/plain"], strategies={"incumbent": {}, "zero_shot": {}}, adapter=["chat", "plain"],
                       max_tokens=[8])  # the incumbent's: a grid of 3 (the naive swap, zero_shot x 2 adapters)
    env = {**_env(home), "OFFRAMP_PLUGINS": "tests.fake_plugin:install_plain"}
    result = subprocess.run([str(OFFRAMP), "migrate", str(feature), "--space", str(space), "--max-trials", "4", "--no-racing"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = sql(home, "select settings->>'adapter' as adapter, quality, parse_failure_rate from trials "
                     "where strategy = 'zero_shot' and split = 'dev' order by adapter", tmp_path)
    assert [(r["adapter"], r["quality"], r["parse_failure_rate"]) for r in rows] == [("chat", 0.0, 1.0), ("plain", 1.0, 0.0)]
    assert "zero_shot plain t=0" in result.stdout
