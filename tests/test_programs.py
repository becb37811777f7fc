"""Prompt strategies as DSPy programs, compiled for real (DSPy's optimizers) on the fake provider."""

from __future__ import annotations

import json

import pytest

from offramp.errors import UserError
from offramp.search_spaces.schema import Config, SearchSpace, Settings, SpaceError, Strategy, load_space
from offramp.tasks.feature.evaluate import evaluate_config
from offramp.tasks.feature.metrics import build_metric
from offramp.tasks.feature.programs import ProgramRunner, compile_program, program_for, program_hash, signature_for
from offramp.tasks.feature.spec import load_feature, split_examples
from offramp.tasks.gateway.llm import Budget, Gateway
from offramp.tasks.gateway.prices import PriceBook
from offramp.warehouse import Warehouse
from tests import fake_provider as fp
from tests.helpers import make_feature, oracle
from tests.test_strategies import compilable

PRICES = PriceBook({"fake/good": fp.FAKE_PRICE, "fake/reflect": fp.FAKE_PRICE})


@pytest.fixture()
def setup(tmp_path, home, fake):
    fake.add("good", answer=oracle)
    fake.add("reflect", answer=oracle)
    feature = load_feature(make_feature(tmp_path / "f", n=90, extra={"splits": {"seed": 3, "train": 30, "dev": 20, "test": 20}}))
    splits = split_examples(feature)
    gateway = Gateway(Warehouse(home / "w.duckdb"), PRICES, home=home, concurrency=2)
    return feature, splits, gateway


def config(strategy: Strategy, **settings) -> Config:
    return Config(model="fake/good", instructions="Route it.", strategy=strategy, settings=Settings(max_tokens=64, **settings))


@pytest.mark.parametrize("strategy", compilable(), ids=lambda s: s.name)
def test_each_strategy_compiles_round_trips_and_evaluates(setup, strategy):
    feature, splits, gateway = setup
    metric = build_metric(feature)
    cfg = config(strategy)
    compiled = compile_program(feature.spec, metric, cfg, splits.train, gateway, seed=0, study_id="s", trial_id=1)
    assert compiled.status == "compiled", compiled.error
    # JSON round trip: same state, same hash, loads into a working Predict
    state = json.loads(json.dumps(compiled.state))
    assert program_hash(state) == compiled.program_hash
    assert program_for(feature.spec, cfg.instructions, state).dump_state()["demos"] == compiled.state["demos"]
    if strategy.compiles:
        assert compiled.calls, "compiling must call the model"
        assert {c.purpose for c in compiled.calls} == {"optimize"}
        assert all(c.study_id == "s" and c.trial_id == 1 for c in compiled.calls)
        assert compiled.cost_usd > 0 and compiled.tokens > 0
    else:
        assert compiled.calls == []
    if strategy.name == "few_shot":
        assert 1 <= len(compiled.state["demos"]) <= strategy.k
    if strategy.name == "mipro":  # MIPRO may prefer a demo-free candidate; never more than k
        assert len(compiled.state["demos"]) <= strategy.k
    # the dev split never reaches the optimizer: no optimizer request mentions a dev input
    keys = sorted({c.cache_key for c in compiled.calls})
    if keys:
        _, rows = gateway.warehouse.fetch("select request from llm_cache where cache_key in (select unnest(?))", [keys])
        requests = " ".join(r[0] for r in rows)
        assert rows and not any(e.inputs["text"] in requests for e in splits.dev)
        assert any(e.inputs["text"] in requests for e in splits.train)
    evaluation = evaluate_config(feature.spec, metric, cfg, splits.dev, gateway, program=compiled.state)
    assert evaluation.measurement.quality == 1.0
    assert all(c.purpose == "eval" for c in evaluation.calls)


def test_demos_make_the_program_longer_and_dearer(setup):
    feature, splits, gateway = setup
    metric = build_metric(feature)
    zero = compile_program(feature.spec, metric, config(Strategy(name="zero_shot")), splits.train, gateway, seed=0)
    few_cfg = config(Strategy(name="few_shot", k=4))
    few = compile_program(feature.spec, metric, few_cfg, splits.train, gateway, seed=0)
    a = evaluate_config(feature.spec, metric, config(Strategy(name="zero_shot")), splits.dev, gateway, program=zero.state).measurement
    b = evaluate_config(feature.spec, metric, few_cfg, splits.dev, gateway, program=few.state).measurement
    assert b.prompt_tokens > a.prompt_tokens * 1.5
    assert b.cost_per_1k_usd > a.cost_per_1k_usd


def test_spend_cap_stops_compilation_cleanly(setup):
    feature, splits, gateway = setup
    gateway.budget = Budget(max_usd=0.0015)
    gateway.use_cache = False
    compiled = compile_program(
        feature.spec, build_metric(feature), config(Strategy(name="mipro", k=2, budget=5)), splits.train, gateway, seed=0
    )
    assert compiled.status == "stopped_by_budget"
    assert compiled.state is None and compiled.program_hash is None
    assert compiled.calls, "the calls paid before the cap are kept for the record"
    assert sum(c.cost_usd for c in compiled.calls) <= 0.0015
    assert gateway.budget.spent_usd <= 0.0015
    assert any((c.error or "").startswith("BudgetExceeded") and c.cost_usd == 0 for c in compiled.calls)


