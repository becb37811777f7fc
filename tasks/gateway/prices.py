"""What a call costs: declared prices first, then litellm's price map.

Order of precedence: a model entry's `price:`, a search space's `prices:` / a `--prices` file (keyed
by name or by any id of the same model: `gpt-4o-mini` prices `openai/gpt-4o-mini`), then the bundled local-model
prices (`prices.yaml`, derived from a declared machine price and measured throughput), then
litellm's bundled map. A model priced nowhere is refused before any call is made: a cost
objective built on a guess would be worse than none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from offramp.errors import UserError
from offramp.search_spaces.schema import ModelEntry, Price
from offramp.search_spaces.validation import problems, read_yaml
from offramp.tasks.gateway.models import TUNED_PREFIX, model_identity

BUNDLED = Path(__file__).with_name("prices.yaml")
TUNED = f"{TUNED_PREFIX}*"  # the price entry of offramp's own tuned models


def bundled_prices(path: Path = BUNDLED) -> dict[str, Price]:
    raw = yaml.safe_load(path.read_text())
    per_second = float(raw["machine_usd_per_hour"]) / 3600.0
    prices = {}
    for model, entry in {**raw["models"], TUNED: raw["tuned"]}.items():
        prices[model] = Price(
            input_cost_per_token=per_second / float(entry["prompt_tokens_per_s"]),
            output_cost_per_token=per_second / float(entry["completion_tokens_per_s"]),
            basis=f"self-hosted: ${raw['machine_usd_per_hour']}/h machine / measured tokens/s ({path.name})",
        )
    return prices


def machine_usd_per_hour(path: Path = BUNDLED) -> float:
    """The declared price of this machine (`prices.yaml`): what offramp's own work on it costs."""
    return float(yaml.safe_load(path.read_text())["machine_usd_per_hour"])


def load_price_file(path: Path | str) -> dict[str, Price]:
    """A user's price file: `model: {input_cost_per_token, output_cost_per_token, basis}`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such price file")
    raw = read_yaml(path, error=UserError, expected="model -> {input_cost_per_token, output_cost_per_token}")
    try:
        return {str(model): Price.model_validate(entry) for model, entry in raw.items()}
    except ValidationError as exc:
        raise UserError(f"{path}: invalid price entry: {problems(exc)}") from None


def prompt_chars(messages: list[dict]) -> int:
    """The characters of a request's messages: the worst case counts each as a token."""
    return sum(len(str(m.get("content", ""))) for m in messages)


class PriceBook:
    """Prices for every model a study may call, looked up by name, then by identity
    (`model_identity`: a price declared for `gpt-4o-mini` prices `openai/gpt-4o-mini` and the
    reverse). A declared price always wins over litellm's map; litellm's answer is trusted only when
    it is a real entry with a non-zero price (it prices an unknown `openai/<anything>` at $0)."""

    def __init__(
        self, overrides: dict[str, Price] | None = None, endpoints: dict[str, ModelEntry] | None = None,
        sources: dict[str, str] | None = None,
    ) -> None:
        self.endpoints = endpoints or {}
        sources = sources or {}
        self.prices: dict[str, Price] = {}
        self.sources: dict[str, str] = {}
        for model, price in bundled_prices().items():
            self._add(model, price, f"bundled self-hosted ({BUNDLED.name})")
        for model, price in (overrides or {}).items():
            self._add(model, price, sources.get(model, "declared"))
        for name, entry in self.endpoints.items():
            if entry.price is not None:
                self._add(name, entry.price, "declared with the model")
        self._by_identity = {model_identity(m): m for m in self.prices if m not in self.endpoints}
        # a bare id litellm cannot resolve (`gpt-9-ultra`) prices that name under any provider prefix
        self._unresolved = {m: m for m in self.prices if "/" not in model_identity(m)}

    def _add(self, model: str, price: Price, source: str) -> None:
        self.prices[model] = price
        self.sources[model] = source

    def litellm_id(self, model: str) -> str:
        entry = self.endpoints.get(model)
        return entry.id if entry is not None else model

    def _key(self, model: str) -> str | None:
        """The declared entry pricing `model` (a name): its own, else one of the same identity."""
        if model in self.prices:
            return model
        if model.startswith(TUNED_PREFIX):  # every model offramp tuned: the bundled machine-time price
            return TUNED if TUNED in self.prices else None
        identity = model_identity(self.litellm_id(model))
        return self._by_identity.get(identity) or self._unresolved.get(identity.split("/", 1)[-1])

    def declared(self, model: str) -> Price | None:
        key = self._key(model)
        return None if key is None else self.prices[key]

    def source(self, model: str) -> str:
        """Where the price of `model` comes from, for the study's record and its report."""
        key = self._key(model)
        return self.sources[key] if key is not None else "litellm's price map"

    def check(self, model: str) -> None:
        """Raise UserError unless `model` has a trustworthy price: declared, bundled, or a real
        non-zero entry of litellm's map (a $0 or generic answer for a remote model is not a price)."""
        if self._key(model) is not None:
            return
        if model.startswith("local/"):
            raise UserError(
                f"model {model!r}: no local model of that name has a declared price; known: "
                f"{sorted(m for m in self.prices if m.startswith('local/'))}"
            )
        litellm_id = self.litellm_id(model)
        if not litellm_priced(litellm_id):
            raise UserError(
                f"model {model!r} has no trustworthy price: litellm's map has no entry for {litellm_id!r} (or prices "
                "it at $0 through a generic entry). Check the id (litellm form, e.g. `openai/gpt-4o-mini`) or declare "
                "its price: a `price:` in its `models:` entry or the space's `prices:` block "
                "(input_cost_per_token, output_cost_per_token; 0 for a self-hosted model)."
            )

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, response: Any = None) -> float:
        price = self.declared(model)
        if price is not None:
            return prompt_tokens * price.input_cost_per_token + completion_tokens * price.output_cost_per_token
        import litellm

        if response is not None and model not in self.endpoints:
            return float(litellm.completion_cost(completion_response=response))
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=self.litellm_id(model), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt_cost + completion_cost)


def litellm_priced(model: str) -> bool:
    """Whether litellm's map really prices `model`: an entry with a non-zero input or output price."""
    import litellm

    try:
        info = litellm.get_model_info(model)
    except Exception:  # noqa: BLE001 - litellm raises for an id it has not mapped
        return False
    return bool(info) and bool((info.get("input_cost_per_token") or 0) or (info.get("output_cost_per_token") or 0))
