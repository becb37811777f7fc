"""DSPy's model calls, routed through offramp's gateway.

DSPy calls models through litellm. We register a litellm custom provider, `offramp`, and give
DSPy LMs named `offramp/<session>/<model>`: every call DSPy makes (a prediction, a bootstrap
trace, a MIPRO proposal, a GEPA reflection) lands in the gateway of that session, so it goes
through the same cache, retries and spend cap, and is recorded as a call with the session's
purpose. DSPy's own cache is off on these LMs (it would hide, and double count, cost).
A session is a plain registry entry, so it works from DSPy's worker threads too. A session may
carry a call bound (an optimizer's `budget`): calls past it are refused before they reach the
gateway (`CallBoundReached`), so an optimizer that does not plan its calls cannot overrun it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import dspy
import litellm
from litellm import CustomLLM
from litellm.types.utils import Choices, Message, ModelResponse, Usage

from offramp.errors import BudgetExceeded, ProviderCallFailed
from offramp.tasks.gateway.llm import Gateway, LLMRequest, call_record, quiet_litellm
from offramp.warehouse.records import CallRecord

PROVIDER = "offramp"
_PASSED_SETTINGS = ("temperature", "max_tokens", "response_format", "stop", "top_p")


class CallBoundReached(RuntimeError):
    """A session's call bound is spent: the call was not made (nothing paid, nothing recorded)."""


@dataclasses.dataclass
class Session:
    """Where a DSPy LM's calls go and what they are recorded as."""

    id: str
    gateway: Gateway
    study_id: str | None
    trial_id: int | None
    purpose: str
    calls: list[CallRecord] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    max_calls: int | None = None  # the bound: calls started past it are refused
    started: int = 0  # calls started (cache hits included: a warm rerun stops where a cold one did)
    refused: int = 0  # calls refused by the bound

    def take_call(self) -> None:
        """Count one call against the bound, or raise CallBoundReached when it is spent."""
        with self.lock:
            if self.max_calls is not None and self.started >= self.max_calls:
                self.refused += 1
                raise CallBoundReached(f"the compile's bound of {self.max_calls} calls is reached")
            self.started += 1

    @property
    def spend_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls)


_SESSIONS: dict[str, Session] = {}


class _GatewayProvider(CustomLLM):
    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        session_id, _, target = model.partition("/")
        session = _SESSIONS.get(session_id)
        if session is None:
            raise RuntimeError(f"no offramp gateway session {session_id!r} (the LM outlived its session)")
        session.take_call()
        params = kwargs.get("optional_params") or {}
        settings = {k: params[k] for k in _PASSED_SETTINGS if params.get(k) is not None}
        salt = params.get("rollout_id")
        request = session.gateway.stamp(LLMRequest(model=target, messages=[dict(m) for m in messages], settings=settings,
                                                    cache_salt=None if salt is None else str(salt)))
        [result] = session.gateway.complete_many([request])
        with session.lock:
            session.calls.append(
                call_record(
                    request, result, study_id=session.study_id, trial_id=session.trial_id, example_id=None,
                    settings=json.dumps(settings, sort_keys=True), purpose=session.purpose,
                )
            )
        if result.error is not None:
            if result.refused:
                raise BudgetExceeded(result.error)
            raise ProviderCallFailed(result.error)
        prompt_tokens, completion_tokens = result.prompt_tokens or 0, result.completion_tokens or 0
        return ModelResponse(
            model=target,
            choices=[Choices(index=0, finish_reason="stop", message=Message(role="assistant", content=result.text))],
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                        total_tokens=prompt_tokens + completion_tokens),
        )


_INSTALL_LOCK = threading.Lock()


def _log_print(*values: object, sep: str = " ", **_: object) -> None:
    logging.getLogger("dspy.teleprompt").info(sep.join(str(v) for v in values))


def install() -> None:
    """Register the `offramp` provider with litellm (idempotent), its stdout banners off, and
    DSPy's optimizers' `print`s (BootstrapFewShot's "Bootstrapped N full traces ...", printed
    once per compile) sent to DSPy's log, which the CLI writes to a file, not over the progress."""
    quiet_litellm()
    import dspy.teleprompt.bootstrap as bootstrap

    bootstrap.print = _log_print  # a module global shadows the builtin for that module only
    with _INSTALL_LOCK:
        if not any(p.get("provider") == PROVIDER for p in litellm.custom_provider_map):
            litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": _GatewayProvider()})
            from litellm.utils import custom_llm_setup

            custom_llm_setup()


@contextlib.contextmanager
def session(
    gateway: Gateway, *, study_id: str | None, trial_id: int | None, purpose: str, max_calls: int | None = None,
) -> Iterator[Session]:
    """A gateway session for DSPy LMs; its calls are collected in `Session.calls`; at most
    `max_calls` are made (None: no bound)."""
    install()
    current = Session(id=secrets.token_hex(6), gateway=gateway, study_id=study_id, trial_id=trial_id, purpose=purpose,
                      max_calls=max_calls)
    _SESSIONS[current.id] = current
    try:
        yield current
    finally:
        _SESSIONS.pop(current.id, None)


def lm(current: Session, model: str, *, temperature: float = 0.0, max_tokens: int = 256) -> dspy.LM:
    """A DSPy LM for `model` whose calls go through the session's gateway (DSPy's cache off)."""
    return dspy.LM(
        f"{PROVIDER}/{current.id}/{model}", cache=False, num_retries=0, temperature=temperature, max_tokens=max_tokens
    )
