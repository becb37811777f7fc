"""Features as DSPy programs, and the prompt strategies that compile them.

A feature's signature becomes a DSPy Signature: the instructions are its docstring, inputs are
strings, a label output is a `Literal` of the labels, a number a float, free text a str, and a
JSON output a pydantic model built from its JSON schema. A program is `dspy.Predict(signature)`
with its demos; its state (instructions + demos) is saved as DSPy JSON and hashed.

The prompt strategies are classes in one registry (`offramp.search_spaces.strategies`): each
names its compile step and its runner (the DSPy adapter). This module gives them what they need:
the program, train split in two (optimizers validate on a third of train: dev and test never
reach an optimizer), the metric in DSPy's shapes, and LMs routed through the gateway.

Evaluation renders and parses with the same DSPy adapter a released program uses at run time
(the config's `settings.adapter`: ChatAdapter for text by default, JSONAdapter for JSON output, or
the plain adapter; no fallback to a second call), so one example is one call and its cost and
latency are the program's own.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any, Literal

import dspy
from pydantic import create_model

from offramp.errors import BudgetExceeded, UserError
from offramp.search_spaces.schema import Config
from offramp.search_spaces.strategies import CompileJob, split_train
from offramp.tasks.feature.metrics import Metric
from offramp.tasks.feature.prompts import parse_answer, render_input
from offramp.tasks.feature.spec import Example, FeatureSpec, OutputField
from offramp.tasks.gateway import dspy_bridge, tuned
from offramp.tasks.gateway.llm import Gateway, LLMRequest, LLMResult, call_record
from offramp.tasks.gateway.prices import machine_usd_per_hour
from offramp.util import content_hash
from offramp.warehouse.records import CallRecord

_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _json_schema_type(schema: dict[str, Any], where: str) -> Any:
    """A Python type for a JSON schema: objects become pydantic models; unsupported shapes fail."""
    kind = schema.get("type")
    if "enum" in schema and kind in (None, "string"):
        return Literal[tuple(schema["enum"])]
    if kind in _JSON_TYPES:
        return _JSON_TYPES[kind]
    if kind == "array":
        return list[_json_schema_type(schema.get("items", {"type": "string"}), f"{where}.items")]
    if kind == "object" and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required", schema["properties"].keys()))
        fields = {
            name: (_json_schema_type(sub, f"{where}.{name}"), ... if name in required else None)
            for name, sub in schema["properties"].items()
        }
        return create_model(f"Output_{abs(hash(where)) % 10**8}", **fields)
    raise UserError(
        f"field `{where}`: JSON schema {json.dumps(schema)[:120]} cannot be expressed as a DSPy output type "
        "(supported: object with properties, array with items, string/enum, integer, number, boolean)"
    )


def _output_type(field: OutputField) -> Any:
    if field.type == "label":
        return Literal[tuple(field.labels or ())]
    if field.type == "number":
        return float
    if field.type == "json":
        return _json_schema_type(field.json_schema or {}, f"signature.outputs.{field.name}.json_schema")
    return str


def signature_for(spec: FeatureSpec, instructions: str) -> type[dspy.Signature]:
    """The feature's signature as a DSPy Signature with `instructions` as its docstring."""
    fields: dict[str, tuple[Any, Any]] = {}
    for f in spec.signature.inputs:
        fields[f.name] = (str, dspy.InputField(desc=f.description or f.name))
    for f in spec.signature.outputs:
        fields[f.name] = (_output_type(f), dspy.OutputField(desc=f.description or f.name))
    return dspy.Signature(fields, instructions.strip())


def adapter_for(config: Config) -> dspy.Adapter:
    """The adapter a program of this config runs with: its strategy's runner."""
    adapter = config.strategy.kind.adapter(config.settings.output_mode, config.settings.adapter)
    if adapter is None:
        raise ValueError(f"strategy {config.strategy.name} renders the shipped prompt, not a DSPy program")
    return adapter


