"""Lazy public names for the subpackages' `__init__` (PEP 562): `offramp.tasks.gateway.Gateway`
imports its module on first use, so importing a subpackage for one light module (the CLI's
start-up, `offramp sql`) does not import litellm, DSPy or Prefect."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that resolves `names` (public name -> relative module) on first use."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
