"""A deterministic fake provider for unit tests and benchmarks (never for the main job).

A litellm `CustomLLM` registered as provider `fake`: model `fake/<name>` answers with the
function registered for <name> (default: echo the last user message), after a set latency,
with real token usage (litellm.token_counter). Failures can be scripted per model: a list of
exceptions raised by the next calls, one each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import litellm
from litellm import CustomLLM
from litellm.types.utils import Choices, Message, ModelResponse, Usage

from offramp.search_spaces.schema import Price

Answer = Callable[[list[dict]], str]


@dataclass
class FakeModel:
    answer: Answer = lambda messages: messages[-1]["content"]  # noqa: E731
    latency_s: float = 0.0
    failures: list[Exception] = field(default_factory=list)
    calls: int = 0
    usage_factor: float = 1.0  # reported tokens x this: a provider that bills more than the answer's size


class FakeProvider(CustomLLM):
    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, FakeModel] = {}
        self.lock = threading.Lock()

    def add(self, name: str, **kwargs) -> FakeModel:
        model = FakeModel(**kwargs)
        self.models[name] = model
        return model

    def completion(self, model: str, messages: list, *args, **kwargs) -> ModelResponse:  # type: ignore[override]
        name = model.split("/", 1)[-1]
        fake = self.models[name]
        with self.lock:
            fake.calls += 1
            failure = fake.failures.pop(0) if fake.failures else None
        if fake.latency_s:
            time.sleep(fake.latency_s)
        if failure is not None:
            raise failure
        text = fake.answer(messages)
        prompt_tokens = litellm.token_counter(model="gpt-3.5-turbo", messages=messages)
        completion_tokens = litellm.token_counter(model="gpt-3.5-turbo", text=text, count_response_tokens=True)
        prompt_tokens, completion_tokens = int(prompt_tokens * fake.usage_factor), int(completion_tokens * fake.usage_factor)
        return ModelResponse(
            model=model,
            choices=[Choices(index=0, finish_reason="stop", message=Message(role="assistant", content=text))],
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens),
        )


PROVIDER = FakeProvider()
FAKE_PRICE = Price(input_cost_per_token=1e-6, output_cost_per_token=2e-6, basis="fake")


def install() -> FakeProvider:
    """Register the provider with litellm (idempotent) and return it."""
    if not any(p.get("provider") == "fake" for p in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": "fake", "custom_handler": PROVIDER})
        from litellm.utils import custom_llm_setup

        custom_llm_setup()
        # the token counter loads its encoding on first use (~0.3 s): not in the first call's latency
        litellm.token_counter(model="gpt-3.5-turbo", text="warm up")
    return PROVIDER


def rate_limit(model: str = "fake/x") -> Exception:
    return litellm.RateLimitError(message="429 slow down", llm_provider="fake", model=model)


def server_error(model: str = "fake/x") -> Exception:
    return litellm.InternalServerError(message="500 boom", llm_provider="fake", model=model)


def bad_request(model: str = "fake/x") -> Exception:
    return litellm.BadRequestError(message="400 bad", llm_provider="fake", model=model)


def timeout(model: str = "fake/x") -> Exception:
    return litellm.Timeout(message="timed out", llm_provider="fake", model=model)


def connection_error(model: str = "fake/x") -> Exception:
    return litellm.APIConnectionError(
        message="connection refused", llm_provider="fake", model=model,
        request=httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions"),
    )
