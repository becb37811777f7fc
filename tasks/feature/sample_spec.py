"""`data.samples` of a feature.yaml: logged production traffic (inputs, often what the incumbent
served and when), compared with the candidates after the held-out comparison. Samples carry no
gold: they never enter train, dev or test. The loader is `tasks/feature/samples.py`."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MAX_SAMPLES = 100


class SampleFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    format: Literal["csv", "jsonl"] | None = None  # inferred from the suffix when omitted


class SamplesSpec(BaseModel):
    """Where the logged traffic is and how to read it.
    - `columns`: one row per request; `columns` maps each signature input to a column (a dotted
      path into a JSON value is fine: `request.body.text`), `served_column` holds what the
      incumbent served, `timestamp_column` when, `id_column` an id (else file and line number).
    - `openai_chat`: one JSON object per line, `{"messages": [...], "response": ..., "created": ...}`
      (or `{"request": {"messages": ...}, "response": ...}`); the input is the last user message.
    - `litellm_spend_log`: rows of LiteLLM's `LiteLLM_SpendLogs` table (JSONL or CSV export):
      `messages`, `response` (JSON values or JSON strings), `startTime`, `request_id`, `status`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: list[SampleFile] = Field(min_length=1)
    format: Literal["columns", "openai_chat", "litellm_spend_log"] = "columns"
    columns: dict[str, str] | None = Field(default=None, description="`columns` format: signature input -> column (dotted path ok)")
    served_column: str | None = Field(default=None, min_length=1)
    timestamp_column: str | None = Field(default=None, min_length=1)
    id_column: str | None = Field(default=None, min_length=1)
    max_samples: int | None = Field(default=None, ge=1, description=f"cap on the sample (default {DEFAULT_MAX_SAMPLES})")

    @model_validator(mode="after")
    def _format_fields(self) -> SamplesSpec:
        if self.format == "columns" and not self.columns:
            raise ValueError("format `columns` needs `columns`: each signature input -> the column holding it")
        if self.format != "columns" and self.columns is not None:
            raise ValueError(f"`columns` is for format `columns`; format `{self.format}` reads the messages "
                             "(the last user message is the input)")
        if self.format != "columns" and self.served_column is not None:
            raise ValueError(f"`served_column` is for format `columns`; format `{self.format}` reads what was served "
                             "from the response")
        return self

    @property
    def cap(self) -> int:
        return self.max_samples or DEFAULT_MAX_SAMPLES


class Sample(BaseModel):
    """One logged request: its inputs (signature input -> value), what the incumbent served (parsed
    by the shipped prompt's parser; None when the log holds no answer or the parser cannot read it),
    the served text as logged, when it was served, and where it was read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    inputs: dict[str, Any]
    served: dict[str, Any] | None = None
    served_text: str | None = None
    timestamp: dt.datetime | None = None
    file: str
    line: int
