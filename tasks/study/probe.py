"""The preflight call: before the search, one cheap call per model endpoint proves its key, its
route and its answer format, for almost nothing (one train example, the incumbent's shipped
prompt, a small `max_tokens`; cached; recorded in `calls` with `purpose='preflight'`, on the bill).

The rule (README, "Your own models and endpoints"): a candidate whose preflight fails with an
authentication error, not found, a bad request, an id litellm cannot route, or a refused
connection is left out of the search, reported once in one line with the fix; if the incumbent
fails so, or every candidate does, the study is refused before the search. Other failures
(timeouts, server errors after the gateway's retries) leave the model in: they may pass. An
answer that does not parse is reported, never a reason to leave a model out.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from offramp.errors import UserError
from offramp.search_spaces.schema import Config, ModelEntry
from offramp.tasks.feature.evaluate import build_requests, prompt_runner
from offramp.tasks.feature.prompts import shipped_prompt_demos
from offramp.tasks.feature.spec import Example, Feature
from offramp.tasks.gateway.llm import Gateway, call_record
from offramp.tasks.gateway.models import LOCAL_PREFIX, key_env_of, routable
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import CacheEntry, CallRecord

PROBE_MAX_TOKENS = 16


@dataclasses.dataclass(frozen=True)
class Probe:
    """One model's preflight call: `fix` is the one line that says what to do when it must be left out."""

    model: str
    fix: str | None = None
    parsed: bool | None = None
    error: str | None = None

    @property
    def left_out(self) -> bool:
        return self.fix is not None


def where(model: str, entry: ModelEntry | None) -> str:
    return f"api_base {entry.api_base}" if entry is not None and entry.api_base else f"{model}'s provider"


def unroutable_fix(model: str, litellm_id: str) -> str:
    return (f"litellm cannot route {litellm_id!r}: use a provider-prefixed id such as anthropic/claude-2 or "
            f"openai/{litellm_id.split('/')[-1]} (with `api_base` for an OpenAI-compatible server)")


def free_check(model: str, entry: ModelEntry | None) -> str | None:
    """What can be told without a call: an id litellm cannot route, a provider key not in the
    environment (declared `api_key_env`s are checked earlier, as user errors). None: call it."""
    if model.startswith(LOCAL_PREFIX):
        return None
    litellm_id = entry.id if entry is not None else model
    if not routable(litellm_id):
        return unroutable_fix(model, litellm_id)
    if entry is None or (not entry.api_base and not entry.api_key_env):
        import litellm

        missing = litellm.validate_environment(model=litellm_id).get("missing_keys") or []
        if missing:
            return f"set {' and '.join(missing)} (the key of {litellm_id!r}, read from the environment)"
    return None


def fix_for(model: str, entry: ModelEntry | None, error: str) -> str | None:
    """The one-line fix for a preflight failure that leaves a model out; None: keep it (transient)."""
    litellm_id = entry.id if entry is not None else model
    key = key_env_of(model, entry)
    lowered = error.lower()
    if "llm provider not provided" in lowered:
        return unroutable_fix(model, litellm_id)
    if "missing credentials" in lowered or "api key" in lowered and "missing" in lowered:
        return f"set {key} (no key for {litellm_id!r} in the environment)"
    if error.startswith(("AuthenticationError", "PermissionDeniedError")) or " 401" in error or " 403" in error:
        state = "is set but was refused" if os.environ.get(key) else "is not set"
        return f"check {key}: {where(model, entry)} refused the key ({state})"
    if error.startswith("NotFoundError") or "does not exist" in lowered or " 404" in error:
        return f"{where(model, entry)} does not serve {litellm_id!r} (not found): check the id"
    if "connection error" in lowered or "connection refused" in lowered or error.startswith("APIConnectionError"):
        return f"check {where(model, entry)}: connection refused"
    if error.startswith(("BadRequestError", "UnprocessableEntityError")):
        return f"{where(model, entry)} rejected the request for {litellm_id!r} (bad request): {error[:160]}"
    return None


