"""Benchmark: can a small real local model serve as a judge (tasks/feature/judge.py)? Not a test.

Run: `LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m bench.judge_local [--model local/qwen2.5-0.5b] [--json]`
(the local model server must be up: `offramp models up qwen2.5-0.5b`). The state dir is a fresh
temporary one unless OFFRAMP_HOME is set, with the response cache off: every call is made.

Twelve support messages, each with a good reply (polite, answers the question) and a bad one (curt
or off topic), written here. Measured, on the real model, with the judge prompts offramp sends:
- pairwise (both orders, as a study asks): the share of judge answers that parse; per pair the
  combined outcome for the good reply (win/tie/loss), and how often the two orders agree on a side
  (consistent) versus each picking the same position (position bias: both A, or both B);
- rubric pass/fail, one overall verdict: parse rate, pass rate of the good and of the bad replies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offramp.tasks.feature.judge import judge_answers  # noqa: E402
from offramp.tasks.feature.spec import Example, FeatureSpec  # noqa: E402
from offramp.tasks.gateway.llm import Gateway  # noqa: E402
from offramp.tasks.gateway.prices import PriceBook  # noqa: E402

CASES = [
    ("How do I reset my password?", "Go to Settings, choose Security, then Reset password; we email you a link.", "No."),
    ("My card was stolen, what do I do?", "I'm sorry! Freeze the card in the app now, then call us to order a new one.", "Cards are plastic."),
    ("When will my refund arrive?", "Refunds reach your account within 5 business days of approval.", "Read the website."),
    ("Can I change my delivery address?", "Yes: open the order, tap Edit address, and save before it ships.", "Whatever."),
    ("Why was I charged twice?", "Sorry about that: the second charge is a hold and disappears within 3 days.", "Bananas are yellow."),
    ("Do you ship to Canada?", "Yes, we ship to Canada; delivery takes 5 to 8 days.", "Ask someone else."),
    ("How can I close my account?", "Go to Settings, Account, Close account, and confirm; your data is deleted in 30 days.", "You can't, ha."),
    ("The app crashes on start.", "Sorry! Please update to the latest version; if it still crashes, reinstall it.", "Buy a new phone."),
    ("What are your opening hours?", "We are open 9am to 6pm, Monday to Friday.", "Sometimes."),
    ("Is there a student discount?", "Yes, 20% off with a valid student email at checkout.", "No idea, stop asking."),
    ("How do I update my email?", "Open Profile, tap Email, enter the new address and confirm the code we send.", "The weather is nice."),
    ("Can I pay with PayPal?", "Yes, PayPal is available at checkout.", "Money is money."),
]


def spec(mode: str, model: str) -> FeatureSpec:
    return FeatureSpec.model_validate({
        "name": "reply-judge-bench",
        "signature": {"inputs": [{"name": "message"}], "outputs": [{"name": "reply", "type": "text"}]},
        "incumbent": {"model": model, "instructions": "Reply."},
        "data": {"files": [{"path": "x.csv"}], "columns": {"message": "message"}},
        "metric": {"judge": {"mode": mode, "model": model, "settings": {"temperature": 0, "max_tokens": 8},
                             "instructions": "A good reply is polite and answers the customer's question correctly."}},
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local/qwen2.5-0.5b")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(os.environ.get("OFFRAMP_HOME") or tempfile.mkdtemp())
    gateway = Gateway(None, PriceBook({}), home=home, concurrency=1, use_cache=False)
    examples = [Example(id=f"c{i}", inputs={"message": m}, outputs={}) for i, (m, _, _) in enumerate(CASES)]
    good = [{"reply": g} for _, g, _ in CASES]
    bad = {f"c{i}": {"reply": b} for i, (_, _, b) in enumerate(CASES)}
    out: dict[str, object] = {"model": args.model, "pairs": len(CASES)}

    pairwise = spec("pairwise", args.model)
    judged = judge_answers(pairwise, pairwise.metric.judge, examples, good, gateway, references=bad)
    rows = [r for r in judged.judgements if r["order"] in ("ab", "ba")]
    by_example: dict[str, dict[str, str | None]] = {}
    for r in rows:
        by_example.setdefault(r["example_id"], {})[r["order"]] = r["verdict"]
    outcomes = [next(r["outcome"] for r in judged.judgements if r["example_id"] == e.id) for e in examples]
    same_position = sum(1 for v in by_example.values() if v.get("ab") == v.get("ba") and v.get("ab") in ("A", "B"))
    out["pairwise"] = {
        "judge_answers": len(rows), "parsed": len(rows) - judged.unparsed - judged.failed, "unparsed": judged.unparsed,
        "failed": judged.failed, "good_reply_win": outcomes.count("win"), "tie": outcomes.count("tie"),
        "loss": outcomes.count("loss"), "unjudged": outcomes.count(None), "same_position_both_orders": same_position,
        "mean_score_good_reply": sum(judged.scores) / len(judged.scores),
        "raw_examples": [r["raw_answer"] for r in rows[:4]],
    }
    rubric = spec("rubric", args.model)
    good_judged = judge_answers(rubric, rubric.metric.judge, examples, good, gateway)
    bad_judged = judge_answers(rubric, rubric.metric.judge, examples, [bad[e.id] for e in examples], gateway)
    out["rubric"] = {
        "judge_answers": 2 * len(CASES), "unparsed": good_judged.unparsed + bad_judged.unparsed,
        "failed": good_judged.failed + bad_judged.failed,
        "pass_rate_good": sum(good_judged.scores) / len(CASES), "pass_rate_bad": sum(bad_judged.scores) / len(CASES),
        "raw_examples": [r["raw_answer"] for r in (good_judged.judgements + bad_judged.judgements)[:4]],
    }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
