"""Model retirements: what the sources say, and which features they hit.

Sources, strongest first: the user's notices (`offramp notify`, a notices YAML file), then
litellm's bundled price map (`deprecation_date`). A model that no source dates is *unknown*, not
safe. A feature's model is matched through litellm's provider resolution (`model_identity`:
`openai/gpt-4o` and `gpt-4o` are one model; `migrate --deprecated` uses it too), or, for an undated alias (`gpt-4o`,
`claude-3-5-sonnet-latest`), through the latest dated snapshot the map lists for it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from offramp.errors import UserError
from offramp.search_spaces.validation import problems as validation_problems
from offramp.tasks.gateway.models import model_identity
from offramp.tasks.watch.registry import RegisteredFeature

EVENT = "offramp.model.deprecation"  # what the watch emits and migrate-feature's trigger expects
DEFAULT_HORIZON_DAYS = 120
SOURCE_RANK = {"notice": 0, "notices_file": 0, "provider_api": 1, "litellm": 2}
NOTICES_EXPECTED = "a mapping `notices:` holding a list of {model, retires_on: YYYY-MM-DD, replacement, source}"
_SNAPSHOT = re.compile(r"^(?P<base>.+)-(?P<date>\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True)
class Notice:
    """One source's word on one model's retirement."""

    model: str
    retires_on: dt.date
    source: str  # notice | notices_file | provider_api | litellm
    replacement: str | None = None
    source_ref: str | None = None

    def row(self) -> dict[str, Any]:
        return {"model": self.model, "source": self.source, "retires_on": self.retires_on,
                "replacement": self.replacement, "source_ref": self.source_ref}


class NoticeEntry(BaseModel):
    """A user's notice: one entry of a notices file, or `offramp notify`'s arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="the retiring model, as features name it (a litellm id)")
    retires_on: dt.date = Field(description="the day the provider turns it off")
    replacement: str | None = Field(default=None, description="the successor the provider suggests")
    source: str | None = Field(default=None, description="where it was announced (a URL)")


@dataclass(frozen=True)
class Assessment:
    """One (feature, model in use) against the notices."""

    feature: str
    feature_dir: str
    model: str
    role: str  # incumbent | release | incumbent+release
    provider: str
    horizon_days: int
    status: str  # retiring (within the horizon) | retired (date passed) | later | unknown (no source dates it)
    retires_on: dt.date | None = None
    days_left: int | None = None
    source: str | None = None
    replacement: str | None = None
    source_ref: str | None = None
    via: str | None = None  # how the model was matched, when not exactly
    search_space: str | None = None

    @property
    def source_text(self) -> str:
        """The source in force, and how the model was matched when not exactly ("-": none)."""
        if self.source is None:
            return "-"
        return self.source + (f" ({self.via})" if self.via else "")

    @property
    def actionable(self) -> bool:
        return self.status in ("retiring", "retired")

    @property
    def migratable(self) -> bool:
        """migrate-feature starts from feature.yaml's incumbent: only its model can be migrated."""
        return "incumbent" in self.role


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


# -- sources ---------------------------------------------------------------------------------

def load_price_map(path: Path | str | None = None) -> Mapping[str, Any]:
    """litellm's bundled map (offline), or a JSON file in the same format (a newer map, a fixture)."""
    if path is None:
        import litellm

        return litellm.model_cost
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: price map file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); expected litellm's model_prices_and_context_window.json format") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of model -> entry (litellm's price map format), got {type(data).__name__}")
    return data


def map_notices(price_map: Mapping[str, Any]) -> tuple[list[Notice], list[str]]:
    """Every entry of the map that carries a `deprecation_date`."""
    notices: list[Notice] = []
    problems: list[str] = []
    for key, entry in price_map.items():
        if key == "sample_spec" or not isinstance(entry, dict) or not entry.get("deprecation_date"):
            continue
        try:
            day = dt.date.fromisoformat(str(entry["deprecation_date"])[:10])
        except ValueError:
            problems.append(f"price map entry {key!r}: field `deprecation_date`: expected YYYY-MM-DD, got {entry['deprecation_date']!r}")
            continue
        notices.append(Notice(key, day, "litellm", None, f"litellm price map: {key}"))
    return notices, problems