def program_for(spec: FeatureSpec, instructions: str, state: dict[str, Any] | None = None) -> dspy.Predict:
    program = dspy.Predict(signature_for(spec, instructions))
    if state is not None:
        program.load_state(state)
    return program


def program_state(program: dspy.Predict) -> dict[str, Any]:
    """The JSON-able state of a program (instructions + demos), without LM or traces."""
    state = dict(program.dump_state())
    state.update(lm=None, traces=[], train=[])  # never persist an LM (keys) or run traces
    return json.loads(json.dumps(state, default=str))


def program_hash(state: dict[str, Any]) -> str:
    return content_hash(state, length=16, compact=False)


def to_dspy_examples(spec: FeatureSpec, examples: Sequence[Example]) -> list[dspy.Example]:
    inputs = [f.name for f in spec.signature.inputs]
    return [dspy.Example(**e.inputs, **e.outputs).with_inputs(*inputs) for e in examples]


def _prediction_dict(spec: FeatureSpec, pred: Any) -> dict[str, Any] | None:
    try:
        values = {f.name: getattr(pred, f.name) for f in spec.signature.outputs}
    except AttributeError:
        return None
    return {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in values.items()}


def dspy_metric(spec: FeatureSpec, metric: Metric):
    """The feature's metric in DSPy's shape: metric(example, prediction, trace=None) -> float."""
    outputs = [f.name for f in spec.signature.outputs]

    def score(example: dspy.Example, pred: Any, trace: Any = None) -> float:
        return metric.score({k: example[k] for k in outputs}, _prediction_dict(spec, pred))

    return score


def gepa_metric(spec: FeatureSpec, metric: Metric):
    """GEPA's feedback metric: the score, and in words what was expected."""
    base = dspy_metric(spec, metric)
    target = spec.target.name

    def feedback(example, pred, trace=None, pred_name=None, pred_trace=None):
        value = base(example, pred)
        got = getattr(pred, target, None)
        text = "correct" if value >= 1 else f"expected {target}={example[target]!r}, got {got!r}"
        return dspy.Prediction(score=value, feedback=text)

    return feedback


class ProgramRunner:
    """Renders an example into the messages a program sends, and parses the answer back, as the
    program's adapter does at run time. Built once per evaluation."""

    def __init__(self, spec: FeatureSpec, config: Config, state: dict[str, Any]) -> None:
        self.spec = spec
        self.program = program_for(spec, config.instructions, state)
        self.adapter = adapter_for(config)
        self.demos = [dspy.Example(**d) for d in self.program.demos]

    def messages(self, example: Example) -> list[dict]:
        return self.adapter.format(self.program.signature, self.demos, dict(example.inputs))

    def parse(self, text: str | None) -> dict | None:
        if text is None:
            return None
        try:
            parsed = self.adapter.parse(self.program.signature, text)
        except Exception:  # noqa: BLE001 - an unparseable answer is a scored outcome, not a crash
            return None
        return _prediction_dict(self.spec, dspy.Prediction(**parsed))