def test_program_runner_renders_dspy_format_and_parses_strictly(setup):
    feature, splits, gateway = setup
    cfg = config(Strategy(name="zero_shot"))
    state = compile_program(feature.spec, build_metric(feature), cfg, splits.train, gateway, seed=0).state
    runner = ProgramRunner(feature.spec, cfg, state)
    messages = runner.messages(splits.dev[0])
    assert "[[ ## label ## ]]" in messages[0]["content"] and "Route it." in messages[0]["content"]
    assert runner.parse("[[ ## label ## ]]\nbeta\n\n[[ ## completed ## ]]") == {"label": "beta"}
    assert runner.parse("beta") is None  # no adapter fallback: what the released program would do
    assert runner.parse("[[ ## label ## ]]\ndelta\n\n[[ ## completed ## ]]") is None


def test_incumbent_strategy_is_the_shipped_prompt_unchanged(setup):
    feature, splits, gateway = setup
    from offramp.tasks.feature.evaluate import prompt_runner
    from offramp.tasks.feature.prompts import render_messages

    cfg = config(Strategy(name="incumbent"))
    render, _, _ = prompt_runner(feature.spec, cfg, [], None)
    assert render(splits.dev[0]) == render_messages(feature.spec, cfg, [], splits.dev[0])
    assert "[[ ##" not in json.dumps(render(splits.dev[0]))


def test_train_too_small_for_k(setup):
    feature, splits, gateway = setup
    with pytest.raises(UserError, match=r"splits.train.*k=50"):
        compile_program(feature.spec, build_metric(feature), config(Strategy(name="few_shot", k=50)), splits.train, gateway, seed=0)


def test_signature_dspy_cannot_express(tmp_path):
    feature = load_feature(make_feature(tmp_path / "f"))
    spec = feature.spec.model_copy(update={"signature": feature.spec.signature.model_copy(update={"outputs": [
        feature.spec.signature.outputs[0].model_copy(update={
            "type": "json", "labels": None, "json_schema": {"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}]}}},
        })
    ]})})
    with pytest.raises(UserError, match=r"signature.outputs.label.json_schema.x.*cannot be expressed"):
        signature_for(spec, "x")


def test_json_output_becomes_a_pydantic_type(tmp_path):
    feature = load_feature(make_feature(tmp_path / "f"))
    spec = feature.spec.model_copy(update={"signature": feature.spec.signature.model_copy(update={"outputs": [
        feature.spec.signature.outputs[0].model_copy(update={"type": "json", "labels": None, "json_schema": {
            "type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}})
    ]})})
    signature = signature_for(spec, "Extract.")
    annotation = signature.output_fields["label"].annotation
    assert set(annotation.model_fields) == {"name", "tags"}


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [
        ({"beam_search": {}}, r"strategies.beam_search"),
        ({"gepa": {"budget": 10}}, r"gepa needs `optimizer_models`"),
        ({"few_shot": {}}, r"few_shot needs `k`"),
        ({"zero_shot": {"k": [2]}}, r"zero_shot takes no parameters"),
        ({}, r"at least one strategy"),
    ],
)
def test_bad_strategies_in_a_space(tmp_path, strategies, expected):
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({"name": "s", "models": ["fake/good"], "strategies": strategies}))
    with pytest.raises(SpaceError, match=expected) as info:
        load_space(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"max_tokens": [64, -5]}, r"field `settings\.max_tokens\.1`: Input should be greater than or equal to 1"),
        ({"max_tokens": [40000]}, r"field `settings\.max_tokens\.0`: Input should be less than or equal to 32768"),
        ({"temperature": [5]}, r"field `settings\.temperature\.0`: Input should be less than or equal to 2"),
        ({"temperature": [-0.1]}, r"field `settings\.temperature\.0`: Input should be greater than or equal to 0"),
    ],
)
def test_space_settings_out_of_range_are_refused_at_load(tmp_path, settings, expected):
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({"name": "s", "models": ["fake/good"], "settings": settings}))
    with pytest.raises(SpaceError, match=expected) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_space_grid_crosses_models_strategies_and_settings():
    space = SearchSpace.model_validate({
        "name": "s", "models": ["a/x", "b/y"],
        "strategies": {"incumbent": {}, "few_shot": {"k": [2, 4]}, "gepa": {"optimizer_models": ["a/x"], "budget": 9}},
        "settings": {"output_mode": ["text", "json_schema"]},
    })
    incumbent = Config(model="old/m", instructions="Do it.", settings=Settings(demos=5))
    grid = space.grid(incumbent)
    assert len(grid) == 2 * 4 * 2
    assert {c.settings.demos for c in grid if c.strategy.name == "incumbent"} == {5}
    assert {c.settings.demos for c in grid if c.strategy.name != "incumbent"} == {0}
    assert space.optimizer_models() == ["a/x"]


def test_space_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_bytes(b"name: s\ndescription: caf\xe9\nmodels: [fake/good]\n")
    with pytest.raises(SpaceError, match=r"space\.yaml: line 2: byte b'\\xe9' is not UTF-8"):
        load_space(path)
