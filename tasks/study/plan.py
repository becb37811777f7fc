"""`offramp migrate --dry-run`: what a study would do, its worst-case price and an estimate of its
time, from a prepared study (every check of `preflight` passed) and no model call.

The worst case is an upper bound built the way the gateway bounds a call before paying it
(`Gateway.worst_case_usd`: one token per prompt character, every `max_tokens` generated), applied
to the largest prompt a config of the space can send (the longest input, the most demos, DSPy's
formatting) and to every call the study can make: the incumbent on dev and test, every search
trial on all of dev (racing only ever stops one earlier), every trial on the front confirmed on
test (at most all of them; the naive swaps, confirmed whether or not they are on the front, are
search trials too), one compile per search trial, counted by `COMPILE_CALLS`, and, with a
judge metric, its calls on every judged answer (2 per answer pairwise, one per criterion rubric).

The time is an estimate from what was measured: the mean wall time of the model's past answered
calls in the warehouse (retries included), else, for a bundled local model, its prompt and
generation throughput in `tasks/gateway/prices.yaml`; with neither, "no measurement".
"""

from __future__ import annotations

import dataclasses

import yaml
from rich.console import Console
from rich.table import Table

from offramp.search_spaces.schema import Config, Strategy
from offramp.tasks.evidence.power import study_power
from offramp.tasks.evidence.verdicts import PowerRow, power_lines
from offramp.tasks.feature.human_judgements import load_human_judgements
from offramp.tasks.feature.judge import ANSWER_CHARS_PER_TOKEN, judge_call_worst_usd
from offramp.tasks.feature.prompts import output_contract, render_answer, render_input
from offramp.tasks.feature.spec import Example
from offramp.tasks.gateway.prices import BUNDLED, PriceBook
from offramp.tasks.study.prepare import Prepared
from offramp.warehouse import Warehouse, warehouse_path

DSPY_FORMAT_CHARS = 2_000  # DSPy's field markers and instructions around a program's prompt (measured ~1,200)
MIPRO_CANDIDATES, MIPRO_LIGHT_TRIALS, MIPRO_MINIBATCH = 6, 10, 35
GEPA_LIGHT_METRIC_CALLS = 400


def compile_calls(strategy: Strategy, n_train: int) -> int:
    """Estimated model calls of one compile (documented, not measured per run):
    - incumbent, zero_shot: 0 (nothing is compiled);
    - few_shot (BootstrapFewShot, one round): it bootstraps from at most 4k train examples: 4k;
    - mipro: 6 candidate demo sets bootstrapped (6 x 4k), ~3 proposal calls per candidate, then
      `budget` trials (auto=light: 10) on minibatches of 35 of its validation third, and one full pass;
    - gepa: `budget` metric calls (auto=light: ~400), plus one reflection call per 5 of them;
    - tuned: 0 (trained on this machine: seconds of machine time, no model calls)."""
    name, k = strategy.name, strategy.k or 0
    if name == "few_shot":
        return 4 * k
    if name == "mipro":
        valset = max(1, n_train // 3)
        trials = strategy.budget or MIPRO_LIGHT_TRIALS
        return MIPRO_CANDIDATES * (4 * k + 3) + trials * min(MIPRO_MINIBATCH, valset) + valset
    if name == "gepa":
        calls = strategy.budget or GEPA_LIGHT_METRIC_CALLS
        return calls + calls // 5
    return 0


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    configs: int
    examples: int
    calls: int
    worst_usd: float


@dataclasses.dataclass(frozen=True)
class Rate:
    """How long a call to a model takes, and how that is known."""

    model: str
    s_per_call: float | None
    source: str


@dataclasses.dataclass(frozen=True)
class Plan:
    study: str
    incumbent: str
    candidates: list[str]
    splits: dict[str, int]
    phases: list[Phase]
    per_call_usd: dict[str, float]  # worst case of one call, per model
    rates: list[Rate]
    concurrency: int
    policy: str
    power: list[PowerRow] = dataclasses.field(default_factory=list)  # what the test split can tell (tasks.evidence.verdicts)

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.phases)

    @property
    def worst_usd(self) -> float:
        return sum(p.worst_usd for p in self.phases)

    def call_seconds(self) -> float | None:
        """Seconds of model calls, one at a time: the incumbent's phases at its rate, the rest at
        the candidates' mean rate (the search spreads its trials over them); None if unmeasured."""
        rate = {r.model: r.s_per_call for r in self.rates}
        if any(r.s_per_call is None for r in self.rates):
            return None
        mean = sum(rate[m] for m in self.candidates) / len(self.candidates)
        return sum(p.calls * (rate[self.incumbent] if p.name.startswith("incumbent") else mean) for p in self.phases)