@dataclasses.dataclass(frozen=True)
class Compiled:
    """The outcome of compiling one strategy for one model."""

    status: str  # compiled | stopped_by_budget | failed
    state: dict[str, Any] | None
    program_hash: str | None
    calls: list[CallRecord]
    seconds: float
    error: str | None = None
    cut: str | None = None  # why the optimizer stopped before it finished (its call bound), and what was kept

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls)

    @property
    def tokens(self) -> int:
        return sum((c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in self.calls)


def compile_key(spec: FeatureSpec, config: Config, train: Sequence[Example], seed: int,
                unlabeled: Sequence[Example] = ()) -> str:
    """What makes two compilations the same: feature, instructions, model, strategy, decoding
    settings, the train examples and the seed (and, for a model of offramp's own, the taught examples)."""
    payload = {
        "feature": spec.name, "signature": spec.signature.model_dump(mode="json"), "config": config.model_dump(mode="json"),
        "train": [e.id for e in train], "seed": seed,
    }
    if unlabeled and config.strategy.kind.own_model:
        payload["taught"] = content_hash([[e.inputs, e.outputs] for e in unlabeled], length=24, compact=False)
    return content_hash(payload, length=24, compact=False)


def compile_program(
    spec: FeatureSpec, metric: Metric, config: Config, train: Sequence[Example], gateway: Gateway, *,
    seed: int, study_id: str | None = None, trial_id: int | None = None, unlabeled: Sequence[Example] = (),
) -> Compiled:
    """Compile `config`'s strategy on the train split (its registered compile step); every
    optimizer call goes through the gateway and is returned (purpose=optimize). A spend cap
    reached mid-way stops it cleanly."""
    strategy, kind = config.strategy, config.strategy.kind
    if kind.shipped_prompt:
        raise ValueError(f"the {strategy.name} strategy is not a DSPy program")
    if kind.min_train(strategy) > len(train):
        raise UserError(f"splits.train: {len(train)} train examples are too few for {strategy.label()} "
                        f"(it needs {kind.min_train(strategy)})")
    started = time.perf_counter()
    if kind.own_model:
        return tune_model(spec, train, gateway, seed=seed, study_id=study_id, trial_id=trial_id, unlabeled=unlabeled)
    student = program_for(spec, config.instructions)
    if not kind.compiles:
        state = program_state(student)
        return Compiled("compiled", state, program_hash(state), [], time.perf_counter() - started)
    bound, cuts = kind.call_bound(strategy), []
    with dspy_bridge.session(gateway, study_id=study_id, trial_id=trial_id, purpose="optimize", max_calls=bound) as current:
        fit, val = split_train(train, seed)
        job = CompileJob(
            student=student, fit=to_dspy_examples(spec, fit), val=to_dspy_examples(spec, val),
            metric=dspy_metric(spec, metric), feedback_metric=gepa_metric(spec, metric),
            lm=lambda model, **settings: dspy_bridge.lm(current, model, **settings), model=config.model,
            threads=gateway.concurrency, seed=seed, call_bound=bound, calls_made=lambda: current.started,
            on_cut=cuts.append,
        )
        task_lm = dspy_bridge.lm(current, config.model, temperature=config.settings.temperature, max_tokens=config.settings.max_tokens)
        elapsed = lambda: time.perf_counter() - started  # noqa: E731
        try:
            with dspy.context(lm=task_lm, adapter=adapter_for(config)):
                compiled = kind.compile(job, strategy)
        except BudgetExceeded as exc:
            return Compiled("stopped_by_budget", None, None, list(current.calls), elapsed(), str(exc))
        except Exception as exc:  # noqa: BLE001 - a budget hit inside DSPy's threads may surface wrapped
            budget = gateway.budget
            if budget is not None and budget.exhausted:
                return Compiled("stopped_by_budget", None, None, list(current.calls), elapsed(), f"{type(exc).__name__}: {exc}"[:2000])
            if not current.refused:
                return Compiled("failed", None, None, list(current.calls), elapsed(), f"{type(exc).__name__}: {exc}"[:2000])
            compiled = student  # the optimizer died of its call bound: nothing of it is left but the student
        budget = gateway.budget
        if budget is not None and budget.exhausted:
            # DSPy swallows per-example errors: a compile that ran out of budget is not a result
            return Compiled("stopped_by_budget", None, None, list(current.calls), elapsed(),
                            "spend cap reached during compilation")
        state = program_state(compiled)
        return Compiled("compiled", state, program_hash(state), list(current.calls), elapsed(), cut=_cut_note(current, cuts, compiled is student))


def _cut_note(current: dspy_bridge.Session, cuts: list[str], kept_student: bool) -> str | None:
    """Say so when the call bound stopped the optimizer (it refused calls, or the optimizer
    stopped itself short of it), and which program was kept."""
    if not current.refused and not cuts:
        return None
    kept = "the uncompiled program (the optimizer gave no result)" if kept_student else "the optimizer's best program so far"
    why = f"; {cuts[0]}" if cuts else ""
    return (f"cut by its budget of {current.max_calls} calls after {current.started} "
            f"({current.refused} refused{why}); kept {kept}")


def taught_labels(spec: FeatureSpec, unlabeled: Sequence[Example]) -> list[tuple[str, str]]:
    """(input text, label) from the incumbent's recorded answers (`data.unlabeled`), parsed as the
    shipped prompt's answers are; an answer that names no label teaches nothing."""
    inc = spec.incumbent
    shipped = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings.model_copy(update={"output_mode": "text"}))
    target, taught = spec.target.name, []
    for example in unlabeled:
        parsed = parse_answer(spec, shipped, example.outputs.get(target))
        if parsed is not None and parsed.get(target) is not None:
            taught.append((render_input(spec, example), str(parsed[target])))
    return taught


