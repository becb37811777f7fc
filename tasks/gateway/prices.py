"""What a call costs: declared prices first, then litellm's price map.

Order of precedence: a search space's `prices:` / a `--prices` file, then the bundled local-model
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
from offramp.search_spaces.schema import Price
from offramp.search_spaces.validation import problems, read_yaml

BUNDLED = Path(__file__).with_name("prices.yaml")


def bundled_prices(path: Path = BUNDLED) -> dict[str, Price]:
    raw = yaml.safe_load(path.read_text())
    per_second = float(raw["machine_usd_per_hour"]) / 3600.0
    prices = {}
    for model, entry in raw["models"].items():
        prices[model] = Price(
            input_cost_per_token=per_second / float(entry["prompt_tokens_per_s"]),
            output_cost_per_token=per_second / float(entry["completion_tokens_per_s"]),
            basis=f"self-hosted: ${raw['machine_usd_per_hour']}/h machine / measured tokens/s ({path.name})",
        )
    return prices


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


class PriceBook:
    """Prices for every model a study may call."""

    def __init__(self, overrides: dict[str, Price] | None = None) -> None:
        self.prices: dict[str, Price] = {**bundled_prices(), **(overrides or {})}

    def declared(self, model: str) -> Price | None:
        return self.prices.get(model)

    def check(self, model: str) -> None:
        """Raise UserError unless `model` has a price (declared or in litellm's map)."""
        if model in self.prices:
            return
        if model.startswith("local/"):
            raise UserError(
                f"model {model!r}: no local model of that name has a declared price; known: "
                f"{sorted(m for m in self.prices if m.startswith('local/'))}"
            )
        import litellm

        try:
            info = litellm.get_model_info(model)
        except Exception:
            info = None
        if not info or info.get("input_cost_per_token") is None:
            raise UserError(
                f"model {model!r} is unknown: it is not in litellm's price map and no price was declared. "
                "Check the id (litellm form, e.g. `openai/gpt-4o-mini`) or declare its price in the search "
                "space's `prices:` block (input_cost_per_token, output_cost_per_token)."
            )

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, response: Any = None) -> float:
        price = self.prices.get(model)
        if price is not None:
            return prompt_tokens * price.input_cost_per_token + completion_tokens * price.output_cost_per_token
        import litellm

        if response is not None:
            return float(litellm.completion_cost(completion_response=response))
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt_cost + completion_cost)
