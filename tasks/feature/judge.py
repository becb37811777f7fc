"""Judge metrics (`metric: {judge: ...}` in feature.yaml): a model scores the answers, no gold needed.

- `rubric`: the judge reads the input, the answer (and the gold answer as a reference, when the
  feature's data has one) and answers one word per criterion: pass/fail (score = share passed),
  or, without criteria, one overall verdict: pass/fail (1/0) or, with `scale: five_point`, a
  digit 1..5 (score (s-1)/4).
- `pairwise`: the judge compares the judged answer with a reference answer to the same input (in a
  study: the incumbent's answer on the same split), asked in both orders to cancel position bias
  (`ab`: A = judged, B = reference; `ba`: swapped); each order answers A | B | tie. Both orders
  prefer the judged answer: win (1.0); both prefer the reference: loss (0.0); otherwise tie (0.5).
  Identical answers (normalised) are a tie without a call (so the incumbent judged against itself
  is 0.5 everywhere, with no call); an answer where the reference has none is a win without a call.

Answers are parsed leniently (the first "A"/"B"/"tie", "pass"/"fail", digit 1-5). A judge answer
that does not parse, or a judge call that failed (refused by the spend cap included), leaves the
example unjudged: it scores 0, as a failed call does everywhere in offramp (a broken judge never
makes a candidate look as good as the incumbent), and is counted (`Judged.unparsed`, `failed`;
view `v_judgements`). An answer the judged config did not give (failed or unparseable) scores 0
without a judge call.

Judge calls go through the evaluation's gateway (cache, retries, spend cap, write-ahead ledger)
with purpose `judge`; they are recorded in `calls` (trial_id = the judged trial) and the verdicts
in `judgements` (migration 0012).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from offramp.tasks.feature.metrics import normalise
from offramp.tasks.feature.prompts import render_input
from offramp.tasks.feature.spec import Example, FeatureSpec, JudgeSpec
from offramp.tasks.gateway.llm import Gateway, LLMRequest, LLMResult, call_record
from offramp.warehouse import Warehouse, records
from offramp.warehouse.records import CallRecord

SELF: Literal["self"] = "self"  # `references=SELF`: the judged trial is the reference (the incumbent itself)
Outcome = Literal["win", "tie", "loss"]

# "A"/"B" in capitals (a lower-case "a" is usually the article: "it's a tie"), or a tie word
_PAIRWISE = re.compile(r"\b(A|B|[Tt][Ii][Ee]|[Ee]qual|[Ss]ame|[Bb]oth|[Nn]either)\b")
_BARE = re.compile(r"^\W*([ab])\W*$", re.IGNORECASE)  # a bare "a" / "b." is the answer
_PASS_FAIL = re.compile(r"\b(pass|passes|passed|fail|fails|failed|yes|no)\b", re.IGNORECASE)
_DIGIT = re.compile(r"[1-5]")


def parse_pairwise(text: str | None) -> str | None:
    """`A`, `B` or `tie` from a judge's answer (the first such word), None if none."""
    bare = _BARE.match(text or "")
    if bare is not None:
        return bare.group(1).upper()
    match = _PAIRWISE.search(text or "")
    if match is None:
        return None
    word = match.group(1)
    return word if word in ("A", "B") else "tie"


def parse_pass_fail(text: str | None) -> str | None:
    """`pass` or `fail` (the first of pass/fail/yes/no), None if none."""
    match = _PASS_FAIL.search(text or "")
    if match is None:
        return None
    return "pass" if match.group(1).lower() in ("pass", "passes", "passed", "yes") else "fail"


def parse_five_point(text: str | None) -> str | None:
    """The first digit 1-5, None if none."""
    match = _DIGIT.search(text or "")
    return None if match is None else match.group(0)