def _prompt_chars(prepared: Prepared, incumbent: Config) -> int:
    """The largest prompt a config of the space can send, in characters."""
    feature, spec = prepared.feature, prepared.feature.spec
    examples = [*prepared.splits.train, *prepared.splits.dev, *prepared.splits.test, *feature.shipped_demos]
    longest_input = max(len(render_input(spec, e)) for e in examples)
    longest_demo = max((len(render_input(spec, e)) + len(render_answer(spec, incumbent, e))
                        for e in [*prepared.splits.train, *feature.shipped_demos]), default=0) if spec.has_gold else 0
    demos = max([incumbent.settings.demos, *(s.k or 0 for s in prepared.space.strategy_variants())])
    return (len(incumbent.instructions) + len(output_contract(spec, incumbent)) + DSPY_FORMAT_CHARS
            + demos * (longest_demo + 40) + longest_input)


def _measured_rates(models: list[str]) -> dict[str, tuple[float, int]]:
    """Mean wall time of each model's answered calls in the warehouse (a reader's handle; no
    warehouse yet: nothing measured)."""
    path = warehouse_path()
    if not path.exists():
        return {}
    placeholders = ", ".join("?" for _ in models)
    _, rows = Warehouse(path, read_only=True).fetch(
        f"SELECT model, avg(latency_s), count(*) FROM calls WHERE NOT cache_hit AND error IS NULL "  # noqa: S608 - placeholders only
        f"AND model IN ({placeholders}) GROUP BY model", list(models))
    return {model: (float(mean), int(n)) for model, mean, n in rows}


def _rates(models: list[str], prompt_tokens: int, max_tokens: int) -> list[Rate]:
    measured = _measured_rates(models)
    local = yaml.safe_load(BUNDLED.read_text())["models"]
    rates = []
    for model in models:
        if model in measured:
            mean, n = measured[model]
            rates.append(Rate(model, mean, f"warehouse: mean of {n} answered calls"))
        elif model in local:
            tps = local[model]
            seconds = prompt_tokens / float(tps["prompt_tokens_per_s"]) + max_tokens / float(tps["completion_tokens_per_s"])
            rates.append(Rate(model, seconds, f"{BUNDLED.name}: measured tokens/s, largest prompt, all max_tokens"))
        else:
            rates.append(Rate(model, None, "no measurement"))
    return rates


