"""One normalisation of model ids, and where a model is served.

`model_identity` is litellm's provider resolution (`gpt-4o` and `openai/gpt-4o` are one model;
`azure/gpt-4o` is another deployment): prices, the response cache, `migrate --deprecated` and the
watch all use it. `route` turns a model's name into litellm's arguments. `served_identity` names the endpoint a call goes to (normalised api_base +
identity), never its key: it is part of the response cache's key, so an answer from one server is
never replayed as another's.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from offramp.search_spaces.schema import ModelEntry
from offramp.tasks.gateway import local_models

LOCAL_PREFIX = "local/"
TUNED_PREFIX = "tuned/"  # offramp's own tuned models, answered in process (tasks/gateway/tuned.py)
LOCAL_API_KEY = "sk-no-key-local"  # the local server ignores it; litellm's openai client wants one
NO_KEY = "sk-no-key"  # what a declared api_base without `api_key_env` gets: litellm's openai client wants one


def model_identity(model: str, price_map: Mapping[str, Any] | None = None) -> str:
    """`provider/name` of a model id, through litellm's provider resolution: `gpt-4o` and
    `openai/gpt-4o` are both `openai/gpt-4o`; `azure/gpt-4o` stays another deployment. When litellm
    cannot resolve it, the price map's `litellm_provider` for the id, else its own prefix, says the
    provider; a bare id nobody knows, and `local/<alias>`, stay as they are. The one normalisation
    the watch matches notices with, `migrate --deprecated` is checked with, prices are looked up by."""
    if model.startswith(LOCAL_PREFIX):
        return model
    if price_map is None:
        return _identity(model)
    return _resolve(model, price_map)


@functools.lru_cache(maxsize=4096)
def _identity(model: str) -> str:
    import litellm

    return _resolve(model, litellm.model_cost)


def _resolve(model: str, price_map: Mapping[str, Any]) -> str:
    import litellm

    quiet = litellm.suppress_debug_info
    litellm.suppress_debug_info = True  # an unknown id would print litellm's "Provider List" banner
    try:
        name, provider, *_ = litellm.get_llm_provider(model)
    except Exception:  # noqa: BLE001 - litellm raises several types for an id it cannot route
        entry = price_map.get(model)
        if isinstance(entry, dict) and entry.get("litellm_provider"):
            provider = str(entry["litellm_provider"])
            name = model.removeprefix(f"{provider}/")
        elif "/" in model:
            provider, name = model.split("/", 1)
        else:
            return model
    finally:
        litellm.suppress_debug_info = quiet
    return f"{provider}/{name}"


def routable(model: str) -> bool:
    """Whether litellm can tell which provider serves `model` (`claude-v2` it cannot)."""
    if model.startswith(LOCAL_PREFIX):
        return True
    import litellm

    quiet = litellm.suppress_debug_info
    litellm.suppress_debug_info = True
    try:
        litellm.get_llm_provider(model)
        return True
    except Exception:  # noqa: BLE001 - litellm raises several types for an id it cannot route
        return False
    finally:
        litellm.suppress_debug_info = quiet


def provider_of(model: str) -> str:
    return model_identity(model).split("/", 1)[0] if "/" in model_identity(model) else "openai"


def key_env_of(model: str, entry: ModelEntry | None = None) -> str:
    """The environment variable the key of `model` is read from: the declared one, else litellm's
    convention for its provider (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)."""
    if entry is not None and entry.api_key_env:
        return entry.api_key_env
    return f"{provider_of(entry.id if entry else model).upper()}_API_KEY"


def normalise_base(url: str) -> str:
    """`HTTP://Host:8000/v1/` and `http://host:8000/v1` are one endpoint."""
    scheme, _, rest = url.strip().partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}/{path.rstrip('/')}".rstrip("/")


def ambient_base(model: str) -> str | None:
    """The api_base litellm would use for an undeclared model when one is configured (litellm's
    global `api_base`, `OPENAI_BASE_URL`/`OPENAI_API_BASE`, `<PROVIDER>_API_BASE`); None when it
    would use the provider's public default. The dynamic key get_llm_provider returns is ignored."""
    import litellm

    try:
        _, provider, _key, base = litellm.get_llm_provider(model)
    except Exception:  # noqa: BLE001 - an unroutable id has no endpoint
        return None
    env = ("OPENAI_BASE_URL", "OPENAI_API_BASE") if provider == "openai" else (f"{provider.upper()}_API_BASE",)
    base = base or getattr(litellm, "api_base", None) or next((os.environ[e] for e in env if os.environ.get(e)), None)
    return normalise_base(base) if base else None


def served_identity(model: str, endpoints: Mapping[str, ModelEntry]) -> str | None:
    """Where a call to `model` (a name) is served, for the cache key: the declared endpoint's
    normalised api_base + the model's identity, or the ambient api_base of an undeclared model;
    None when neither is set (the cache key stays what it was before endpoints existed)."""
    if model.startswith((LOCAL_PREFIX, TUNED_PREFIX)):  # served on this machine: the id says where
        return None
    entry = endpoints.get(model)
    if entry is None:
        base = ambient_base(model)
        return f"{base}|{model_identity(model)}" if base else None
    base = normalise_base(entry.api_base) if entry.api_base else ambient_base(entry.id)
    return f"{base or 'default'}|{model_identity(entry.id)}"


def route(model: str, home: Path, endpoints: Mapping[str, ModelEntry] | None = None) -> dict[str, Any]:
    """litellm arguments for a model name: `local/<alias>` -> the running local server (its address
    read from the state dir, its stop strings from the zoo); a declared model -> its id, api_base
    and the key read now from its `api_key_env` (in the process that makes the call: declarations
    travel without keys); any other id as is."""
    entry = (endpoints or {}).get(model)
    if entry is not None:
        args: dict[str, Any] = {"model": entry.id}
        if entry.api_base:
            args["api_base"] = entry.api_base
        if entry.api_key_env and os.environ.get(entry.api_key_env):
            args["api_key"] = os.environ[entry.api_key_env]
        elif entry.api_base and not entry.api_key_env:
            # a server of the user's without auth: never send it a provider's key from the environment
            args["api_key"] = NO_KEY
        return args
    if not model.startswith(LOCAL_PREFIX):
        return {"model": model}
    alias = model[len(LOCAL_PREFIX) :]
    args = {"model": f"openai/{alias}", "api_base": local_models.api_base(alias, home), "api_key": LOCAL_API_KEY}
    stop = local_models.get_spec(alias).stop
    if stop:
        args["stop"] = list(stop)
    return args
