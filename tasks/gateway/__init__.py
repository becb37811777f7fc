"""Every model call of offramp: litellm behind a cache, retries and a spend cap; what calls cost;
the bundled local models; DSPy's calls routed through the gateway; user plugins."""

from offramp._lazy import lazy_exports

__all__ = [
    "LOCAL_PREFIX", "Budget", "Gateway", "LLMRequest", "LLMResult", "PriceBook", "load_plugins",
    "load_price_file", "local_models", "redact", "route",
]
__getattr__ = lazy_exports(__name__, {
    "LOCAL_PREFIX": ".llm", "Budget": ".llm", "Gateway": ".llm", "LLMRequest": ".llm", "LLMResult": ".llm",
    "redact": ".llm", "route": ".llm", "PriceBook": ".prices", "load_price_file": ".prices",
    "load_plugins": ".plugins",
})
