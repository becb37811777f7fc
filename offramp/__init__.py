"""offramp: migrate LLM features off retiring models, measured and on evidence.

This folder is the packaging shim: setuptools maps the subpackages onto the repository's
top-level folders (`offramp.flows` -> `flows/`, `offramp.tasks` -> `tasks/`,
`offramp.search_spaces` -> `search_spaces/`, `offramp.warehouse` -> `warehouse/`,
`offramp.features` -> `features/`), so every import reads `offramp.<layer>` and nothing
clashes with an application's own `tasks.py` or `flows/`.

The application API is one call:

    from offramp import load_release
    route = load_release("releases/bank-support-routing.json")
    route(message="I still have not received my new card")   # -> {"queue": "cards"}
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# litellm must read its bundled price map, never the network (machines may be offline; a fetch
# blocks for seconds). Set before any part of offramp imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.2.0"
__all__ = ["OfframpError", "__version__", "load_release"]

from offramp.errors import OfframpError  # noqa: E402

if TYPE_CHECKING:
    from offramp.tasks.watch.releases import load_release


def __getattr__(name: str) -> Any:
    # Lazy: `import offramp` stays light (the CLI's start-up, `offramp sql`).
    if name == "load_release":
        from offramp.tasks.watch.releases import load_release

        return load_release
    raise AttributeError(f"module 'offramp' has no attribute {name!r}")
