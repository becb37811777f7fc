"""Prompt strategies: one class per strategy, in one registry.

A strategy is everything offramp knows about one way of making a prompt:
- its **space options**: which parameters a search space may give it (`k` demo counts,
  `optimizer_models`, a `budget`), which it needs, and how they are validated;
- its **Optuna suggestions**: the conditional parameters it adds to a trial (`few_shot.k`, ...)
  and, back, the parameters of a given strategy (to enqueue or rebuild a trial);
- its **compile step**: how a DSPy program of the feature's signature is optimised on train
  (nothing for `incumbent` and `zero_shot`);
- its **runner**: the DSPy adapter that renders the program's prompt and parses its answer, or
  None for the shipped prompt (`incumbent`, rendered by `offramp.tasks.feature.prompts`) and for
  a model of offramp's own (`tuned`: `own_model`, trained and served by `offramp.tasks.gateway.tuned`).

The search, the evaluation, the compiler and the report ask the registry (`strategy_class(name)`)
instead of testing names. A new strategy is one subclass here plus `register()`; the contract
test (tests/test_strategies.py) runs every registered strategy through the same checks.

DSPy is imported only inside the compile and runner methods; this module imports nothing from
offramp's upper layers: the compile step gets what it needs (LMs, metric, examples) in a
`CompileJob` built by `offramp.tasks.feature.programs`.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import dspy
    import optuna

    from offramp.search_spaces.schema import Strategy, StrategyOptions

OPTIONS = ("k", "optimizer_models", "budget")  # the parameters a space may give a strategy


@dataclasses.dataclass(frozen=True)
class CompileJob:
    """What a strategy's compile step gets: the uncompiled program, train split in two (fit for
    the optimizer, val for its own validation; dev and test never reach it), the feature's metric
    in DSPy's shapes, and a factory of gateway-routed DSPy LMs."""

    student: Any  # dspy.Predict of the feature's signature
    fit: list[Any]  # dspy.Example
    val: list[Any]
    metric: Callable[..., float]  # metric(example, prediction, trace=None)
    feedback_metric: Callable[..., Any]  # GEPA's: returns dspy.Prediction(score, feedback)
    lm: Callable[..., Any]  # lm(model, temperature=..., max_tokens=...) -> dspy.LM through the gateway
    model: str  # the candidate model
    threads: int
    seed: int


