"""How a migration run ends where people look: the flow run's final state (its name and message in
the Prefect UI's run list and run page) and one log line carry the decision.

Every study that ends with its evidence recorded ends COMPLETED (a Failed run would trigger
retries and failure alerts, and nothing failed: the study measured and judged). The state's *name*
tells the outcomes apart (Prefect: state types drive orchestration, names are for people):

- `Completed`, "Selected trial N (config): <why>"
- `No safe config`: no front config meets the policy (the least-bad one is named)
- `Spend cap reached`, `Endpoint down`, `All trials failed`: the study stopped short; the same
  command resumes it (or the report says why nothing could be measured)
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.states import Completed, State

MESSAGE_CHARS = 1000  # the run page shows the message whole; a decision fits in far fewer


def _config_of(summary: Any, trial_id: int | None) -> str | None:
    return next((t.label for t in summary.trials if t.trial_id == trial_id), None)


def decision(summary: Any) -> tuple[str, str]:
    """(state name, message) of a finished study (a `StudySummary`)."""
    sel = summary.selection or {}
    if summary.status == "stopped_by_budget":
        return "Spend cap reached", summary.notice or f"study {summary.study_id} stopped by its spend cap; raise it to resume"
    if summary.status == "provider_down":
        return "Endpoint down", f"study {summary.study_id} stopped: {summary.error}; the same run resumes it when the endpoint is back"
    if summary.status == "all_trials_failed":
        return "All trials failed", f"study {summary.study_id}: {summary.error}"
    reason = sel.get("reason") or "-"
    chosen = sel.get("trial_id")
    if chosen is not None:
        config = _config_of(summary, chosen)
        return "Completed", f"Selected trial {chosen}" + (f" ({config})" if config else "") + f": {reason}"
    return "No safe config", f"No config is safe to ship: {reason}"


def final_state(summary: Any) -> State:
    """The flow run's final state for `summary` (its data), and the decision as a log line."""
    name, message = decision(summary)
    message = message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"
    get_run_logger().info("decision (%s): %s", name, message)  # INFO: the CLI prints the report instead
    return Completed(data=summary, name=name, message=message)
