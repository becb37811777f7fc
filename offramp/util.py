"""Small helpers every layer may use (this module imports nothing from offramp)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(value: Any, *, length: int | None = None) -> str:
    """sha256 of `value` as canonical JSON (sorted keys), hex, cut to `length` characters."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    return digest if length is None else digest[:length]
