"""Errors a user can cause and fix. The CLI prints them as one paragraph and exits with code 2;
anything else is a bug and is not swallowed."""

from __future__ import annotations


class UserError(RuntimeError):
    """Bad input: the message names the file, the field or the model, what was expected, and what to do."""