def tune_model(
    spec: FeatureSpec, train: Sequence[Example], gateway: Gateway, *, seed: int, study_id: str | None, trial_id: int | None,
    unlabeled: Sequence[Example] = (),
) -> Compiled:
    """Train offramp's own classifier for the feature's label output on the train split's gold
    labels and, when the feature has `data.unlabeled`, the labels the incumbent's recorded answers
    teach (distillation); its machine time is charged through the gateway (ledger, spend cap) and
    recorded as a call with purpose `tune`. The state is the program: hashed, stored, reused by
    compile key; it says how many labels were gold and how many taught."""
    target = spec.target
    started = time.perf_counter()
    gold = [(render_input(spec, e), str(e.outputs[target.name])) for e in train]
    taught = taught_labels(spec, unlabeled)
    texts, labels = zip(*(gold + taught))
    state = tuned.fit(list(texts), list(labels), seed=seed)
    state.update(target=target.name, gold_labels=len(gold), taught_labels=len(taught), unlabeled_inputs=len(unlabeled),
                 teacher="the incumbent's recorded answers (data.unlabeled)" if unlabeled else None)
    seconds = time.perf_counter() - started
    digest = program_hash(state)
    record = charge_machine_time(gateway, tuned.model_id(digest), seconds, study_id=study_id, trial_id=trial_id, purpose="tune")
    return Compiled("compiled", state, digest, [record], seconds)


class TunedRunner:
    """A tuned model's runner: the input alone is the request (to `tuned/<hash>`), the answer is a label."""

    def __init__(self, spec: FeatureSpec, state: dict[str, Any]) -> None:
        self.spec, self.target = spec, spec.target
        self.model = tuned.register(program_hash(state), state)

    def messages(self, example: Example) -> list[dict]:
        return [{"role": "user", "content": render_input(self.spec, example)}]

    def parse(self, text: str | None) -> dict | None:
        return {self.target.name: text} if text in (self.target.labels or ()) else None


def charge_machine_time(
    gateway: Gateway, model: str, seconds: float, *, study_id: str | None, trial_id: int | None, purpose: str,
) -> CallRecord:
    """Machine time offramp spent on its own work (training `model`), at the declared machine
    price: on the gateway's budget, journaled like a paid answer (no request: no cache entry), and
    returned as the call row that records it."""
    usd = seconds * machine_usd_per_hour() / 3600.0
    if gateway.budget is not None:
        gateway.budget.settle(0.0, usd)  # already spent: counted even past the cap (an overshoot is reported)
    request = LLMRequest(model=model, messages=[{"role": "system", "content": f"{purpose}: {model}"}], settings={})
    if gateway.journal is not None:
        intent = gateway.journal.intent(model=model, cache_key=request.cache_key, worst_usd=usd)
        gateway.journal.answer(intent, model=model, cache_key=request.cache_key, request=None, text="", prompt_tokens=None,
                               completion_tokens=None, cost_usd=usd, latency_s=seconds)
    result = LLMResult(text=None, prompt_tokens=None, completion_tokens=None, cost_usd=usd, latency_s=seconds,
                       orig_cost_usd=usd, orig_latency_s=seconds, error=None, cache_hit=False, attempts=1)
    return call_record(request, result, study_id=study_id, trial_id=trial_id, example_id=None, settings="{}", purpose=purpose)