def plan_study(prepared: Prepared, params) -> Plan:
    """The plan of the study `params` (MigrateParams) asks for, priced at its worst case."""
    feature, space = prepared.feature, prepared.space
    inc = feature.spec.incumbent
    incumbent = Config(model=inc.model, instructions=inc.instructions, settings=inc.settings)
    candidates = [m for m in space.models if m != inc.model]
    chars = _prompt_chars(prepared, incumbent)
    max_tokens = max([inc.settings.max_tokens, *space.settings.max_tokens])
    book = PriceBook(prepared.prices)
    per_call = {m: book.cost(m, chars, max_tokens) for m in dict.fromkeys([inc.model, *candidates, *space.optimizer_models()])}
    worst_candidate = max(per_call[m] for m in candidates)
    worst_optimizer = max([worst_candidate, *(per_call[m] for m in space.optimizer_models())])
    n_dev, n_test, trials = len(prepared.splits.dev), len(prepared.splits.test), params.max_trials
    compiles = max((compile_calls(s, len(prepared.splits.train)) for s in space.strategy_variants()), default=0)
    phases = [
        Phase("incumbent on dev", 1, n_dev, n_dev, n_dev * per_call[inc.model]),
        Phase("search on dev (every trial to 100%)", trials, n_dev, trials * n_dev, trials * n_dev * worst_candidate),
        Phase("compiles (DSPy strategies, estimated)", trials if compiles else 0, len(prepared.splits.train), trials * compiles,
              trials * compiles * worst_optimizer),
        Phase("incumbent on test", 1, n_test, n_test, n_test * per_call[inc.model]),
        Phase("front on test (at most every trial; every naive swap among them)", trials, n_test, trials * n_test, trials * n_test * worst_candidate),
    ]
    if feature.samples and feature.spec.data.samples is not None:
        phases.append(_samples_phase(prepared, book, chars, max_tokens, candidates, trials))
    judge = feature.spec.metric.judge
    if judge is not None:  # every judged answer: 2 calls (pairwise), one per criterion (rubric); the incumbent's too (rubric)
        per_answer = judge.calls_per_example()
        answers = trials * (n_dev + n_test) + (n_dev + n_test if judge.mode == "rubric" else 0)
        one = judge_call_worst_usd(feature.spec, judge, book, [*prepared.splits.dev, *prepared.splits.test], max_tokens)
        per_call[judge.model] = max(per_call.get(judge.model, 0.0), one)
        phases.append(Phase(f"judge ({judge.mode}, {per_answer} call(s) per answer)", trials + (1 if judge.mode == "rubric" else 0),
                            n_dev + n_test, answers * per_answer, answers * per_answer * one))
        if judge.human_judgements is not None:  # the judge on the human-judged items, once (tasks/study/calibrate.py)
            human = load_human_judgements(feature.root / judge.human_judgements.path, feature.spec, judge.mode,
                                          judge.scale if judge.mode == "rubric" else None)
            items = [Example(id=h.id, inputs=h.inputs, outputs={}) for h in human.items]
            longest = max((len(str(x or "")) for h in human.items for x in (h.answer, h.answer_a, h.answer_b)), default=0)
            each = judge_call_worst_usd(feature.spec, judge, book, items, -(-longest // ANSWER_CHARS_PER_TOKEN))
            per_call[judge.model] = max(per_call.get(judge.model, 0.0), each)
            phases.append(Phase("judge calibration (the human-judged items)", 1, len(items), len(items) * per_answer,
                                len(items) * per_answer * each))
    prompt_tokens = chars // 4  # for time, a typical ~4 characters per token (the price keeps its bound of 1)
    return Plan(
        study=f"{feature.spec.name}: off {inc.model}, {len(candidates)} candidate model(s), space {space.name!r}",
        splits={"train": len(prepared.splits.train), "dev": n_dev, "test": n_test, "shipped demos": len(feature.shipped_demos)},
        phases=phases, per_call_usd=per_call, rates=_rates(list(per_call), prompt_tokens, max_tokens),
        concurrency=params.gateway.concurrency, incumbent=inc.model, candidates=candidates,
        policy=f"{prepared.policy.describe()} (from {prepared.policy_source or 'the parameters'})",
        power=study_power(prepared.splits.test, prepared.policy),
    )


def _samples_phase(prepared: Prepared, book: PriceBook, chars: int, max_tokens: int, candidates: list[str], trials: int) -> Phase:
    """Production samples (tasks/study/samples.py): the incumbent and at most every trial answer up to
    `max_samples` logged inputs with a served answer (the stage shrinks n to what the cap has left)."""
    feature, spec = prepared.feature, prepared.feature.spec
    usable = [x for x in feature.samples if x.served is not None]
    n = min(spec.data.samples.cap, len(usable))
    examples = [*prepared.splits.train, *prepared.splits.dev, *prepared.splits.test, *feature.shipped_demos]
    longest = max((len(render_input(spec, Example(id=x.id, inputs=x.inputs, outputs={}))) for x in usable), default=0)
    longer = max(0, longest - max(len(render_input(spec, e)) for e in examples))  # sample inputs longer than the examples'
    inc = spec.incumbent.model
    per_sample = book.cost(inc, chars + longer, max_tokens) + trials * max(book.cost(m, chars + longer, max_tokens) for m in candidates)
    judge, calls = spec.metric.judge, n * (1 + trials)
    if judge is not None and spec.target.type == "text":  # each answer judged against the served one (both orders)
        samples = [Example(id=x.id, inputs=x.inputs, outputs={}) for x in usable]
        per_sample += (1 + trials) * judge.calls_per_example() * judge_call_worst_usd(spec, judge, book, samples, max_tokens)
        calls += n * (1 + trials) * judge.calls_per_example()
    return Phase("production samples (at most; n fits the cap left; with their judge calls)", 1 + trials, n, calls, n * per_sample)


def render_plan(console: Console, plan: Plan) -> None:
    """The plan in a terminal: phases, worst case, rates, estimate. No call was made."""
    console.print(f"[bold]Dry run[/] (no model called, no Prefect started): {plan.study}")
    console.print("Examples: " + ", ".join(f"{k} {v}" for k, v in plan.splits.items()))
    table = Table("phase", "configs", "examples each", "calls (worst case)", "worst-case USD", title="Plan")
    for p in plan.phases:
        table.add_row(p.name, str(p.configs), str(p.examples), str(p.calls), f"{p.worst_usd:.4f}")
    table.add_row("total", "", "", str(plan.calls), f"{plan.worst_usd:.4f}")
    console.print(table)
    rates = Table("model", "worst-case USD per call", "seconds per call", "measured by", title="Models")
    for r in plan.rates:
        rates.add_row(r.model, f"{plan.per_call_usd[r.model]:.6f}", "-" if r.s_per_call is None else f"{r.s_per_call:.2f}", r.source)
    console.print(rates)
    seconds = plan.call_seconds()
    if seconds is None:
        missing = [r.model for r in plan.rates if r.s_per_call is None]
        console.print(f"Time: no measurement for {', '.join(missing)}: not estimated (run a small study first, e.g. --max-examples 5)")
    else:
        console.print(f"Time (worst case): ~{seconds / 60:.1f} min of calls one at a time; "
                      f"~{seconds / plan.concurrency / 60:.1f} min at --concurrency {plan.concurrency}")
    console.print(f"Policy: {plan.policy}", soft_wrap=True)
    for line in power_lines(plan.power):
        console.print(line, soft_wrap=True, markup=False)