class PromptStrategy:
    """A way of making a prompt. Subclasses set the class variables and override what differs."""

    name: ClassVar[str]
    summary: ClassVar[str]
    takes: ClassVar[frozenset[str]] = frozenset()  # options a space may give it
    needs: ClassVar[frozenset[str]] = frozenset()  # options a space must give it
    compiles: ClassVar[bool] = False  # optimised on the train split (a compile step with calls)
    shipped_prompt: ClassVar[bool] = False  # renders the incumbent's shipped prompt, not a DSPy program
    # a model of offramp's own, trained on train (`tuned/<hash>`): the config's model is this name,
    # whatever model Optuna paired it with, and decoding settings do not apply
    own_model: ClassVar[str | None] = None

    # -- space options ----------------------------------------------------------------------------
    def check_options(self, options: StrategyOptions) -> None:
        """Raise ValueError (the space loader names the file and field) when a space gives this
        strategy options it does not take, or lacks one it needs."""
        given = {name for name in OPTIONS if getattr(options, name)}
        extra = sorted(given - self.takes)
        if extra and not self.takes:
            raise ValueError(f"{self.name} takes no parameters (got {', '.join(extra)})")
        if extra:
            raise ValueError(f"{self.name} takes no {', '.join(extra)} (it takes: {', '.join(sorted(self.takes))})")
        missing = sorted(self.needs - given)
        if missing:
            raise ValueError(f"{self.name} needs " + "; ".join(_NEED_TEXT[m] for m in missing))
        if len(set(options.k)) != len(options.k) or any(k < 1 for k in options.k):
            raise ValueError(f"{self.name}.k must be distinct positive demo counts, got {options.k}")

    def check(self, strategy: Strategy) -> None:
        """Raise ValueError when one config's strategy parameters do not fit this strategy."""
        given = {"k": strategy.k, "optimizer_models": strategy.optimizer_model, "budget": strategy.budget}
        extra = sorted(name for name, value in given.items() if value and name not in self.takes)
        if extra:
            raise ValueError(f"{self.name} takes no {', '.join(extra)}")
        if "k" in self.needs and strategy.k < 1:
            raise ValueError(f"{self.name} needs k >= 1 demos")
        if "optimizer_models" in self.needs and not strategy.optimizer_model:
            raise ValueError(f"{self.name} needs a reflection model (optimizer_model)")

    def variants(self, options: StrategyOptions) -> list[Strategy]:
        """Every strategy point the options allow (k x optimizer model), for grids and contract tests."""
        from offramp.search_spaces.schema import Strategy

        ks = options.k if "k" in self.takes and options.k else [0]
        models = options.optimizer_models if "optimizer_models" in self.takes and options.optimizer_models else [None]
        budget = options.budget if "budget" in self.takes else None
        return [Strategy(name=self.name, k=k, optimizer_model=m, budget=budget) for k, m in itertools.product(ks, models)]

    # -- Optuna -----------------------------------------------------------------------------------
    def suggest(self, trial: optuna.trial.BaseTrial, options: StrategyOptions | None) -> Strategy:
        """The strategy's conditional parameters for one trial (`<name>.k`, `<name>.optimizer_model`)."""
        from offramp.search_spaces.schema import Strategy

        k = optimizer = budget = None
        if options is not None:
            if "k" in self.takes and options.k:
                k = trial.suggest_categorical(f"{self.name}.k", options.k)
            if "optimizer_models" in self.takes and options.optimizer_models:
                optimizer = trial.suggest_categorical(f"{self.name}.optimizer_model", options.optimizer_models)
            if "budget" in self.takes:
                budget = options.budget
        return Strategy(name=self.name, k=k or 0, optimizer_model=optimizer, budget=budget)

    def optuna_params(self, strategy: Strategy) -> dict[str, Any]:
        """The Optuna parameters that `suggest` turns into `strategy` (the inverse)."""
        params: dict[str, Any] = {"strategy": self.name}
        if "k" in self.takes and strategy.k:
            params[f"{self.name}.k"] = strategy.k
        if "optimizer_models" in self.takes and strategy.optimizer_model:
            params[f"{self.name}.optimizer_model"] = strategy.optimizer_model
        return params

    # -- label ------------------------------------------------------------------------------------
    def label(self, strategy: Strategy) -> str:
        parts = [self.name]
        if strategy.k:
            parts.append(f"k={strategy.k}")
        if strategy.optimizer_model:
            parts.append(f"by={strategy.optimizer_model}")
        if strategy.budget:
            parts.append(f"budget={strategy.budget}")
        return " ".join(parts)

    # -- runner and compile step ------------------------------------------------------------------
    def adapter(self, output_mode: str) -> dspy.Adapter | None:
        """The DSPy adapter that renders this strategy's program and parses its answers (no
        second-call fallback); None: the shipped prompt renders and parses."""
        import dspy

        if output_mode == "json_schema":
            return dspy.JSONAdapter()
        return dspy.ChatAdapter(use_json_adapter_fallback=False)

    def min_train(self, strategy: Strategy) -> int:
        """Train examples this strategy needs (the study refuses a smaller train split)."""
        return max(strategy.k, 3 if self.compiles else 0)

    def compile(self, job: CompileJob, strategy: Strategy) -> Any:
        """The optimised program (a dspy.Module); the uncompiled student when nothing is optimised."""
        return job.student


_NEED_TEXT = {
    "k": "`k`: a non-empty list of demo counts",
    "optimizer_models": "`optimizer_models`: the reflection model(s) it may use",
    "budget": "`budget`: a positive number",
}


class Incumbent(PromptStrategy):
    name = "incumbent"
    summary = "the shipped instructions and demos, rendered exactly as shipped (on a new model: the naive swap)"
    shipped_prompt = True

    def adapter(self, output_mode: str) -> None:
        return None


class ZeroShot(PromptStrategy):
    name = "zero_shot"
    summary = "DSPy Predict of the feature's signature with the incumbent's instructions"


