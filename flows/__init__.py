"""Prefect flows, the CLI and deployments: they compose tasks and do no work of their own."""
