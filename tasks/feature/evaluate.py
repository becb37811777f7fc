"""Evaluate a config on examples: per-example predictions and scores, and what the trial measured.

Quality is the feature's metric with a 95% percentile-bootstrap interval (resampling examples).
Cost per 1,000 requests and latency p50/p95 come from the model calls that produced the answers:
a cached answer counts at its original cost and latency, so objectives do not depend on the cache.
The p95 carries a 95% bootstrap interval too (resampling the answered calls): its measurement
noise, within which the front treats two latencies as a tie (tasks/search/pareto.py).
Failed calls (after retries) count in `error_rate`, unparseable answers in `parse_failure_rate`;
both score 0. Cost and latency are averaged over the calls that returned an answer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from offramp.search_spaces.schema import Config
from offramp.tasks.evidence.bootstrap import percentile_bootstrap
from offramp.tasks.feature.judge import judge_answers
from offramp.tasks.feature.metrics import Metric, macro_f1_statistic
from offramp.tasks.feature.prompts import parse_answer, render_messages, response_format
from offramp.tasks.feature.spec import Example, FeatureSpec
from offramp.tasks.gateway.llm import Gateway, LLMRequest, LLMResult, call_record
from offramp.warehouse.records import CallRecord, TrialMeasurement

BOOTSTRAP_RESAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A config evaluated on examples."""

    measurement: TrialMeasurement
    calls: list[CallRecord]
    predictions: list[dict | None]
    scores: list[float]
    results: list[LLMResult]
    judgements: list[dict] = dataclasses.field(default_factory=list)  # a judge metric's verdicts (table `judgements`)


