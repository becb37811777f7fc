"""A study's spend cap: what it must reserve, which cap applies on a rerun, and when it is refused.

The cap belongs to the study, across resumes: a rerun of the same command resumes the study with
its recorded cap and its recorded spend (the ledger's). Raising the cap is explicit (`raise_cap`),
and every change is recorded (`cap_changes`) for the report.

The cap reserves what the held-out confirmation of the front needs, so a capped study still ends
with a test phase, a selection and a report: the search may spend the cap minus the reserve. The
reserve is the worst case (one token per prompt character, all `max_tokens` generated) of
- the incumbent on the test split (its exact requests), and
- `FRONT_RESERVE` front configs on the test split, each call priced at the dearest candidate
  model, its prompt `FRONT_PROMPT_FACTOR` times the incumbent's longest, its answer the space's
  largest `max_tokens`;
- with a judge metric, its calls on those answers (tasks/feature/judge.py `judge_call_worst_usd`), and
- every naive swap on the test split (each is confirmed, whether or not it can win: the answer to
  "would just swapping the model do?"): the incumbent's exact test requests on each candidate model.
It is an estimate for the front (a compiled program's prompt is not known before the search); a
front config that needs more is stopped by the cap and the selection is made among the others.
The incumbent's own evaluations (dev and test) are never cut by the cap: a cap too small for them
plus the reserve is refused before any paid call.
"""

from __future__ import annotations

import dataclasses

from offramp.errors import UserError
from offramp.search_spaces.schema import Config, SearchSpace
from offramp.tasks.feature.evaluate import build_requests, prompt_runner
from offramp.tasks.feature.judge import judge_call_worst_usd
from offramp.tasks.feature.prompts import shipped_prompt_demos
from offramp.tasks.feature.spec import Example, Feature
from offramp.tasks.gateway.prices import PriceBook, prompt_chars
from offramp.warehouse.records import StudyState

FRONT_RESERVE = 3  # front configs whose test evaluation the cap reserves
FRONT_PROMPT_FACTOR = 4  # a front config's prompt, at most, in units of the incumbent's longest


@dataclasses.dataclass(frozen=True)
class Needs:
    """Worst-case USD of the work the cap must always allow."""

    incumbent_dev: float
    incumbent_test: float
    front_test: float
    naive_test: float = 0.0  # every naive swap on the test split

    @property
    def reserve(self) -> float:
        """Held back from the search: the test phase."""
        return self.incumbent_test + self.front_test + self.naive_test

    @property
    def total(self) -> float:
        return self.incumbent_dev + self.reserve


def estimate_needs(
    feature: Feature, space: SearchSpace, incumbent: Config, prices: PriceBook, train: tuple[Example, ...],
    dev: tuple[Example, ...], test: tuple[Example, ...], seed: int,
) -> Needs:
    """The worst cases the cap must cover (see the module docstring)."""
    spec = feature.spec
    render, _, _ = prompt_runner(spec, incumbent, shipped_prompt_demos(feature, train, incumbent.settings.demos, seed), None)

    def incumbent_usd(examples: tuple[Example, ...], model: str = incumbent.model) -> tuple[float, int]:
        requests = build_requests(spec, incumbent, render, examples)
        chars = [prompt_chars(r.messages) for r in requests]
        max_tokens = int(incumbent.settings.max_tokens)
        return sum(prices.cost(model, c, max_tokens) for c in chars), max(chars, default=0)

    dev_usd, dev_chars = incumbent_usd(dev)
    test_usd, test_chars = incumbent_usd(test)
    prompt = FRONT_PROMPT_FACTOR * max(dev_chars, test_chars)
    max_tokens = max(space.settings.max_tokens)
    candidates = [m for m in dict.fromkeys(space.models) if m != incumbent.model]
    per_call = max((prices.cost(m, prompt, max_tokens) for m in candidates), default=0.0)
    judge = spec.metric.judge
    if judge is not None:  # the judge's calls on every judged answer (the incumbent's too, for a rubric)
        judged = judge.calls_per_example() * judge_call_worst_usd(spec, judge, prices, [*dev, *test], max_tokens)
        per_call += judged
        if judge.mode == "rubric":
            dev_usd, test_usd = dev_usd + len(dev) * judged, test_usd + len(test) * judged
    naive_usd = sum(incumbent_usd(test, m)[0] for m in candidates)  # a naive swap sends the incumbent's requests
    return Needs(dev_usd, test_usd, FRONT_RESERVE * len(test) * per_call, naive_usd)


def resolve_cap(
    study_id: str, found: StudyState | None, requested: float | None, raise_cap: bool, spent: float,
) -> tuple[float | None, bool]:
    """(the cap for this run of the study, whether it changes the recorded one). A new study's
    cap is the one asked for; a resumed study keeps its recorded cap unless a change is asked
    for: lowering is always allowed, raising (or lifting, with no --max-spend) only with
    `raise_cap`. The caller records a change (`records.change_cap`) once it is accepted."""
    if found is None:
        return requested, False
    recorded = found.max_spend_usd
    if requested == recorded or (requested is None and not raise_cap):
        return recorded, False
    higher = recorded is not None and (requested is None or requested > recorded)
    if higher and not raise_cap:
        raise UserError(
            f"option --max-spend: study {study_id} has a spend cap of ${recorded:.4f} (spent ${spent:.4f}); "
            f"to {'lift it' if requested is None else f'raise it to ${requested:.4f}'} run the same command with --raise-cap"
        )
    return requested, True


def check_cap(cap: float | None, spent: float, needs: Needs, *, incumbent_done: bool) -> None:
    """Refuse a cap too small for the incumbent's evaluation and the test-phase reserve."""
    if cap is None:
        return
    needed = spent + needs.reserve + (0.0 if incumbent_done else needs.incumbent_dev)
    if cap < needed:
        raise UserError(
            f"option --max-spend: ${cap:.4f} is too small for this study: the incumbent's evaluation and the held-out "
            f"confirmation of up to {FRONT_RESERVE} front configs and every naive swap need up to ${needed:.4f} (worst case"
            f"{f', ${spent:.4f} already spent' if spent else ''}); give --max-spend {needed:.4f} or more"
        )


def cap_spent_notice(study_id: str, cap: float, spent: float) -> str:
    """The one line a rerun of a study stopped by its cap prints."""
    return (f"study {study_id}: its spend cap ${cap:.4f} is spent (${spent:.4f} recorded); nothing more was called. "
            f"To continue it, run the same command with a higher --max-spend and --raise-cap")
