"""User code that must run in every process that calls models: `OFFRAMP_PLUGINS`.

A comma-separated list of `module:function` (called with no arguments) or `module` (imported).
Typical use: registering a custom litellm provider (`litellm.custom_provider_map`) or a callback.
Deployed flow runs start in fresh processes (`offramp serve` spawns one per run), so what the
parent registered in memory is gone there: the flow loads the plugins itself.
"""

from __future__ import annotations

import importlib

from offramp.errors import UserError
from offramp.warehouse.home import OfframpSettings

_LOADED: set[str] = set()


def load_plugins(spec: str | None = None) -> list[str]:
    """Import/call each plugin once per process; returns the ones named."""
    spec = OfframpSettings().plugins if spec is None else spec
    names = [part.strip() for part in spec.split(",") if part.strip()]
    for name in names:
        if name in _LOADED:
            continue
        module_name, _, function = name.partition(":")
        try:
            module = importlib.import_module(module_name)
            if function:
                getattr(module, function)()
        except Exception as exc:  # noqa: BLE001 - any failure is the plugin's, named for the user
            raise UserError(
                f"OFFRAMP_PLUGINS: plugin {name!r} failed to load ({type(exc).__name__}: {exc}); "
                "expected module:function or module, importable from this environment"
            ) from None
        _LOADED.add(name)
    return names
