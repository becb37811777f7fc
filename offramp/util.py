"""Small helpers used by several layers (flows, tasks, search_spaces, warehouse).

A leaf module: it imports nothing from offramp, so the lowest layers can use it too. Heavier
libraries are imported inside the function that needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_SECRET_PARAM = re.compile(r"(PASS|PWD|TOKEN|SECRET|KEY)", re.IGNORECASE)
HIDDEN_URL = "<URL hidden: not parseable>"


def safe_url(url: str) -> str:
    """`url` without its credentials, to show in messages and logs or to store in the warehouse.

    An http(s) URL (parsed by httpx) loses its whole userinfo (`user:password@`, or a token in the
    user part); any other URL is parsed as a database URL by SQLAlchemy and rendered with its
    password as `***` (the user name stays). Query parameters whose name looks secret (pass, pwd,
    token, secret, key) are dropped from both. A string that parses as neither gives
    `HIDDEN_URL` instead, since it could hold a secret anywhere; this never raises.
    """
    try:
        if url.partition("://")[0].lower() in ("http", "https"):
            import httpx

            parsed = httpx.URL(url).copy_with(username=None, password=None)
            for name in {name for name in parsed.params if _SECRET_PARAM.search(name)}:
                parsed = parsed.copy_remove_param(name)
            return str(parsed)
        from sqlalchemy.engine import make_url

        parsed_db = make_url(url)
        parsed_db = parsed_db.difference_update_query([name for name in parsed_db.query if _SECRET_PARAM.search(name)])
        return parsed_db.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - garbage of any kind is hidden, never raised
        return HIDDEN_URL


def url_password(url: str) -> str | None:
    """The password a database URL holds (`scheme://user:password@host/db`), or None."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:  # noqa: BLE001 - not a database URL: it holds no password we can tell
        return None


def password_to_environment(url: str) -> str:
    """A PostgreSQL URL without its password, the password moved to `PGPASSWORD` (libpq and psycopg
    read it), so it reaches neither the flow run's parameters nor the warehouse. Any other URL as is."""
    password = url_password(url)
    if password is None or not url.lower().startswith(("postgresql", "postgres")):
        return url
    import os

    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    os.environ["PGPASSWORD"] = password
    return URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      parsed.query).render_as_string(hide_password=False)


def content_hash(value: Any, *, length: int | None = None, compact: bool = True) -> str:
    """The sha256 hex digest of `value` as canonical JSON (keys sorted, a value JSON cannot encode
    written as its `str`), cut to its first `length` characters (None: all 64).

    offramp's keys (configs, specs, programs, compilations, studies, cached responses) are such
    hashes, and warehouses already hold them, so their text must never change. `compact=True`
    writes JSON without spaces (`","`, `":"`), as the response cache key always has;
    `compact=False` writes json.dumps's default separators (`", "`, `": "`), which every other
    stored key was made with.
    """
    separators = (",", ":") if compact else (", ", ": ")
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, separators=separators, default=str).encode()).hexdigest()
    return digest if length is None else digest[:length]