def verdict_score(judge: JudgeSpec, verdict: str | None) -> float | None:
    """A rubric verdict's score: pass 1, fail 0; five_point (s-1)/4; None unparsed."""
    if verdict is None:
        return None
    if judge.scale == "five_point":
        return (int(verdict) - 1) / 4
    return 1.0 if verdict == "pass" else 0.0


def combine_orders(ab: str | None, ba: str | None) -> tuple[Outcome | None, float]:
    """Both orders' verdicts -> (outcome for the judged answer, score). In `ab` the judged answer
    is A, in `ba` it is B. Either order unparsed: (None, 0.0)."""
    if ab is None or ba is None:
        return None, 0.0
    prefers = ({"A": "judged", "B": "reference"}.get(ab, "tie"), {"B": "judged", "A": "reference"}.get(ba, "tie"))
    if prefers == ("judged", "judged"):
        return "win", 1.0
    if prefers == ("reference", "reference"):
        return "loss", 0.0
    return "tie", 0.5


def order_score(order: str, verdict: str | None) -> float | None:
    """One order's verdict as a score for the judged answer (it is A in `ab`, B in `ba`)."""
    if verdict is None:
        return None
    if verdict == "tie":
        return 0.5
    return 1.0 if verdict == ("A" if order == "ab" else "B") else 0.0


# --------------------------------------------------------------------------------------- prompts
def answer_text(spec: FeatureSpec, prediction: Mapping[str, Any] | None) -> str | None:
    """The judged output of a prediction, as text (None: no answer)."""
    if prediction is None:
        return None
    value = prediction.get(spec.target.name)
    if value is None:
        return None
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def rubric_messages(spec: FeatureSpec, judge: JudgeSpec, example: Example, answer: str, criterion: str | None) -> list[dict[str, str]]:
    system = judge.instructions.strip()
    if criterion is not None:
        system += f"\n\nJudge only this criterion: {criterion}"
    if judge.scale == "five_point":
        ask = "Rate the answer from 1 (very poor) to 5 (excellent). Reply with one digit only."
    else:
        ask = ("Does the answer meet the criterion?" if criterion is not None else "Is the answer good?") + \
            " Reply with one word only: pass or fail."
    user = f"Input:\n{render_input(spec, example)}\n\n"
    gold = example.outputs.get(spec.target.name)
    if gold is not None:
        user += f"Reference answer (known good):\n{answer_text(spec, {spec.target.name: gold})}\n\n"
    user += f"Answer to judge:\n{answer}\n\n{ask}"
    return [{"role": "system", "content": f"{system}\n\n{ask}"}, {"role": "user", "content": user}]


def pairwise_messages(spec: FeatureSpec, judge: JudgeSpec, example: Example, first: str, second: str) -> list[dict[str, str]]:
    ask = "Which answer is better? Reply with one word only: A, B or tie."
    system = (f"{judge.instructions.strip()}\n\nYou compare two answers to the same input. {ask}")
    user = f"Input:\n{render_input(spec, example)}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n\n{ask}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------- judging
@dataclasses.dataclass(frozen=True)
class Judged:
    """A trial's answers judged: a score per example, the judge's calls and verdict rows."""

    scores: list[float]
    calls: list[CallRecord]
    judgements: list[dict[str, Any]]
    unparsed: int  # judge answers that did not parse
    failed: int  # judge calls that failed (refused by the spend cap included)


@dataclasses.dataclass
class _Ask:
    index: int  # the example's position
    order: str
    criterion: str | None
    request: LLMRequest


