"""OFFRAMP_PLUGINS entries for tests that run flows or tasks in other processes (`offramp serve`
spawns one per flow run; a Dask worker runs tasks): they register the fake provider.

- `install`: an incumbent `fake/old` right two times in three, candidates `fake/good` (always
  right) and `fake/cheap` (right two in three), instantly.
- `install_ordered`: the same three models with fixed latencies far apart (the front does not
  depend on timing noise).
- `install_slow`: the same three models with a latency that grows with the prompt (deterministic
  enough to order configs on latency), each wrong on a fixed subset of inputs; `install_spaced`:
  the same, with latencies far apart.
- `install_plain`: `install` plus `fake/plain`, right but never in DSPy's field format.
"""

from __future__ import annotations

import time

from tests import fake_provider
from tests.helpers import dspy_reply, oracle


def _sometimes_wrong(every: int):
    def answer(messages: list[dict]) -> str:
        text = messages[-1]["content"]
        if sum(map(ord, text)) % every == 0:
            return dspy_reply(messages, lambda name, t: "alpha") or "alpha"
        return oracle(messages)

    return answer


def install() -> None:
    provider = fake_provider.install()
    provider.add("old", answer=_sometimes_wrong(3))
    provider.add("good", answer=oracle)
    provider.add("cheap", answer=_sometimes_wrong(3))


def slow_answer(base_s: float, wrong_every: int, chars_per_s: float = 8_000):
    def answer(messages: list[dict]) -> str:
        chars = sum(len(m["content"]) for m in messages)
        time.sleep(base_s + chars / chars_per_s)
        text = messages[-1]["content"]
        if wrong_every and sum(map(ord, text)) % wrong_every == 0:
            return dspy_reply(messages, lambda name, t: "alpha") or "alpha"
        return oracle(messages)

    return answer


def install_slow() -> None:
    provider = fake_provider.install()
    provider.add("old", answer=slow_answer(0.02, 2))
    provider.add("good", answer=slow_answer(0.06, 7))
    provider.add("cheap", answer=slow_answer(0.01, 3))


def install_ordered() -> None:
    """The same models with latencies far apart, so the front does not depend on timing noise:
    `fake/cheap` (wrong one time in three, the slower one; make_space prices it above `fake/good`)
    is dominated by `fake/good` on every objective."""
    provider = fake_provider.install()
    provider.add("old", answer=_sometimes_wrong(3), latency_s=0.02)
    provider.add("good", answer=oracle, latency_s=0.005)
    provider.add("cheap", answer=_sometimes_wrong(3), latency_s=0.05)


def install_spaced() -> None:
    """`install_slow` with latencies ten times further apart between prompts: configs of one
    model differ by hundreds of milliseconds, more than a busy machine's noise."""
    provider = fake_provider.install()
    provider.add("old", answer=slow_answer(0.02, 2, chars_per_s=800))
    provider.add("good", answer=slow_answer(0.1, 7, chars_per_s=800))
    provider.add("cheap", answer=slow_answer(0.01, 3, chars_per_s=800))


def install_plain() -> None:
    """`install`, plus `fake/plain`: always right, but in plain words, never in DSPy's field format
    (DSPy's parser fails on every answer, and logs it)."""
    install()
    fake_provider.PROVIDER.add("plain", answer=lambda messages: oracle([messages[-1]]))  # no system message: plain



def install_sluggish() -> None:
    """The three models of `install`, each answer taking FAKE_LATENCY_S seconds (default 0.4): a
    study slow enough to be stopped mid-search or mid-compile (tests/test_stopping.py)."""
    import os

    latency = float(os.environ.get("FAKE_LATENCY_S", "0.4"))
    provider = fake_provider.install()
    provider.add("old", answer=_sometimes_wrong(3), latency_s=latency)
    provider.add("good", answer=oracle, latency_s=latency)
    provider.add("cheap", answer=_sometimes_wrong(3), latency_s=latency)
