"""A feature: `features/<name>/feature.yaml` (validated by pydantic) plus its data files.

The spec says what the feature does (a signature: typed inputs -> typed outputs), how the shipped
version does it (the incumbent: instructions, model, settings), how to read its annotated examples
(CSV/JSONL files, a column per field, slice columns), how to score an answer (a metric) and how to
split the examples (seed and sizes). Every mistake is reported with the file, the field and what
was expected.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from offramp.errors import UserError
from offramp.search_spaces.schema import ModelEntry, Settings, split_model_entries
from offramp.search_spaces.validation import load_model
from offramp.tasks.feature.rows import read_rows, slice_file_ids
from offramp.tasks.feature.sample_spec import Sample, SamplesSpec
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


def declared_model(raw: object) -> object:
    """`model:` given as a mapping (an endpoint, as in a space's `models:`): its name, and `endpoint`."""
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        [name], declared = split_model_entries([raw["model"]], "model", indexed=False)
        raw = {**raw, "model": name, "endpoint": declared[name]}
    return raw


class IncumbentConfig(_Frozen):
    """The shipped config. Its demos: `settings.demos: N` draws N examples from offramp's own train
    split (seeded); `demos:` gives the exact examples the shipped prompt holds instead: a list of
    example ids of the data, or a CSV/JSONL file (relative to feature.yaml) with the feature's
    columns. Exact demos never enter train, dev or test (see `split_examples`).
    `model` is a litellm id, or a mapping like a search space's `models:` entry ({id, name, api_base,
    api_key_env, ...}): then `model` is its name and `endpoint` the declaration."""

    model: str = Field(min_length=1)
    endpoint: ModelEntry | None = None
    instructions: str = Field(min_length=1)
    settings: Settings = Settings()
    demos: list[str] | str | None = Field(
        default=None, description="the shipped prompt's exact demos: example ids of the data, or a CSV/JSONL file"
    )

    @model_validator(mode="after")
    def _one_way_to_demos(self) -> IncumbentConfig:
        n = len(self.demos) if isinstance(self.demos, list) else None
        if self.demos is not None and self.settings.demos and n is not None and self.settings.demos != n:
            # equal counts are fine: a loaded feature carries its shipped demos' count (and is stored so)
            raise ValueError(f"`settings.demos` is {self.settings.demos} (N drawn from train), but `demos` lists {n} exact "
                             "examples: give one of them")
        if isinstance(self.demos, list) and (not self.demos or len(set(self.demos)) != len(self.demos)):
            raise ValueError("`demos` as a list needs at least one example id, without repeats")
        if self.settings.adapter is not None:
            raise ValueError("`settings.adapter` is for DSPy strategies in a search space; the incumbent is the shipped "
                             "prompt, read by its own parser: remove it")
        return self

    @model_validator(mode="before")
    @classmethod
    def _declared_model(cls, raw: object) -> object:
        return declared_model(raw)


class DataFile(_Frozen):
    path: str
    format: Literal["csv", "jsonl"] | None = None  # inferred from the suffix when omitted


class UnlabeledSpec(_Frozen):
    """Inputs without gold labels and what the incumbent answered them (its recorded outputs, e.g. a
    production log): a tuned model learns from them ("taught" labels) beside train's gold labels."""

    files: list[DataFile] = Field(min_length=1)
    served_column: str = Field(min_length=1, description="the column holding the incumbent's recorded answer")


class SliceFile(_Frozen):
    """A declared slice given as a list of example ids (`offramp slices save` writes one from a
    discovered slice): a CSV with an `example_id` column; listed examples get slice tag `name`=yes,
    the others `name`=no."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    path: str = Field(min_length=1)


class DataSpec(_Frozen):
    files: list[DataFile] = Field(min_length=1)
    columns: dict[str, str] = Field(description="signature field -> column in the data files")
    id_column: str | None = None
    slices: list[str] = Field(default_factory=list, description="columns whose values tag slices")
    unlabeled: UnlabeledSpec | None = None
    slice_files: list[SliceFile] = Field(default_factory=list, description="slices declared as lists of example ids")
    samples: SamplesSpec | None = None  # logged production traffic (tasks/feature/samples.py): never in train/dev/test

    @model_validator(mode="after")
    def _slice_names(self) -> DataSpec:
        names = [f.name for f in self.slice_files]
        clash = sorted({n for n in names if names.count(n) > 1 or n in self.slices})
        if clash:
            raise ValueError(f"`slice_files` names must be unique and differ from `slices` columns; repeated: {clash}")
        return self


class HumanJudgements(_Frozen):
    """Judgements people made of the feature's answers (a JSONL file relative to feature.yaml),
    to calibrate the judge against (used by the calibration step, not by scoring)."""

    path: str = Field(min_length=1)


class JudgeSpec(_Frozen):
    """`metric.judge`: a model scores the answers (tasks/feature/judge.py). `rubric`: against the
    `instructions` (and each of `criteria`, pass/fail); `pairwise`: the candidate's answer against
    the incumbent's to the same input, asked in both orders. `model` is a litellm id, or a mapping
    like `incumbent.model` accepts: then `model` is its name and `endpoint` the declaration."""

    mode: Literal["rubric", "pairwise"]
    model: str = Field(min_length=1)
    endpoint: ModelEntry | None = None
    instructions: str = Field(min_length=1)
    criteria: list[Annotated[str, Field(min_length=1)]] | None = None
    scale: Literal["pass_fail", "five_point"] = "pass_fail"
    settings: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0, "max_tokens": 16})
    human_judgements: HumanJudgements | None = None

    @model_validator(mode="before")
    @classmethod
    def _declared_model(cls, raw: object) -> object:
        return declared_model(raw)

    @model_validator(mode="after")
    def _mode_fields(self) -> JudgeSpec:
        if self.mode == "pairwise" and self.criteria is not None:
            raise ValueError("`criteria` is for mode `rubric` (each judged pass/fail); a pairwise judge picks the better "
                             "answer by `instructions`: remove `criteria` or use mode: rubric")
        if self.mode == "pairwise" and self.scale != "pass_fail":
            raise ValueError("`scale` is for mode `rubric`; a pairwise judge answers A, B or tie: remove `scale`")
        if self.criteria is not None and not self.criteria:
            raise ValueError("`criteria` is empty: list at least one criterion, or remove it for one overall verdict")
        if self.criteria and self.scale != "pass_fail":
            raise ValueError("`criteria` are each judged pass/fail: use scale: pass_fail (five_point is for one overall verdict)")
        unknown = sorted(set(self.settings) - {"temperature", "max_tokens", "top_p", "seed"})
        if unknown:
            raise ValueError(f"`settings` may hold temperature, max_tokens, top_p, seed; unknown: {unknown}")
        return self

    def calls_per_example(self) -> int:
        """Judge calls per judged answer: 2 (both orders) pairwise, one per criterion (or 1) rubric."""
        return 2 if self.mode == "pairwise" else len(self.criteria or [None])


class MetricSpec(_Frozen):
    """A built-in metric by `name`, a user function `function: "module:callable"` (the feature
    folder is importable) called as fn(gold: dict, prediction: dict | None) -> float in [0, 1],
    or a `judge` (a model scores the answers; no gold needed)."""

    name: Literal["exact_match", "label_accuracy", "macro_f1", "json_f1", "numeric_match"] | None = None
    function: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    judge: JudgeSpec | None = None
    field: str | None = None
    tolerance: float = Field(default=1e-6, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> MetricSpec:
        if sum(x is not None for x in (self.name, self.function, self.judge)) != 1:
            raise ValueError("give exactly one of `name` (a built-in metric), `function` (\"module:callable\") or `judge` "
                             "(a model judges the answers)")
        return self


SplitName = Literal["train", "dev", "test"]
DEFAULT_SPLIT_VALUES: dict[str, SplitName] = {
    "train": "train", "dev": "dev", "validation": "dev", "val": "dev", "valid": "dev", "test": "test",
}
DRAWN_SIZES = {"train": 200, "dev": 100, "test": 100}


class SplitSpec(_Frozen):
    """How examples are split. Drawn (no `column`): `train`/`dev`/`test` examples (default 200/100/100),
    seeded, stratified by the first of `data.slices`. From a column: each row's split is the value
    of `column`, mapped by `values` (default: train; dev, validation, val, valid; test, case
    ignored); sizes, when given, cap each split (a seeded, stratified sample of it)."""

    seed: int = 0
    train: Annotated[int, Field(ge=0)] | None = None
    dev: Annotated[int, Field(ge=1)] | None = None
    test: Annotated[int, Field(ge=1)] | None = None
    column: str | None = Field(default=None, min_length=1, description="a data column holding each row's split")
    values: dict[str, SplitName] | None = Field(default=None, description="column value -> train | dev | test")

    @model_validator(mode="after")
    def _values_need_column(self) -> SplitSpec:
        if self.values is not None and self.column is None:
            raise ValueError("`values` maps the values of `column`: give `column` too")
        return self

    def split_of(self, value: Any) -> SplitName | None:
        """The split a value of `column` names (None: it maps to none)."""
        if self.values is not None:
            return self.values.get(str(value).strip())
        return DEFAULT_SPLIT_VALUES.get(str(value).strip().lower())

    def size(self, name: str) -> int | None:
        """The size of a split: its cap (None: all of the column's) or, when drawn, its size."""
        given = getattr(self, name)
        return given if given is not None or self.column else DRAWN_SIZES[name]


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
        # a judge needs no gold: the judged output's column may be left out
        optional = {self.metric.field or self.signature.outputs[0].name} if self.metric.judge is not None else set()
        missing = sorted(fields - set(self.data.columns) - optional)
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
    def has_gold(self) -> bool:
        """Whether the examples carry the target's gold answer (a judged feature may omit its column)."""
        return self.target.name in self.data.columns

    @property
    def target(self) -> OutputField:
        """The output field the metric scores (the first output unless `metric.field` says otherwise)."""
        outputs = {f.name: f for f in self.signature.outputs}
        return outputs[self.metric.field] if self.metric.field else self.signature.outputs[0]

    def spec_hash(self) -> str:
        dumped = self.model_dump(mode="json")
        if dumped["incumbent"].get("endpoint") is None:  # a plain id hashes as before endpoints existed
            dumped["incumbent"].pop("endpoint", None)
        if dumped["data"].get("unlabeled") is None:  # likewise a feature without unlabeled inputs
            dumped["data"].pop("unlabeled", None)
        if not dumped["data"].get("slice_files"):  # likewise a feature without slice files
            dumped["data"].pop("slice_files", None)
        if dumped["data"].get("samples") is None:  # likewise a feature without production samples
            dumped["data"].pop("samples", None)
        if dumped["metric"].get("judge") is None:  # and a feature without a judge
            dumped["metric"].pop("judge", None)
        return content_hash(dumped, compact=False)


class Example(_Frozen):
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    slices: dict[str, str] = {}
    split: SplitName | None = None  # from `splits.column`, when the data comes split


class Feature(_Frozen):
    """A loaded feature: its spec, where it lives, and its examples."""

    spec: FeatureSpec
    root: Path
    spec_path: Path
    examples: tuple[Example, ...]
    shipped_demos: tuple[Example, ...] = ()  # `incumbent.demos`: the shipped prompt's exact examples
    # `data.unlabeled`: inputs with the incumbent's recorded answer as their output (raw text, not gold)
    unlabeled: tuple[Example, ...] = ()
    # `data.samples`: logged production inputs and what the incumbent served (no gold; tasks/feature/samples.py)
    samples: tuple[Sample, ...] = ()


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


def _file_format(spec_path: Path, path: Path, given: str | None, field: str) -> str:
    fmt = given or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{spec_path}: field `{field}`: cannot tell the format of {path.name}; expected a .csv or .jsonl file")
    return fmt


def _examples(spec: FeatureSpec, spec_path: Path, path: Path, fmt: str, field: str, *, data: bool) -> list[Example]:
    """The examples of one file. Data files also carry slices and, with `splits.column`, each
    row's split; a demos file needs only the signature's columns (and the id column if it has one)."""
    rows = read_rows(path, fmt)
    outputs = {f.name: f for f in spec.signature.outputs}
    split_column = spec.splits.column if data else None
    needed = list(spec.data.columns.values()) + (spec.data.slices if data else []) + ([split_column] if split_column else [])
    examples = []
    for number, row in enumerate(rows, start=1):
        absent = [c for c in [*needed, *([spec.data.id_column] if data and spec.data.id_column else [])] if c not in row]
        if absent:
            raise UserError(f"{spec_path}: field `{field}`: {path.name} row {number} has no column(s) {absent} (its columns: {sorted(row)})")
        split = None
        if split_column:
            split = spec.splits.split_of(row[split_column])
            if split is None:
                raise UserError(
                    f"{spec_path}: field `splits.values`: {path.name} row {number} has {split_column} = {row[split_column]!r}, "
                    f"which maps to no split; expected {sorted(spec.splits.values) if spec.splits.values else sorted(DEFAULT_SPLIT_VALUES)}"
                    " (map it in `splits.values`)"
                )
        where = f"{path.name} row {number}"
        has_id = spec.data.id_column and spec.data.id_column in row
        examples.append(Example(
            id=str(row[spec.data.id_column]) if has_id else f"{path.stem}-{number}",
            inputs={f.name: row[spec.data.columns[f.name]] for f in spec.signature.inputs},
            outputs={n: _coerce_output(f, row[spec.data.columns[n]], where) for n, f in outputs.items() if n in spec.data.columns},
            slices={s: str(row[s]) for s in spec.data.slices} if data else {}, split=split,
        ))
    return examples


def _shipped_demos(spec: FeatureSpec, spec_path: Path, examples: list[Example]) -> tuple[Example, ...]:
    """`incumbent.demos`: the data's examples with those ids (in that order), or a file's examples."""
    demos = spec.incumbent.demos
    if demos is None:
        return ()
    if isinstance(demos, list):
        by_id = {e.id: e for e in examples}
        unknown = [d for d in demos if d not in by_id]
        if unknown:
            raise UserError(f"{spec_path}: field `incumbent.demos`: no example has id {unknown[:5]}; expected ids of the data's "
                            f"`{spec.data.id_column or 'id'}` column" + ("" if spec.data.id_column else " (set `data.id_column`)"))
        return tuple(by_id[d] for d in demos)
    path = (spec_path.parent / demos).resolve()
    if not path.is_file():
        raise UserError(f"{spec_path}: field `incumbent.demos`: {path} does not exist; expected a list of example ids or a CSV/JSONL file")
    found = _examples(spec, spec_path, path, _file_format(spec_path, path, None, "incumbent.demos"), "incumbent.demos", data=False)
    if not found:
        raise UserError(f"{spec_path}: field `incumbent.demos`: {path.name} holds no examples")
    return tuple(found)


def load_feature(folder: Path | str) -> Feature:
    """Load `folder/feature.yaml` and its examples; raise UserError naming file and field on any problem."""
    root = Path(folder).expanduser().resolve()
    spec_path = root / "feature.yaml" if root.is_dir() or not root.suffix else root
    root = spec_path.parent
    spec = load_spec(spec_path)
    examples: list[Example] = []
    for data_file in spec.data.files:
        path = (root / data_file.path).resolve()
        if not path.exists():
            raise UserError(f"{spec_path}: field `data.files.path`: data file {path} does not exist")
        examples += _examples(spec, spec_path, path, _file_format(spec_path, path, data_file.format, "data.files.format"),
                              "data.columns", data=True)
    if not examples:
        raise UserError(f"{spec_path}: field `data.files`: the data files hold no examples")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise UserError(f"{spec_path}: field `data.id_column`: example ids are not unique")
    examples = _tag_slice_files(spec, spec_path, root, examples)
    judge = spec.metric.judge
    if judge is not None and judge.human_judgements is not None and not (root / judge.human_judgements.path).is_file():
        raise UserError(f"{spec_path}: field `metric.judge.human_judgements.path`: {(root / judge.human_judgements.path).resolve()} "
                        "does not exist; expected a JSONL file of human judgements, relative to feature.yaml")
    shipped = _shipped_demos(spec, spec_path, examples)
    if shipped:  # the shipped prompt shows exactly these: its demo count is theirs
        inc = spec.incumbent
        if inc.settings.demos not in (0, len(shipped)):
            raise UserError(f"{spec_path}: field `incumbent.settings.demos`: {inc.settings.demos} demos drawn from train, but "
                            f"`incumbent.demos` gives {len(shipped)} exact examples; expected one of them")
        settings = inc.settings.model_copy(update={"demos": len(shipped)})
        spec = spec.model_copy(update={"incumbent": inc.model_copy(update={"settings": settings})})
    from offramp.tasks.feature.samples import load_samples  # it parses served answers with the prompts module

    return Feature(spec=spec, root=root, spec_path=spec_path, examples=tuple(examples), shipped_demos=shipped,
                   unlabeled=_unlabeled(spec, spec_path, root), samples=load_samples(spec, spec_path, root))


def _tag_slice_files(spec: FeatureSpec, spec_path: Path, root: Path, examples: list[Example]) -> list[Example]:
    """`data.slice_files`: each listed example gets slice tag NAME=yes, every other NAME=no."""
    for number, sf in enumerate(spec.data.slice_files):
        field = f"data.slice_files[{number}].path"
        path = (root / sf.path).resolve()
        if not path.is_file():
            raise UserError(f"{spec_path}: field `{field}`: {path} does not exist; expected a CSV with an `example_id` column")
        ids = slice_file_ids(path, spec_path, field, {e.id for e in examples})
        examples = [e.model_copy(update={"slices": {**e.slices, sf.name: "yes" if e.id in ids else "no"}}) for e in examples]
    return examples


def _unlabeled(spec: FeatureSpec, spec_path: Path, root: Path) -> tuple[Example, ...]:
    """`data.unlabeled`: each row's inputs (by `data.columns`) and its served answer as the target's
    output (the text the incumbent gave; the tuned strategy parses it)."""
    if spec.data.unlabeled is None:
        return ()
    column = spec.data.unlabeled.served_column
    needed = [spec.data.columns[f.name] for f in spec.signature.inputs] + [column]
    found = []
    for data_file in spec.data.unlabeled.files:
        path = (root / data_file.path).resolve()
        if not path.exists():
            raise UserError(f"{spec_path}: field `data.unlabeled.files.path`: data file {path} does not exist")
        for number, row in enumerate(read_rows(path, _file_format(spec_path, path, data_file.format, "data.unlabeled.files.format")), 1):
            absent = [c for c in needed if c not in row]
            if absent:
                raise UserError(f"{spec_path}: field `data.unlabeled`: {path.name} row {number} has no column(s) {absent} "
                                f"(its columns: {sorted(row)})")
            found.append(Example(id=f"{path.stem}-{number}", inputs={f.name: row[spec.data.columns[f.name]] for f in spec.signature.inputs},
                                 outputs={spec.target.name: "" if row[column] is None else str(row[column])}))
    return tuple(found)


def _stratified_order(examples: list[Example], slice_field: str | None, rng: random.Random) -> list[Example]:
    """`examples` in an order whose every prefix holds each slice in about its share of the whole
    (shuffled within a slice, then interleaved by position within its slice), so consecutive
    chunks of it are stratified samples."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        groups[e.slices.get(slice_field, "") if slice_field else ""].append(e)
    keyed = []
    for name in sorted(groups):
        group = groups[name]
        rng.shuffle(group)
        offset = rng.random()
        keyed += [((i + offset) / len(group), rng.random(), e) for i, e in enumerate(group)]
    return [e for *_, e in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _is_shipped(feature: Feature):
    ids = {d.id for d in feature.shipped_demos}
    inputs = {json.dumps(d.inputs, sort_keys=True, default=str) for d in feature.shipped_demos}
    return lambda e: e.id in ids or json.dumps(e.inputs, sort_keys=True, default=str) in inputs


def split_examples(feature: Feature, *, max_examples: int | None = None, seed: int | None = None) -> Splits:
    """Fixed-seed train/dev/test splits, disjoint by construction. The shipped prompt's exact demos
    (`incumbent.demos`, matched by id or by identical inputs) are in none of them: scoring the
    incumbent on its own demos would flatter it, and a strategy learning from them would copy it.
    Drawn splits are stratified by the first slice; with `splits.column` each row keeps its split
    (a size caps it). `max_examples` caps dev and test (a quick run); train keeps its size."""
    spec = feature.spec.splits
    rng = random.Random(spec.seed if seed is None else seed)
    shipped = _is_shipped(feature)
    pool = [e for e in feature.examples if not shipped(e)]
    first_slice = feature.spec.data.slices[0] if feature.spec.data.slices else None
    caps = {n: spec.size(n) for n in ("train", "dev", "test")}
    for name in ("dev", "test"):
        if max_examples:
            caps[name] = min(caps[name] or max_examples, max_examples)
    if spec.column is None:
        if sum(caps.values()) > len(pool):
            raise UserError(
                f"{feature.spec_path}: field `splits`: train+dev+test = {sum(caps.values())} examples requested, but the data holds "
                f"{len(pool)}" + (f" (after setting aside the {len(feature.shipped_demos)} shipped demos)" if feature.shipped_demos else "")
            )
        order = _stratified_order(pool, first_slice, rng)
        train, dev = caps["train"], caps["dev"]
        return Splits(train=tuple(order[:train]), dev=tuple(order[train:train + dev]), test=tuple(order[train + dev:train + dev + caps["test"]]))
    chosen = {}
    for name in ("train", "dev", "test"):
        members = [e for e in pool if e.split == name]
        if name != "train" and not members:
            raise UserError(f"{feature.spec_path}: field `splits.column`: no row of column `{spec.column}` is in the {name} split "
                            f"(after setting aside shipped demos); expected at least one {name} row")
        chosen[name] = tuple(_stratified_order(members, first_slice, rng)[:caps[name]])
    return Splits(**chosen)
