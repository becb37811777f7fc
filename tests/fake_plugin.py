"""An OFFRAMP_PLUGINS entry for tests that run flows in other processes (`offramp serve` spawns
one per flow run): registers the fake provider with an incumbent `fake/old` that is right two
times in three and candidates `fake/good` (always right) and `fake/cheap` (right two in three)."""

from __future__ import annotations

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


def install_ordered() -> None:
    """The same models with latencies far apart, so the front does not depend on timing noise:
    `fake/cheap` (wrong one time in three, the slower one; make_space prices it above `fake/good`)
    is dominated by `fake/good` on every objective."""
    provider = fake_provider.install()
    provider.add("old", answer=_sometimes_wrong(3), latency_s=0.02)
    provider.add("good", answer=oracle, latency_s=0.005)
    provider.add("cheap", answer=_sometimes_wrong(3), latency_s=0.05)
