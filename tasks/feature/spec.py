"""A feature: `features/<name>/feature.yaml` (validated by pydantic) plus its data files.

The spec says what the feature does (a signature: typed inputs -> typed outputs), how the shipped
version does it (the incumbent: instructions, model, settings), how to read its annotated examples
(CSV/JSONL files, a column per field, slice columns), how to score an answer (a metric) and how to
split the examples (seed and sizes). Every mistake is reported with the file, the field and what
was expected.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from offramp.errors import UserError
from offramp.search_spaces.schema import ModelEntry, Settings, split_model_entries
from offramp.search_spaces.validation import load_model, read_utf8
from offramp.util import content_hash

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputField(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str = ""


class OutputField(_Frozen):
    """An output: `label` (one of `labels`), `json` (an object matching `json_schema`),
    `number`, or free `text`."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: Literal["label", "json", "number", "text"]
    description: str = ""
    labels: list[str] | None = None
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _type_needs(self) -> OutputField:
        if self.type == "label":
            if not self.labels or len(self.labels) < 2:
                raise ValueError("a `label` output needs `labels`: a list of at least 2 label strings")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("`labels` has duplicates")
        elif self.labels is not None:
            raise ValueError(f"`labels` is only for type `label`, not `{self.type}`")
        if self.type == "json":
            if not self.json_schema or self.json_schema.get("type") != "object" or "properties" not in self.json_schema:
                raise ValueError("a `json` output needs `json_schema`: an object schema with `properties`")
        elif self.json_schema is not None:
            raise ValueError(f"`json_schema` is only for type `json`, not `{self.type}`")
        return self


class Signature(_Frozen):
    inputs: list[InputField] = Field(min_length=1)
    outputs: list[OutputField] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Signature:
        names = [f.name for f in self.inputs] + [f.name for f in self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"field names must be unique across inputs and outputs; repeated: {duplicates}")
        return self


class IncumbentConfig(_Frozen):
    """The shipped version. `model` is a litellm id, or a mapping like a search space's `models:`
    entry ({id, name, api_base, api_key_env, ...}): then `model` is its name and `endpoint` the declaration."""

    model: str = Field(min_length=1)
    endpoint: ModelEntry | None = None
    instructions: str = Field(min_length=1)
    settings: Settings = Settings()

    @model_validator(mode="before")
    @classmethod
    def _declared_model(cls, raw: object) -> object:
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
            [name], declared = split_model_entries([raw["model"]], "model", indexed=False)
            raw = {**raw, "model": name, "endpoint": declared[name]}
        return raw


class DataFile(_Frozen):
    path: str
    format: Literal["csv", "jsonl"] | None = None  # inferred from the suffix when omitted


class DataSpec(_Frozen):
    files: list[DataFile] = Field(min_length=1)
    columns: dict[str, str] = Field(description="signature field -> column in the data files")
    id_column: str | None = None
    slices: list[str] = Field(default_factory=list, description="columns whose values tag slices")


class MetricSpec(_Frozen):
    """A built-in metric by `name`, or a user function `function: "module:callable"` (the feature
    folder is importable) called as fn(gold: dict, prediction: dict | None) -> float in [0, 1]."""

    name: Literal["exact_match", "label_accuracy", "macro_f1", "json_f1", "numeric_match"] | None = None
    function: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    field: str | None = None
    tolerance: float = Field(default=1e-6, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> MetricSpec:
        if (self.name is None) == (self.function is None):
            raise ValueError("give exactly one of `name` (a built-in metric) or `function` (\"module:callable\")")
        return self


class SplitSpec(_Frozen):
    seed: int = 0
    train: Annotated[int, Field(ge=0)] = 200
    dev: Annotated[int, Field(ge=1)] = 100
    test: Annotated[int, Field(ge=1)] = 100


class FeatureSpec(_Frozen):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    signature: Signature
    incumbent: IncumbentConfig
    data: DataSpec
    metric: MetricSpec
    splits: SplitSpec = SplitSpec()
    search_space: str | None = Field(
        default=None,
        description="the search space a triggered migration uses: a YAML path relative to feature.yaml, or a name under search_spaces/",
    )

    @field_validator("metric", mode="before")
    @classmethod
    def _metric_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_checks(self) -> FeatureSpec:
        fields = {f.name for f in self.signature.inputs} | {f.name for f in self.signature.outputs}
        missing = sorted(fields - set(self.data.columns))
        if missing:
            raise ValueError(f"data.columns must map every signature field to a column; missing: {missing}")
        extra = sorted(set(self.data.columns) - fields)
        if extra:
            raise ValueError(f"data.columns maps fields that are not in the signature: {extra}")
        outputs = {f.name: f for f in self.signature.outputs}
        if self.metric.field is not None and self.metric.field not in outputs:
            raise ValueError(f"metric.field `{self.metric.field}` is not an output field ({sorted(outputs)})")
        if self.metric.name is not None:
            target = outputs[self.metric.field] if self.metric.field else self.signature.outputs[0]
            needs = {"label_accuracy": {"label"}, "macro_f1": {"label"}, "json_f1": {"json"}, "numeric_match": {"number"}}
            allowed = needs.get(self.metric.name)
            if allowed and target.type not in allowed:
                raise ValueError(f"metric `{self.metric.name}` needs a {'/'.join(sorted(allowed))} output; `{target.name}` is {target.type}")
        return self

    @property
    def target(self) -> OutputField:
        """The output field the metric scores (the first output unless `metric.field` says otherwise)."""
        outputs = {f.name: f for f in self.signature.outputs}
        return outputs[self.metric.field] if self.metric.field else self.signature.outputs[0]

    def spec_hash(self) -> str:
        dumped = self.model_dump(mode="json")
        if dumped["incumbent"].get("endpoint") is None:  # a plain id hashes as before endpoints existed
            dumped["incumbent"].pop("endpoint", None)
        return content_hash(dumped, compact=False)


class Example(_Frozen):
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    slices: dict[str, str] = {}


class Feature(_Frozen):
    """A loaded feature: its spec, where it lives, and its examples."""

    spec: FeatureSpec
    root: Path
    spec_path: Path
    examples: tuple[Example, ...]


class Splits(_Frozen):
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]


