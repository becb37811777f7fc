"""The deployments `offramp serve` registers and serves (and `prefect.yaml` mirrors for workers).

- `migrate-feature/on-deprecation`: started by each `offramp.model.deprecation` event; its
  parameters are templated from the event's payload. Prefect renders each template and parses
  the result as JSON, so: `event.id` needs `| string` (a UUID is not JSON), and an optional
  payload key needs `| default(none)` (a missing key fails the render, and then NO run is created,
  only a server warning). Also the form for manual runs from the UI: the deployment's default
  parameters (and the form's field defaults) carry the limits `serve` was given, as triggered runs do.
- `watch-deprecations/daily`: the watch on a cron schedule (06:00 UTC by default).
"""

from __future__ import annotations

from typing import Any

from offramp.flows.params import MigrateParams, WatchParams
from offramp.tasks.watch.deprecations import EVENT

MIGRATE_DEPLOYMENT = "on-deprecation"
WATCH_DEPLOYMENT = "daily"
DEFAULT_CRON = "0 6 * * *"

# MigrateParams fields taken from the event; everything else comes from `offramp serve`'s options.
EVENT_TEMPLATES = {
    "feature_dir": "{{ event.payload.feature_dir }}",
    "deprecated_model": "{{ event.payload.model }}",
    "replacement_model": "{{ event.payload.replacement | default(none) }}",
    "event_id": "{{ event.id | string }}",
    "trigger": "event",
}


def trigger_parameters(defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `migrate_feature(params=...)` a deprecation event starts: `defaults` (JSON-able
    MigrateParams fields) overlaid with the event's templates."""
    unknown = set(defaults or {}) - set(MigrateParams.model_fields)
    if unknown:
        raise ValueError(f"not migrate-feature parameters: {sorted(unknown)}")
    return {"params": {**(defaults or {}), **EVENT_TEMPLATES}}


def form_parameters(defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deployment's own default parameters: the limits `offramp serve` was given (trials, spend
    cap, policy file), so a run started from the UI's form gets the same limits as an
    event-triggered one (Prefect fills the form with them; without them it showed MigrateParams'
    defaults: 16 trials, no cap)."""
    set_ = {k: v for k, v in (defaults or {}).items() if v is not None}
    trigger_parameters(set_)  # the same check: only MigrateParams fields
    return {"params": set_}


def _schema_defaults(deployment, defaults: dict[str, Any]) -> None:
    """The form's field defaults (MigrateParams in the parameter schema) set to `defaults` too, so
    the form shows them even where it reads the schema rather than the deployment's parameters."""
    schema = deployment._parameter_openapi_schema  # Prefect builds it from the flow's signature
    fields = (schema.definitions or {}).get("MigrateParams", {}).get("properties", {})
    for name, value in defaults.items():
        if name in fields:
            fields[name]["default"] = value


def build(
    *,
    watch: WatchParams,
    migrate_defaults: dict[str, Any] | None = None,
    cron: str = DEFAULT_CRON,
) -> list:
    from prefect.deployments.runner import EntrypointType
    from prefect.events import DeploymentEventTrigger

    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.watch_deprecations import watch_deprecations

    migrate = migrate_feature.to_deployment(
        name=MIGRATE_DEPLOYMENT,
        description="Migrate a feature off a retiring model. Started by offramp.model.deprecation events; "
                    "run it by hand from the form (trigger: ui).",
        triggers=[DeploymentEventTrigger(
            name="on offramp.model.deprecation",
            expect={EVENT},
            match={"prefect.resource.id": "offramp.feature.*"},
            parameters=trigger_parameters(migrate_defaults),
        )],
        parameters=form_parameters(migrate_defaults),
        tags=["offramp"],
        entrypoint_type=EntrypointType.MODULE_PATH,  # a worker imports offramp; it needs no checkout
    )
    _schema_defaults(migrate, form_parameters(migrate_defaults)["params"])
    watcher = watch_deprecations.to_deployment(
        name=WATCH_DEPLOYMENT,
        description="Find features whose model retires within the horizon; emit one event per feature and model.",
        cron=cron,
        parameters={"params": watch.model_dump(mode="json")},
        tags=["offramp"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [migrate, watcher]


def serve(deployments: list, *, limit: int | None = None) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*deployments, limit=limit, print_starting_message=False)
