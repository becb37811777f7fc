"""Before a study pays for anything: load and check the feature, the search space, every model's
price and route, the Optuna storage; start the local models it needs; open (or resume) the
study's record.

`preflight` runs twice on purpose: from the CLI before Prefect starts (bad input fails fast, with
a message naming file and field), and as the flow's first task (a deployment run has no CLI).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import optuna
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from offramp.errors import SpaceError, UserError
from offramp.search_spaces.schema import Config, ModelEntry, Price, SearchSpace, load_space
from offramp.tasks.evidence.policy import SelectionPolicy, load_policy
from offramp.tasks.feature.metrics import build_metric
from offramp.tasks.feature.spec import Feature, Splits, load_feature, split_examples
from offramp.tasks.gateway import local_models, model_leases
from offramp.tasks.gateway.llm import LOCAL_PREFIX
from offramp.tasks.gateway.models import model_identity, routable
from offramp.tasks.gateway.plugins import load_plugins
from offramp.tasks.gateway.prices import PriceBook, load_price_file
from offramp.tasks.study.probe import unroutable_fix
from offramp.util import safe_url
from offramp.warehouse import Warehouse, records, state_dir


@dataclasses.dataclass(frozen=True)
class StudyInputs:
    """What a study is asked to do, as values (the flow's parameters, resolved)."""

    feature_dir: str
    deprecated_model: str | None = None
    space: str | None = None  # a YAML path or a name under search_spaces/; None: the feature's, else local-zoo
    replacement_model: str | None = None
    prices_file: str | None = None
    storage_url: str | None = None  # Optuna RDB storage; None: sqlite in the state dir
    max_examples: int | None = None  # caps dev and test (the split sizes preflight checks)
    seed: int | None = None  # the split/demo seed; None: the feature's `splits.seed`
    policy: SelectionPolicy = SelectionPolicy()
    policy_file: str | None = None  # a YAML of the policy's fields; given, it replaces `policy`

    @property
    def optuna_storage(self) -> str:
        return self.storage_url or f"sqlite:///{state_dir() / 'optuna.db'}"


@dataclasses.dataclass(frozen=True)
class Prepared:
    feature: Feature
    space: SearchSpace  # with the provider's replacement model among the candidates, when it can be priced
    prices: dict[str, Price]  # declared prices (the space's and the --prices file's)
    seed: int  # the study's split/demo seed
    splits: Splits  # train / dev / test, drawn once with that seed
    endpoints: dict[str, ModelEntry] = dataclasses.field(default_factory=dict)  # declared models by name (no keys)
    price_sources: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> where its price comes from
    policy: SelectionPolicy = SelectionPolicy()  # the selection policy the study applies
    policy_source: str | None = None  # the file it came from (None: the flow's parameters)


def preflight(inputs: StudyInputs) -> Prepared:
    """Load and check everything a study needs before a single call is paid: feature, metric,
    search space, a price for every model, the local models named, the Optuna storage."""
    load_plugins()
    feature = load_feature(inputs.feature_dir)
    build_metric(feature)  # imports a user metric now, not mid-study
    space, space_file = _load_space(inputs.space, feature)
    incumbent = feature.spec.incumbent.model
    if inputs.deprecated_model and model_identity(inputs.deprecated_model) != model_identity(
        feature.spec.incumbent.endpoint.id if feature.spec.incumbent.endpoint else incumbent
    ) and inputs.deprecated_model != incumbent:
        raise UserError(
            f"{feature.spec_path}: field `incumbent.model` is {incumbent!r}, but the deprecated model given is "
            f"{inputs.deprecated_model!r}: this feature does not use it, so there is nothing to migrate"
        )
    endpoints = _endpoints(space, space_file, feature)
    file_prices = load_price_file(inputs.prices_file) if inputs.prices_file else {}
    overrides = {**file_prices, **space.prices}
    sources = {**{m: f"--prices {inputs.prices_file}" for m in file_prices},
               **{m: f"search space {space_file}: prices" for m in space.prices}}
    prices = PriceBook(overrides, endpoints, sources)
    problems = []
    for model in dict.fromkeys([incumbent, *space.models, *space.optimizer_models()]):
        try:
            _check_model(model, prices)
        except UserError as exc:
            problems.append(str(exc))
    judge = judge_model(feature)
    if judge is not None:
        try:
            _check_model(judge, prices)
        except UserError as exc:
            problems.append(f"{feature.spec_path}: field `metric.judge.model`: {exc}")
    if problems:
        raise UserError(" ".join(problems))
    space = _with_replacement(space, inputs.replacement_model, incumbent, prices)
    if not [m for m in space.models if m != incumbent]:
        raise UserError(f"search space {space.name!r}: every model in it is the retiring one ({incumbent}); add candidates")
    seed = feature.spec.splits.seed if inputs.seed is None else inputs.seed
    splits = split_examples(feature, max_examples=inputs.max_examples, seed=seed)  # the sizes fit the data
    inc = feature.spec.incumbent
    check_judged(feature, space)
    check_train_size(feature, space, Config(model=inc.model, instructions=inc.instructions, settings=inc.settings),
                     len(splits.train))
    open_storage(inputs.optuna_storage)
    price_sources = {m: prices.source(m) for m in dict.fromkeys([incumbent, *space.models, *space.optimizer_models(),
                                                                  *([judge] if judge else [])])}
    policy, source = resolve_policy(inputs)
    return Prepared(feature, space, overrides, seed, splits, endpoints, price_sources, policy, source)


def resolve_policy(inputs: StudyInputs) -> tuple[SelectionPolicy, str | None]:
    """(the policy, the file it came from): the policy file when one is given, else the values."""
    if inputs.policy_file is None:
        return inputs.policy, None
    if inputs.policy != SelectionPolicy():
        raise UserError(f"policy file {inputs.policy_file} and policy values both given: give one (field `policy_file` or `policy`)")
    source = str(Path(inputs.policy_file).expanduser().resolve())
    return load_policy(source), source


@task(cache_policy=NO_CACHE)
def prepare(inputs: StudyInputs) -> Prepared:
    """The flow's first step: `preflight`, on the flow's side of Prefect."""
    return preflight(inputs)


def _check_model(model: str, prices: PriceBook) -> None:
    zoo = local_models.zoo()
    if model.startswith(LOCAL_PREFIX) and model[len(LOCAL_PREFIX) :] not in zoo:
        raise UserError(f"model {model!r}: no such local model; known: {sorted('local/' + a for a in zoo)}")
    try:
        prices.check(model)
    except UserError as exc:
        litellm_id = prices.litellm_id(model)
        if routable(litellm_id):
            raise
        raise UserError(f"{exc} Also, {unroutable_fix(model, litellm_id)}.") from None


def _endpoints(space: SearchSpace, space_file: str, feature: Feature) -> dict[str, ModelEntry]:
    """The declared models, the space's and the incumbent's, by name. Each declared key variable
    must be set (in this process: a deployment's worker must have it too); its value is never kept."""
    endpoints = dict(space.endpoints)
    inc = feature.spec.incumbent
    judge = feature.spec.metric.judge
    if judge is not None and judge.endpoint is not None:
        if judge.model in endpoints and endpoints[judge.model] != judge.endpoint:
            raise UserError(f"{feature.spec_path}: field `metric.judge.model`: {judge.model!r} is declared differently in "
                            f"search space {space_file}; give one of them another `name`")
        endpoints[judge.model] = judge.endpoint
    if inc.endpoint is not None:
        if inc.model in endpoints and endpoints[inc.model] != inc.endpoint:
            raise UserError(f"{feature.spec_path}: field `incumbent.model`: {inc.model!r} is declared differently in "
                            f"search space {space_file}; give one of them another `name`")
        endpoints[inc.model] = inc.endpoint
    for name, entry in endpoints.items():
        if entry.api_key_env and not os.environ.get(entry.api_key_env):
            where = f"{feature.spec_path}: field `incumbent.model`" if name == inc.model and inc.endpoint else (
                f"{feature.spec_path}: field `metric.judge.model`" if judge is not None and name == judge.model else
                f"search space {space_file}: field `models` ({name})")
            raise UserError(f"{where}: environment variable {entry.api_key_env} (its `api_key_env`) is not set; "
                            f"export the key of {name!r} in it (keys are read from the environment only)")
    return endpoints


def _load_space(ref: str | None, feature: Feature) -> tuple[SearchSpace, str]:
    """The space asked for, else the feature's own `search_space` (relative to its feature.yaml),
    else the bundled local zoo; and how to name its file in messages."""
    if ref is None and feature.spec.search_space:
        relative = feature.spec_path.parent / feature.spec.search_space
        ref = str(relative) if relative.exists() else feature.spec.search_space
    try:
        return load_space(ref or "local-zoo"), ref or "local-zoo"
    except SpaceError as exc:
        raise UserError(str(exc)) from None


def _with_replacement(space: SearchSpace, replacement: str | None, incumbent: str, prices: PriceBook) -> SearchSpace:
    """The provider's suggested successor joins the candidates when offramp can call and price it;
    otherwise the study goes on without it (a triggered run should not die on a vendor's hint)."""
    if not replacement or replacement in space.models or replacement == incumbent:
        return space
    try:
        _check_model(replacement, prices)
    except UserError as exc:
        logging.getLogger("offramp").warning("replacement model %s left out of the search: %s", replacement, exc)
        return space
    return space.model_copy(update={"models": [*space.models, replacement]})


def check_train_size(feature: Feature, space: SearchSpace, incumbent: Config, n_train: int) -> None:
    """Refuse a train split too small for the incumbent's demos or a strategy of the space."""
    if incumbent.settings.demos > n_train and not feature.shipped_demos:
        raise UserError(f"{feature.spec_path}: field `splits.train`: {n_train} train examples, but the incumbent "
                        f"shows {incumbent.settings.demos} demos")
    for strategy in space.strategy_variants():
        if strategy.kind.own_model and feature.spec.target.type != "label":
            raise UserError(f"search space {space.name!r}: field `strategies.{strategy.name}`: it trains a classifier, which "
                            f"needs a label output; {feature.spec_path}'s `{feature.spec.target.name}` is {feature.spec.target.type}"
                            f" (tuning a model for {feature.spec.target.type} output, e.g. LoRA, is not built: see README "
                            "\"Tune our own\"); remove `tuned` from the space")
        needed = strategy.kind.min_train(strategy)
        if needed > n_train:
            raise UserError(f"{feature.spec_path}: field `splits.train`: {n_train} train examples, but {strategy.label()} "
                            f"of the search space needs {needed}")


def judge_model(feature: Feature) -> str | None:
    """The model of the feature's judge metric, if it has one."""
    judge = feature.spec.metric.judge
    return None if judge is None else judge.model


def check_judged(feature: Feature, space: SearchSpace) -> None:
    """A judged feature (`metric.judge`): its DSPy strategies that optimise against the metric
    (few_shot, mipro, gepa) are refused (a judge scores in batches through the study's gateway,
    not inside DSPy's optimizers: not built); without gold answers nothing can show demos."""
    if feature.spec.metric.judge is None:
        return
    for strategy in space.strategy_variants():
        if strategy.kind.compiles and not strategy.kind.own_model:
            raise UserError(f"search space {space.name!r}: field `strategies.{strategy.name}`: it optimises the prompt against "
                            f"the metric, and {feature.spec_path}'s metric is a judge (field `metric.judge`), which DSPy "
                            "optimizers cannot call here; use incumbent or zero_shot strategies for judged features")
    if not feature.spec.has_gold and (feature.spec.incumbent.settings.demos or feature.shipped_demos):
        raise UserError(f"{feature.spec_path}: field `incumbent.settings.demos`: demos show gold answers, and the data has no "
                        f"column for `{feature.spec.target.name}` (judged without gold); set demos: 0 (and no `incumbent.demos`) "
                        "or map the column in `data.columns`")


@task(cache_policy=NO_CACHE)
def ensure_local_models(models: list[str], start: bool, holder: str | None = None) -> list[str]:
    """Start the local model servers the study needs and are not up (unless `start` is off: then
    refuse). Returns the aliases started. With `holder`, the study leases the servers it uses
    first (`model_leases`): `model_leases.release` at its end stops those it started."""
    aliases = sorted({m[len(LOCAL_PREFIX) :] for m in models if m.startswith(LOCAL_PREFIX)})
    if holder is not None:
        model_leases.hold(aliases, state_dir(), holder)
    running = {s.alias for s in local_models.status(state_dir()) if s.healthy}
    missing = [a for a in aliases if a not in running]
    if missing and not start:
        raise UserError(f"local model server(s) not up: {missing}. Run `offramp models up {' '.join(missing)}`.")
    if missing:
        get_run_logger().info("starting local model servers: %s", missing)
        local_models.up(missing, state_dir())
        model_leases.mark_started(missing, state_dir())
    return missing


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna RDB storage at `url`; a URL that cannot be opened is a UserError (the URL shown
    without its password). A PostgreSQL URL whose driver is not installed names the extra to install."""
    try:
        return optuna.storages.RDBStorage(url)
    except ImportError as exc:  # Optuna's "Failed to import DB access module", from the driver's ModuleNotFoundError
        missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "?"
        if url.partition("://")[0].partition("+")[0].lower() in ("postgresql", "postgres"):
            raise UserError(
                f"Optuna storage {safe_url(url)!r}: its PostgreSQL driver ({missing}) is not installed: "
                "pip install 'offramp[postgres]' (psycopg 3, the driver of postgresql://... and postgresql+psycopg://...)"
            ) from None
        raise UserError(f"Optuna storage {safe_url(url)!r}: its database driver ({missing}) is not installed") from None
    except Exception as exc:  # noqa: BLE001 - any failure to open is the user's URL
        raise UserError(f"Optuna storage {safe_url(url)!r} cannot be opened: {exc}; expected sqlite:///path or postgresql://...") from None


def choose_study_id(wh: Warehouse, base: str, new_study: bool) -> tuple[str, records.StudyState | None]:
    """(study id, its recorded state if resumed): the latest study with this key if it did not
    complete (running after a kill, failed, interrupted by a signal, its
    endpoint down) or its spend cap stopped it (the cap is the study's, not a fresh one per run),
    else a new one."""
    n = 1
    while True:
        candidate = base if n == 1 else f"{base}-{n}"
        found = records.find_study(wh, candidate)
        if found is None:
            return candidate, None
        resumable = found.status in ("running", "failed", "interrupted", "provider_down", "stopped_by_budget") or found.stopped_by == "budget"
        if resumable and not new_study:
            return candidate, found
        n += 1