def load_spec(path: Path) -> FeatureSpec:
    """Read and validate a feature.yaml."""
    if not path.exists():
        raise UserError(f"{path}: no such file. A feature is a folder with a feature.yaml (see features/bank-support-routing).")
    return load_model(path, FeatureSpec, what="feature spec", error=UserError,
                      expected="fields (name, signature, incumbent, data, metric, splits)")


def _read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    text = read_utf8(path, error=UserError)
    if fmt == "csv":
        return _csv_rows(path, text)
    rows = []
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number} is not valid JSON ({exc.msg}); expected one JSON object per line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {number} is a {type(row).__name__}; expected a JSON object")
        rows.append(row)
    return rows


def _csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    """The rows of a CSV file; a row whose field count is not the header's is refused (csv's
    DictReader would file extra fields under the key None and fill missing ones with None)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    for number, row in enumerate(reader, start=1):
        extra = row.get(None)
        missing = [k for k, v in row.items() if v is None]
        if extra or missing:
            count = len(reader.fieldnames) + len(extra or []) - len(missing)
            raise UserError(
                f"{path}: row {number} (line {reader.line_num}) has {count} fields, but the header has "
                f"{len(reader.fieldnames)} ({', '.join(reader.fieldnames)}); expected one value per header column "
                "(quote a value that holds a comma)"
            )
        rows.append(row)
    return rows


def _coerce_output(field: OutputField, value: Any, where: str) -> Any:
    if field.type == "json" and isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise UserError(f"{where}: column for `{field.name}` must hold a JSON object, got {value[:60]!r}") from None
    if field.type == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: column for `{field.name}` must hold a number, got {value!r}") from None
    if field.type == "label" and value not in field.labels:
        raise UserError(f"{where}: `{field.name}` value {value!r} is not one of signature labels {field.labels}")
    return value


def load_feature(folder: Path | str) -> Feature:
    """Load `folder/feature.yaml` and its examples; raise UserError naming file and field on any problem."""
    root = Path(folder).expanduser().resolve()
    spec_path = root / "feature.yaml" if root.is_dir() or not root.suffix else root
    root = spec_path.parent
    spec = load_spec(spec_path)
    outputs = {f.name: f for f in spec.signature.outputs}
    examples: list[Example] = []
    for data_file in spec.data.files:
        path = (root / data_file.path).resolve()
        if not path.exists():
            raise UserError(f"{spec_path}: field `data.files.path`: data file {path} does not exist")
        fmt = data_file.format or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
        if fmt is None:
            raise UserError(f"{spec_path}: field `data.files.format`: cannot tell the format of {path.name}; set format: csv or jsonl")
        rows = _read_rows(path, fmt)
        needed = list(spec.data.columns.values()) + spec.data.slices + ([spec.data.id_column] if spec.data.id_column else [])
        for number, row in enumerate(rows, start=1):
            absent = [c for c in needed if c not in row]
            if absent:
                raise UserError(
                    f"{spec_path}: field `data.columns`: {path.name} row {number} has no column(s) {absent} "
                    f"(its columns: {sorted(row)})"
                )
            where = f"{path.name} row {number}"
            example_id = str(row[spec.data.id_column]) if spec.data.id_column else f"{path.stem}-{number}"
            examples.append(
                Example(
                    id=example_id,
                    inputs={f.name: row[spec.data.columns[f.name]] for f in spec.signature.inputs},
                    outputs={n: _coerce_output(f, row[spec.data.columns[n]], where) for n, f in outputs.items()},
                    slices={s: str(row[s]) for s in spec.data.slices},
                )
            )
    if not examples:
        raise UserError(f"{spec_path}: field `data.files`: the data files hold no examples")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise UserError(f"{spec_path}: field `data.id_column`: example ids are not unique")
    return Feature(spec=spec, root=root, spec_path=spec_path, examples=tuple(examples))


def split_examples(feature: Feature, *, max_examples: int | None = None, seed: int | None = None) -> Splits:
    """Fixed-seed train/dev/test splits. `max_examples` caps dev and test (a quick run);
    train keeps its size. Disjoint by construction."""
    spec = feature.spec.splits
    sizes = (spec.train, min(spec.dev, max_examples or spec.dev), min(spec.test, max_examples or spec.test))
    if sum(sizes) > len(feature.examples):
        raise UserError(
            f"{feature.spec_path}: field `splits`: train+dev+test = {sum(sizes)} examples requested, "
            f"but the data holds {len(feature.examples)}"
        )
    order = list(feature.examples)
    random.Random(spec.seed if seed is None else seed).shuffle(order)
    train = tuple(order[: sizes[0]])
    dev = tuple(order[sizes[0] : sizes[0] + sizes[1]])
    test = tuple(order[sizes[0] + sizes[1] : sum(sizes)])
    return Splits(train=train, dev=dev, test=test)