def bootstrap_interval(
    scores: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
    statistic: Callable[[np.ndarray], float] | None = None,
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `scores` (or of `statistic(indices)`,
    called with one resample of example indices at a time)."""
    n = len(scores)
    if n == 0:
        return (float("nan"), float("nan"))
    if statistic is None:
        values = np.asarray(scores, dtype=float)
        return percentile_bootstrap(n, lambda idx: values[idx].mean(axis=1), seed=seed, resamples=resamples)
    return percentile_bootstrap(n, lambda idx: [statistic(row) for row in idx], seed=seed, resamples=resamples)


def prompt_runner(
    spec: FeatureSpec, config: Config, demos: list[Example], program: dict | None
) -> tuple[Callable[[Example], list[dict]], Callable[[str | None], dict | None], str]:
    """(render, parse, the model called) for a config: the shipped prompt for strategy `incumbent`,
    a model of offramp's own (`tuned/<hash>`, registered in this process) for `tuned`, else the DSPy
    program's adapter on its compiled state."""
    if config.strategy.kind.shipped_prompt:
        return (lambda e: render_messages(spec, config, demos, e)), (lambda text: parse_answer(spec, config, text)), config.model
    if program is None:
        raise ValueError(f"strategy {config.strategy.name} needs a compiled program state")
    from offramp.tasks.feature.programs import ProgramRunner, TunedRunner

    if config.strategy.kind.own_model:
        tuned = TunedRunner(spec, program)
        return tuned.messages, tuned.parse, tuned.model
    runner = ProgramRunner(spec, config, program)
    return runner.messages, runner.parse, config.model


def build_requests(
    spec: FeatureSpec, config: Config, render: Callable[[Example], list[dict]], examples: Sequence[Example],
    model: str | None = None,
) -> list[LLMRequest]:
    settings = {"temperature": config.settings.temperature, "max_tokens": config.settings.max_tokens}
    fmt = response_format(spec, config)
    if fmt is not None:
        settings["response_format"] = fmt
    return [LLMRequest(model=model or config.model, messages=render(e), settings=settings) for e in examples]


def aggregate(
    metric: Metric, examples: Sequence[Example], results: Sequence[LLMResult],
    predictions: Sequence[dict | None], scores: Sequence[float], *, seed: int = 0,
) -> TrialMeasurement:
    n = len(examples)
    ok = [r for r in results if r.error is None]
    errors = n - len(ok)
    parse_failures = sum(1 for r, p in zip(results, predictions) if r.error is None and p is None)
    prompt_tokens = sum(r.prompt_tokens or 0 for r in results)
    completion_tokens = sum(r.completion_tokens or 0 for r in results)
    spend = float(sum(r.cost_usd for r in results))
    if not ok:
        first_error = next((r.error for r in results if r.error), "no examples")
        return TrialMeasurement(
            status="failed", n_examples=n, quality=None, quality_ci_low=None, quality_ci_high=None,
            cost_per_1k_usd=None, latency_p50_s=None, latency_p95_s=None, error_rate=errors / n if n else None,
            parse_failure_rate=None, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            spend_usd=spend, error=f"every call failed; first error: {first_error}",
        )
    golds = [e.outputs.get(metric.field) for e in examples]  # a judged feature may have no gold
    preds = [None if p is None else p.get(metric.field) for p in predictions]
    quality = metric.aggregate(scores, golds, preds)
    statistic = macro_f1_statistic(golds, preds, metric.labels or ()) if metric.corpus_level else None
    low, high = bootstrap_interval(scores, seed=seed, statistic=statistic)
    latencies = np.array([r.orig_latency_s for r in ok], dtype=float)
    p95_low, p95_high = percentile_bootstrap(len(latencies), lambda idx: np.percentile(latencies[idx], 95, axis=1),
                                             seed=seed, resamples=BOOTSTRAP_RESAMPLES)
    return TrialMeasurement(
        status="completed", n_examples=n, quality=quality, quality_ci_low=low, quality_ci_high=high,
        cost_per_1k_usd=1000.0 * float(np.mean([r.orig_cost_usd for r in ok])),
        latency_p50_s=float(np.percentile(latencies, 50)), latency_p95_s=float(np.percentile(latencies, 95)),
        latency_p95_ci_low=p95_low, latency_p95_ci_high=p95_high, error_rate=errors / n, parse_failure_rate=parse_failures / n,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, spend_usd=spend,
    )


def evaluate_config(
    spec: FeatureSpec,
    metric: Metric,
    config: Config,
    examples: Sequence[Example],
    gateway: Gateway,
    *,
    demos: list[Example] | None = None,
    program: dict | None = None,
    study_id: str | None = None,
    trial_id: int | None = None,
    purpose: str = "eval",
    seed: int = 0,
    on_result: Callable[[int, LLMResult], None] | None = None,
    references: Any = None,
) -> Evaluation:
    """Run `config` on `examples` through the gateway and score every answer. `demos` feed the
    `incumbent` strategy's shipped prompt; `program` is a DSPy strategy's compiled state. A judge
    metric scores the answers with judge calls through the same gateway (purpose `judge`);
    a pairwise judge compares them with `references` (tasks/feature/judge.py `judge_answers`)."""
    render, parse, model = prompt_runner(spec, config, demos or [], program)
    requests = [gateway.stamp(r) for r in build_requests(spec, config, render, examples, model)]
    results = gateway.complete_many(requests, on_result=on_result)
    settings_json = json.dumps(config.settings.model_dump(mode="json"), sort_keys=True)
    predictions = [parse(result.text) if result.error is None else None for result in results]
    judged = None
    if metric.judge is not None:
        judged = judge_answers(spec, metric.judge, examples, predictions, gateway, references=references, study_id=study_id,
                               trial_id=trial_id)
    scores, calls = [], []
    for i, (example, request, result) in enumerate(zip(examples, requests, results)):
        prediction = predictions[i]
        score = judged.scores[i] if judged is not None else metric.score(example.outputs, prediction)
        scores.append(score)
        calls.append(
            call_record(
                request, result, study_id=study_id, trial_id=trial_id, example_id=example.id, settings=settings_json,
                purpose=purpose, prediction=None if prediction is None else json.dumps(prediction, sort_keys=True), score=score,
            )
        )
    measurement = aggregate(metric, examples, results, predictions, scores, seed=seed)
    if judged is None:
        return Evaluation(measurement=measurement, calls=calls, predictions=predictions, scores=scores, results=list(results))
    return Evaluation(measurement=measurement, calls=calls + judged.calls, predictions=predictions, scores=scores,
                      results=list(results), judgements=judged.judgements)


def combine(metric: Metric, examples: Sequence[Example], parts: Sequence[Evaluation], *, seed: int = 0) -> Evaluation:
    """One evaluation from consecutive parts (the stages of a raced trial), aggregated afresh.
    `examples` are the examples of all parts, in order."""
    calls = [c for p in parts for c in p.calls]
    predictions = [x for p in parts for x in p.predictions]
    scores = [x for p in parts for x in p.scores]
    results = [x for p in parts for x in p.results]
    judgements = [x for p in parts for x in p.judgements]
    measurement = aggregate(metric, examples, results, predictions, scores, seed=seed)
    return Evaluation(measurement=measurement, calls=calls, predictions=predictions, scores=scores, results=results,
                      judgements=judgements)
