"""offramp's errors: one base, `OfframpError`, whose message is written for the person running
offramp. The CLI catches the base, prints the message and exits 2 (a traceback only with
`--debug`); anything else is a bug and is not swallowed.

Subclasses exist where a caller needs to tell them apart:

| error | raised when | who catches it |
|---|---|---|
| `UserError` | bad input: a file, a field, an option, a model id (the message names it) | the CLI |
| `SpaceError` | a search space file is missing or invalid | the CLI; `preflight` |
| `LocalModelError` | a bundled local model cannot be found, verified or started | the CLI |
| `WarehouseBusy` | the DuckDB file stayed locked by another process too long | the CLI |
| `SchemaError` | the warehouse's schema is newer than this offramp, or migration files are inconsistent | the CLI |
| `NoSuchStudy` | a study id that the warehouse does not hold | the CLI |
| `NoWarehouse` | a read of a warehouse file that does not exist yet | the CLI |
| `BudgetExceeded` | the spend cap refused a call (typed, also across DSPy's optimizers) | the trial, the study |
| `ProviderCallFailed` | a model call failed after the gateway's retries (recorded as a call with its error) | DSPy's optimizers |
| `EndpointDown` | an endpoint's circuit breaker is open: the study stops (`provider_down`), keeping its evidence | the search, the study |

This module imports nothing, so every layer (warehouse and search_spaces included) can use it.
"""

from __future__ import annotations


class OfframpError(Exception):
    """An error with a message for the user: what went wrong, where, and what to do."""


class UserError(OfframpError):
    """Bad input: the message names the file, the field or the model, what was expected, and what to do."""


class SpaceError(UserError):
    """A search space file is missing or invalid (the message names file and field)."""


class LocalModelError(OfframpError):
    """A user-facing problem with a local model; the message says what to do."""


class WarehouseBusy(OfframpError):
    """The warehouse file stayed locked by another process for longer than the caller was willing to wait."""


class SchemaError(OfframpError):
    """The migration files or the database's recorded schema are inconsistent."""


class NoSuchStudy(UserError):
    """The warehouse holds no study of that id."""


class NoWarehouse(UserError):
    """A read of a warehouse file that does not exist yet (nothing has been recorded there)."""


class BudgetExceeded(OfframpError):
    """A call was refused because its worst-case cost would break the spend cap."""


class ProviderCallFailed(OfframpError):
    """A model call failed after the gateway's retries (it is recorded as a call with its error)."""


class EndpointDown(OfframpError):
    """An endpoint failed too many calls in a row (connection errors, 5xx, timeouts): its circuit
    breaker is open, so calls to it fail at once and the study stops as `provider_down`."""