def judge_answers(
    spec: FeatureSpec, judge: JudgeSpec, examples: Sequence[Example], predictions: Sequence[Mapping[str, Any] | None],
    gateway: Gateway, *, references: Mapping[str, Mapping[str, Any] | None] | Literal["self"] | None = None,
    study_id: str | None = None, trial_id: int | None = None,
) -> Judged:
    """Judge each example's answer (`predictions`, parallel to `examples`) through `gateway`.
    Pairwise needs `references`: example id -> the reference's prediction (the incumbent's answer),
    or SELF when the judged trial is the reference."""
    if judge.mode == "pairwise" and references is None:
        raise ValueError("a pairwise judge needs reference answers (the incumbent's), or SELF for the incumbent itself")
    settings = dict(judge.settings)
    asks: list[_Ask] = []
    fixed: dict[int, tuple[str, float, Outcome | None]] = {}  # decided without a call: verdict, score, outcome
    answers = [answer_text(spec, p) for p in predictions]
    for i, (example, answer) in enumerate(zip(examples, answers)):
        if answer is None:
            continue  # no answer to judge: scores 0, no call
        if judge.mode == "rubric":
            for criterion in judge.criteria or [None]:
                messages = rubric_messages(spec, judge, example, answer, criterion)
                asks.append(_Ask(i, "single", criterion, LLMRequest(judge.model, messages, settings, purpose="judge")))
            continue
        reference = answer if references == SELF else answer_text(spec, references.get(example.id))
        if reference is None:
            fixed[i] = ("win", 1.0, "win")
        elif normalise(reference) == normalise(answer):
            fixed[i] = ("tie", 0.5, "tie")
        else:
            asks.append(_Ask(i, "ab", None, LLMRequest(judge.model, pairwise_messages(spec, judge, example, answer, reference),
                                                         settings, purpose="judge")))
            asks.append(_Ask(i, "ba", None, LLMRequest(judge.model, pairwise_messages(spec, judge, example, reference, answer),
                                                         settings, purpose="judge")))
    requests = [gateway.stamp(a.request) for a in asks]
    results = gateway.complete_many(requests) if requests else []
    parse = parse_pairwise if judge.mode == "pairwise" else parse_five_point if judge.scale == "five_point" else parse_pass_fail
    settings_json = json.dumps(settings, sort_keys=True)
    by_example: dict[int, list[tuple[_Ask, LLMRequest, LLMResult, str | None]]] = {}
    calls, unparsed, failed = [], 0, 0
    for ask, request, result in zip(asks, requests, results):
        verdict = parse(result.text) if result.error is None else None
        failed += result.error is not None
        unparsed += result.error is None and verdict is None
        by_example.setdefault(ask.index, []).append((ask, request, result, verdict))
    scores = [0.0] * len(examples)
    rows: list[dict[str, Any]] = []
    now = dt.datetime.now()

    def row(i: int, order: str, criterion: str | None, verdict: str | None, score: float | None, outcome: Outcome | None,
            result: LLMResult | None, request: LLMRequest | None) -> dict[str, Any]:
        return {
            "study_id": study_id, "trial_id": trial_id, "example_id": examples[i].id, "mode": judge.mode, "order": order,
            "criterion": criterion, "verdict": verdict, "raw_answer": result.text if result else None,
            "error": result.error if result else None, "cache_key": request.cache_key if request else None, "score": score,
            "example_score": scores[i], "outcome": outcome, "judge_model": judge.model, "created_at": now,
        }

    for i, (verdict, score, outcome) in fixed.items():
        scores[i] = score
        rows.append(row(i, "single", None, verdict, score, outcome, None, None))
    for i, items in by_example.items():
        if judge.mode == "pairwise":
            verdicts = {ask.order: v for ask, _, _, v in items}
            outcome, scores[i] = combine_orders(verdicts.get("ab"), verdicts.get("ba"))
            for ask, request, result, v in items:
                own = order_score(ask.order, v)
                rows.append(row(i, ask.order, None, v, own, outcome, result, request))
                calls.append(_call(request, result, study_id, trial_id, examples[i].id, settings_json, v, own))
            continue
        item_scores = [verdict_score(judge, v) for _, _, _, v in items]
        scores[i] = 0.0 if any(s is None for s in item_scores) else sum(item_scores) / len(item_scores)
        for (ask, request, result, v), s in zip(items, item_scores):
            rows.append(row(i, ask.order, ask.criterion, v, s, None, result, request))
            calls.append(_call(request, result, study_id, trial_id, examples[i].id, settings_json, v, s))
    return Judged(scores=scores, calls=calls, judgements=rows, unparsed=unparsed, failed=failed)