class FewShot(PromptStrategy):
    name = "few_shot"
    summary = "DSPy BootstrapFewShot with up to k demos, compiled on train (bootstraps from at most 4k examples)"
    takes = needs = frozenset({"k"})
    compiles = True

    def compile(self, job: CompileJob, strategy: Strategy) -> Any:
        import dspy

        optimizer = dspy.BootstrapFewShot(
            metric=job.metric, max_bootstrapped_demos=strategy.k, max_labeled_demos=strategy.k, max_rounds=1,
            max_errors=1_000_000,
        )
        # bounded cost: bootstrap from at most 4k examples; labelled demos fill the rest
        return optimizer.compile(job.student, trainset=job.fit[: 4 * strategy.k])


class Mipro(PromptStrategy):
    name = "mipro"
    summary = "DSPy MIPROv2 (auto=light, or `budget` trials), proposals by `optimizer_models` or the candidate itself"
    takes = frozenset({"k", "optimizer_models", "budget"})
    needs = frozenset({"k"})
    compiles = True

    def compile(self, job: CompileJob, strategy: Strategy) -> Any:
        import dspy

        proposer = job.lm(strategy.optimizer_model or job.model, temperature=1.0, max_tokens=512)
        options: dict[str, Any] = {"auto": "light"} if strategy.budget is None else {"auto": None, "num_candidates": 3}
        optimizer = dspy.MIPROv2(
            metric=job.metric, prompt_model=proposer, max_bootstrapped_demos=strategy.k, max_labeled_demos=strategy.k,
            num_threads=job.threads, seed=job.seed, verbose=False, track_stats=False, max_errors=1_000_000, **options,
        )
        extra = {"num_trials": strategy.budget} if strategy.budget else {}
        return optimizer.compile(job.student, trainset=job.fit, valset=job.val, minibatch_size=min(35, len(job.val)), **extra)


class Gepa(PromptStrategy):
    name = "gepa"
    summary = "DSPy GEPA, reflection by one of `optimizer_models` (required), `budget` metric calls"
    takes = frozenset({"optimizer_models", "budget"})
    needs = frozenset({"optimizer_models"})
    compiles = True

    def compile(self, job: CompileJob, strategy: Strategy) -> Any:
        import dspy

        reflection = job.lm(strategy.optimizer_model, temperature=1.0, max_tokens=1024)
        budget = {"max_metric_calls": strategy.budget} if strategy.budget else {"auto": "light"}
        optimizer = dspy.GEPA(
            metric=job.feedback_metric, reflection_lm=reflection, num_threads=job.threads, seed=job.seed,
            track_stats=False, use_merge=False, **budget,
        )
        return optimizer.compile(job.student, trainset=job.fit, valset=job.val)


class Tuned(PromptStrategy):
    name = "tuned"
    summary = ("tune our own: a classifier (TF-IDF character n-grams + logistic regression) trained on train, "
               "served as tuned/<hash>; a single label output only")
    compiles = True
    own_model = "tuned/tfidf-char-logreg"

    def adapter(self, output_mode: str) -> None:
        return None

    def min_train(self, strategy: Strategy) -> int:
        return 10


_REGISTRY: dict[str, PromptStrategy] = {}


def register(strategy: type[PromptStrategy]) -> type[PromptStrategy]:
    """Add a strategy class to the registry (usable as a class decorator)."""
    if strategy.name in _REGISTRY:
        raise ValueError(f"a prompt strategy named {strategy.name!r} is already registered")
    _REGISTRY[strategy.name] = strategy()
    return strategy


for _cls in (Incumbent, ZeroShot, FewShot, Mipro, Gepa, Tuned):
    register(_cls)


def strategy_names() -> list[str]:
    return list(_REGISTRY)


def strategy_class(name: str) -> PromptStrategy:
    """The registered strategy called `name`; ValueError listing the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown prompt strategy {name!r}; known: {', '.join(_REGISTRY)}") from None


def split_train(train: Sequence[Any], seed: int) -> tuple[list[Any], list[Any]]:
    """Optimizers validate on a third of train (never on dev/test)."""
    order = list(train)
    random.Random(seed).shuffle(order)
    cut = max(1, len(order) * 2 // 3)
    return order[:cut], order[cut:] or order[:1]