def probe(
    gateway: Gateway, feature: Feature, incumbent: Config, models: list[str], train: tuple[Example, ...], *,
    seed: int, study_id: str,
) -> tuple[dict[str, Probe], list[CallRecord], list[CacheEntry]]:
    """One call per model (the incumbent's shipped prompt on the first train example), all at
    once through the gateway. Returns each model's probe, the calls to record and the paid
    answers the gateway handed back (when it does not write the cache itself)."""
    endpoints = gateway.prices.endpoints
    probes: dict[str, Probe] = {}
    to_call = []
    for model in models:
        fix = free_check(model, endpoints.get(model))
        if fix is not None:
            probes[model] = Probe(model, fix=fix)
        else:
            to_call.append(model)
    spec = feature.spec
    demos = shipped_prompt_demos(feature, train, incumbent.settings.demos, seed)
    example = train[0]
    configs, requests, parsers = [], [], []
    for model in to_call:
        settings = incumbent.settings.model_copy(update={"max_tokens": min(incumbent.settings.max_tokens, PROBE_MAX_TOKENS)})
        config = incumbent.model_copy(update={"model": model, "settings": settings})
        render, parse, _ = prompt_runner(spec, config, demos, None)
        requests += [gateway.stamp(r) for r in build_requests(spec, config, render, [example])]
        configs.append(config)
        parsers.append(parse)
    results = gateway.complete_many(requests) if requests else []
    calls = []
    for model, config, request, result, parse in zip(to_call, configs, requests, results, parsers):
        parsed = None if result.error is not None else parse(result.text) is not None
        calls.append(call_record(
            request, result, study_id=study_id, trial_id=None, example_id=example.id,
            settings=json.dumps(config.settings.model_dump(mode="json"), sort_keys=True), purpose="preflight",
        ))
        fix = None if result.error is None else fix_for(model, endpoints.get(model), result.error)
        probes[model] = Probe(model, fix=fix, parsed=parsed, error=result.error)
    return probes, calls, list(gateway.paid)


def check_endpoints(
    gateway: Gateway, wh: Warehouse, *, feature: Feature, incumbent: Config, candidates: list[str],
    optimizers: list[str], train: tuple[Example, ...], seed: int, study_id: str, price_sources: dict[str, str],
    log: logging.Logger | logging.LoggerAdapter,
) -> dict[str, str]:
    """Run the preflight calls, record every model of the study (`study_models`, the calls),
    say once per model left out why and what to do, and refuse the study (UserError, exit 2)
    when the incumbent or every candidate fails. Returns the models left out -> their fix."""
    models = list(dict.fromkeys([incumbent.model, *candidates, *optimizers]))
    probes, calls, paid = probe(gateway, feature, incumbent, models, train, seed=seed, study_id=study_id)
    endpoints = gateway.prices.endpoints
    role = {m: "optimizer" for m in optimizers} | {m: "candidate" for m in candidates} | {incumbent.model: "incumbent"}
    rows = []
    for model in models:
        p, entry = probes[model], endpoints.get(model)
        outcome = ("left_out" if p.left_out and role[model] != "optimizer"  # an optimizer is not searched: it cannot be left out
                   else "failed" if p.error or p.fix else "ok")
        rows.append({
            "study_id": study_id, "model": model, "litellm_id": entry.id if entry else model,
            "api_base": entry.api_base if entry else None, "role": role[model],
            "price_source": price_sources.get(model) or gateway.prices.source(model), "preflight": outcome,
            "parsed": p.parsed, "note": p.fix or p.error,
        })
    records.record_study_models(wh, rows, calls, paid)
    left_out = {m: p.fix for m, p in probes.items() if p.fix is not None and m not in optimizers}
    for model, fix in left_out.items():
        log.warning("model %s left out of the search: %s", model, fix)
    for model in optimizers:
        if probes[model].fix is not None and model not in left_out:
            log.warning("optimizer model %s failed its preflight call (%s): the strategies that use it will fail",
                        model, probes[model].fix)
    for model, p in probes.items():
        if p.parsed is False:
            log.warning("model %s: its preflight answer to the shipped prompt did not parse (kept in the search)", model)
        elif p.error and not p.left_out:
            log.warning("model %s: its preflight call failed (%s); kept in the search", model, p.error[:200])
    if incumbent.model in left_out:
        raise UserError(f"the incumbent {incumbent.model!r} failed its preflight call: {left_out[incumbent.model]}")
    if candidates and all(m in left_out for m in candidates):
        raise UserError("every candidate model failed its preflight call: "
                        + "; ".join(f"{m}: {left_out[m]}" for m in candidates))
    return left_out