def load_notices_file(path: Path | str) -> tuple[list[Notice], list[str]]:
    """The notices of a YAML file; a bad entry is a problem line, never a reason to drop the others."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        return [], [f"{path}: notices file does not exist; expected {NOTICES_EXPECTED}"]
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return [], [f"{path}: not valid YAML ({exc}); expected {NOTICES_EXPECTED}"]
    if raw is None:
        return [], []
    entries = raw.get("notices") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        return [], [f"{path}: field `notices`: expected {NOTICES_EXPECTED}"]
    notices: list[Notice] = []
    problems: list[str] = []
    for index, item in enumerate(entries):
        try:
            entry = NoticeEntry.model_validate(item)
        except ValidationError as exc:
            problems.append(f"{path}: notices[{index}]: {validation_problems(exc)}")
            continue
        notices.append(Notice(entry.model, entry.retires_on, "notices_file", entry.replacement, entry.source or str(path)))
    return _earliest_per_model(notices, problems, str(path)), problems


PROVIDER_APIS = ("openai",)


def provider_api_notices(
    provider: str,
    price_map: Mapping[str, Any],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    transport: Any = None,
    timeout_s: float = 10.0,
) -> tuple[list[Notice], list[str]]:
    """Shutdown dates a provider's models API publishes (OpenAI: `GET /v1/models`, each model's
    optional `shutdown_date`). Opt-in, online; a failure is a problem line, never fatal. The key
    comes from the environment (OPENAI_API_KEY) and goes only into the request's header."""
    import os

    import httpx

    if provider not in PROVIDER_APIS:
        return [], [f"provider API {provider!r}: not supported (supported: {list(PROVIDER_APIS)})"]
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
    where = f"provider API openai ({base_url}/models)"
    if not api_key:
        return [], [f"{where}: OPENAI_API_KEY is not set; skipped"]
    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as client:
            response = client.get(f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"})
            response.raise_for_status()
            models = response.json()["data"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        status = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        return [], [f"{where}: {status}; skipped (the other sources were used)"]
    notices, problems = [], []
    for item in models:
        raw = item.get("shutdown_date") if isinstance(item, dict) else None
        if not raw:
            continue
        try:
            day = dt.date.fromisoformat(str(raw)[:10])
        except ValueError:
            problems.append(f"{where}: model {item.get('id')!r}: field `shutdown_date`: expected YYYY-MM-DD, got {raw!r}")
            continue
        model_id = str(item.get("id"))
        entry = price_map.get(model_id)
        name = model_id if isinstance(entry, dict) and entry.get("litellm_provider") == "openai" else f"openai/{model_id}"
        notices.append(Notice(name, day, "provider_api", None, f"{base_url}/models"))
    return notices, problems


def _earliest_per_model(notices: list[Notice], problems: list[str], where: str) -> list[Notice]:
    kept: dict[str, Notice] = {}
    for notice in notices:
        other = kept.get(notice.model)
        if other is not None and other.retires_on != notice.retires_on:
            problems.append(f"{where}: {notice.model} is listed twice ({other.retires_on}, {notice.retires_on}); using the earlier date")
        if other is None or notice.retires_on < other.retires_on:
            kept[notice.model] = notice
    return list(kept.values())


# -- matching --------------------------------------------------------------------------------

def canonical(model: str, price_map: Mapping[str, Any]) -> str:
    """`openai/gpt-4o` -> `gpt-4o` when the map files `gpt-4o` under provider openai; else as is."""
    if "/" in model and model not in price_map:
        prefix, rest = model.split("/", 1)
        entry = price_map.get(rest)
        if isinstance(entry, dict) and entry.get("litellm_provider") == prefix:
            return rest
    return model


def provider_of(model: str, price_map: Mapping[str, Any]) -> str:
    key = canonical(model, price_map)
    entry = price_map.get(key) or price_map.get(latest_snapshot(key, price_map) or "")
    if isinstance(entry, dict) and entry.get("litellm_provider"):
        return str(entry["litellm_provider"])
    return model.split("/", 1)[0] if "/" in model else "unknown"


def latest_snapshot(model: str, price_map: Mapping[str, Any]) -> str | None:
    """The newest dated snapshot the map lists for an alias (`gpt-4o` -> `gpt-4o-2024-11-20`)."""
    base = model[: -len("-latest")] if model.endswith("-latest") else model
    dated = []
    for key in price_map:
        match = _SNAPSHOT.match(key)
        if match and match.group("base") == base:
            dated.append((match.group("date").replace("-", ""), key))
    return max(dated)[1] if dated else None


def in_force(notices: Iterable[Notice]) -> Notice | None:
    """A user's notice beats a provider API, which beats litellm; then the earliest date."""
    ranked = sorted(notices, key=lambda n: (SOURCE_RANK.get(n.source, 9), n.retires_on))
    return ranked[0] if ranked else None


def assess(
    features: Sequence[RegisteredFeature],
    notices: Sequence[Notice],
    price_map: Mapping[str, Any],
    *,
    today: dt.date,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    provider_horizon_days: Mapping[str, int] | None = None,
) -> list[Assessment]:
    by_model: dict[str, list[Notice]] = {}
    for notice in notices:
        by_model.setdefault(model_identity(notice.model, price_map), []).append(notice)
    out = []
    for feature in features:
        for model, role in feature.models().items():
            key = canonical(model, price_map)
            provider = provider_of(model, price_map)
            horizon = (provider_horizon_days or {}).get(provider, horizon_days)
            notice, via = in_force(by_model.get(model_identity(model, price_map), [])), None
            if notice is None:
                snapshot = latest_snapshot(key, price_map)
                notice = in_force(by_model.get(model_identity(snapshot, price_map), [])) if snapshot else None
                via = f"alias of {snapshot}, its latest dated snapshot in litellm's map" if notice else None
            common = dict(feature=feature.name, feature_dir=feature.dir, model=model, role=role, provider=provider,
                          horizon_days=horizon, search_space=feature.search_space)
            if notice is None:
                out.append(Assessment(**common, status="unknown"))
                continue
            days_left = (notice.retires_on - today).days
            status = "retired" if days_left < 0 else "retiring" if days_left <= horizon else "later"
            out.append(Assessment(
                **common, status=status, retires_on=notice.retires_on, days_left=days_left, source=notice.source,
                replacement=notice.replacement, source_ref=notice.source_ref, via=via,
            ))
    return out


def check_user_notice(
    entry: NoticeEntry,
    *,
    today: dt.date,
    price_map: Mapping[str, Any],
    models_in_use: Iterable[str],
    already_retired: bool = False,
    force: bool = False,
) -> None:
    """`offramp notify`'s checks: a date in the past and a model nobody knows are likely typos."""
    if entry.retires_on < today and not already_retired:
        raise UserError(
            f"--retires {entry.retires_on} is in the past (today is {today}). If {entry.model} has already been "
            "turned off, pass --already-retired; otherwise fix the date."
        )
    in_use = {canonical(m, price_map) for m in models_in_use}
    key = canonical(entry.model, price_map)
    if key not in price_map and key not in in_use and not force:
        raise UserError(
            f"model {entry.model!r}: litellm's price map does not know it and no registered feature uses it "
            f"(features use: {sorted(in_use) or 'none found'}). Check the spelling, or pass --force to record it anyway."
        )
