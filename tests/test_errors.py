"""How offramp fails: the spend cap as a typed refusal."""

from __future__ import annotations

import pytest


# -- the spend cap: a typed refusal ----------------------------------------------------------

def _bridge_call(gateway):
    """One call as DSPy makes it (through the `offramp` litellm provider) and the call recorded."""
    from offramp.tasks.gateway import dspy_bridge

    with dspy_bridge.session(gateway, study_id=None, trial_id=None, purpose="optimize") as current:
        try:
            dspy_bridge._GatewayProvider().completion(model=f"{current.id}/fake/x", messages=[{"role": "user", "content": "hi"}])
        finally:
            call = current.calls[-1]
    return call


def _gateway(home, **kwargs):
    from offramp.tasks.gateway.llm import Gateway
    from offramp.tasks.gateway.prices import PriceBook
    from tests import fake_provider as fp

    return Gateway(None, PriceBook({"fake/x": fp.FAKE_PRICE}), home=home, **kwargs)


def test_the_spend_caps_refusal_is_flagged_and_raised_as_budget_exceeded(home, fake):
    from offramp.errors import BudgetExceeded
    from offramp.tasks.gateway.llm import Budget, LLMRequest

    fake.add("x", answer=lambda messages: "ok")
    gateway = _gateway(home, budget=Budget(max_usd=1e-9))
    [result] = gateway.complete_many([LLMRequest(model="fake/x", messages=[{"role": "user", "content": "hi"}], settings={})])
    assert result.refused and result.cost_usd == 0.0
    assert result.error.startswith("BudgetExceeded: spend cap")  # the text kept for calls.error
    with pytest.raises(BudgetExceeded, match="spend cap"):
        _bridge_call(gateway)
    assert fake.models["x"].calls == 0


def test_a_provider_error_named_like_a_budget_is_a_failed_call_not_our_cap(home, fake, monkeypatch):
    """litellm's own global budget (`litellm.max_budget`, set by an application) fails a call with
    `BudgetExceededError: ...`. offramp's cap did not refuse it: the call failed. Matching the
    error's text took it for offramp's spend cap."""
    import litellm

    from offramp.errors import ProviderCallFailed

    fake.add("x", answer=lambda messages: "ok")
    monkeypatch.setattr(litellm, "max_budget", 0.5)
    monkeypatch.setattr(litellm, "_current_cost", 1.0)
    gateway = _gateway(home)
    with pytest.raises(ProviderCallFailed, match="^BudgetExceededError: Budget has been exceeded"):
        _bridge_call(gateway)
