"""Prefect flows, the CLI and the study life cycle (compose tasks; do no work of their own)."""

import tasks  # noqa: F401  - sets the offline litellm price map before anything imports litellm