def _call(request: LLMRequest, result: LLMResult, study_id: str | None, trial_id: int | None, example_id: str,
          settings: str, verdict: str | None, score: float | None) -> CallRecord:
    return call_record(request, result, study_id=study_id, trial_id=trial_id, example_id=example_id, settings=settings,
                       purpose="judge", prediction=None if verdict is None else json.dumps(verdict), score=score)


# ------------------------------------------------------------------------------------ reading back
@dataclasses.dataclass(frozen=True)
class ExampleVerdict:
    """What the judge decided of one example of a judged trial (for calibration and reports)."""

    score: float  # the example's score in [0, 1]
    outcome: Outcome | None  # pairwise: win | tie | loss; None: rubric, or unjudged (an answer did not parse)
    verdicts: dict[str, str | None]  # pairwise: order -> A | B | tie (| win: no reference); rubric: criterion ('' overall) -> verdict


def judged_verdicts(wh: Warehouse, study_id: str, trial_id: int) -> dict[str, ExampleVerdict]:
    """Per example of a judged trial, its score, (pairwise) win/tie/loss and each judge answer's verdict."""
    out: dict[str, ExampleVerdict] = {}
    for r in records.trial_judgements(wh, study_id, trial_id):
        key = r["order"] if r["mode"] == "pairwise" else (r["criterion"] or "")
        found = out.get(r["example_id"])
        if found is None:
            found = out[r["example_id"]] = ExampleVerdict(score=float(r["example_score"]), outcome=r["outcome"], verdicts={})
        found.verdicts[key] = r["verdict"]
    return out


def incumbent_references(wh: Warehouse, study_id: str, split: str) -> dict[str, Any] | None:
    """The incumbent's answers on a split of a study (example id -> its parsed prediction), the
    reference of a pairwise judge; None when the incumbent has no trial on that split yet."""
    trials = [r for r in records.study_trials(wh, study_id) if r["role"] == "incumbent" and r["split"] == split]
    if not trials:
        return None
    chosen = max(trials, key=lambda r: (r["status"] == "completed", r["trial_id"]))
    return {example_id: prediction for example_id, (_, prediction) in records.trial_answers(wh, study_id, chosen["trial_id"]).items()}


# ------------------------------------------------------------------------------------- worst case
JUDGE_PROMPT_CHARS = 400  # the judge prompt's own wording around the instructions, input and answers
ANSWER_CHARS_PER_TOKEN = 8  # a judged answer of n tokens, at most (typical text: ~4 characters per token)


def judge_call_worst_usd(spec: FeatureSpec, judge: JudgeSpec, prices: Any, examples: Sequence[Example], answer_tokens: int) -> float:
    """The worst case of one judge call, as the gateway bounds it (one token per prompt character,
    all of the judge's `max_tokens` generated): the longest input, the longest criterion, the gold
    reference (rubric, when the data has it) and the judged answer(s) at `answer_tokens` tokens
    each (two for pairwise). `prices` is a PriceBook."""
    longest_input = max((len(render_input(spec, e)) for e in examples), default=0)
    longest_gold = max((len(str(e.outputs.get(spec.target.name) or "")) for e in examples), default=0)
    answers = 2 if judge.mode == "pairwise" else 1
    chars = (JUDGE_PROMPT_CHARS + 2 * len(judge.instructions) + max((len(c) for c in judge.criteria or []), default=0)
             + longest_input + (longest_gold if judge.mode == "rubric" else 0) + answers * answer_tokens * ANSWER_CHARS_PER_TOKEN)
    return prices.cost(judge.model, chars, int(judge.settings.get("max_tokens") or 4096))
