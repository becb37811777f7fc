"""Record real model answers for this feature's production log and human judgements (maintainers
only; needs the local models: `offramp models up`). Deterministic prompts, temperature 0; the
answers and their timestamps are what the models really said when this was run.

- data/traffic.jsonl: the incumbent (local/smollm2-135m with the shipped instructions) answering
  data/traffic_questions.jsonl, logged as OpenAI-style chat calls: {"request", "response",
  "timestamp"}: the feature's production sample, with what the incumbent served.
- data/human_judgements.jsonl: pairwise judgements of the incumbent's answer against another
  local model's (Qwen2.5 0.5B) answer to data/calibration_questions.jsonl. The verdict is derived from GSM8K's
  human-written solution: an answer is right when its final number equals the solution's; the right
  answer is preferred, and two right or two wrong answers are a tie. They judge correctness only, not
  style, and were not read by a person: see README.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from build_data import final_number, same_number  # noqa: E402

from offramp.tasks.gateway import local_models  # noqa: E402
from offramp.warehouse.home import state_dir  # noqa: E402

MAX_TOKENS = 64  # the incumbent's answer budget (feature.yaml)
# The other model answers with room to finish (at 64 tokens both answers are usually cut off before
# "Answer:", both wrong, a tie): the human set then holds enough preferences to measure the judge on.
OTHER_MAX_TOKENS = 160


def ask(alias: str, instructions: str, question: str, max_tokens: int = MAX_TOKENS) -> tuple[dict, dict]:
    base = local_models.api_base(alias, state_dir())
    request = {"model": alias, "messages": [{"role": "system", "content": instructions}, {"role": "user", "content": question}],
               "max_tokens": max_tokens, "temperature": 0.0}
    response = httpx.post(base + "/chat/completions", json=request, timeout=600).json()
    return request, response


def text(response: dict) -> str:
    return response["choices"][0]["message"]["content"] or ""


def main() -> None:
    spec = yaml.safe_load((HERE / "feature.yaml").read_text())
    instructions = spec["incumbent"]["instructions"]
    incumbent = spec["incumbent"]["model"].split("/", 1)[1]
    data = HERE / "data"
    if "--judgements-only" in sys.argv:
        return judgements(data, instructions, incumbent)
    with (data / "traffic.jsonl").open("w") as f:
        for row in map(json.loads, (data / "traffic_questions.jsonl").read_text().splitlines()):
            request, response = ask(incumbent, instructions, row["question"])
            request["model"] = "local/" + incumbent
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            f.write(json.dumps({"id": row["id"], "timestamp": stamp, "request": request, "response": response}) + "\n")
            f.flush()
    judgements(data, instructions, incumbent)


def judgements(data: Path, instructions: str, incumbent: str) -> None:
    rng = random.Random(11)
    others = ["qwen2.5-0.5b"]  # the other local model that answers in kind (the base Gemma rambles past any stop)
    with (data / "human_judgements.jsonl").open("w") as f:
        for i, row in enumerate(map(json.loads, (data / "calibration_questions.jsonl").read_text().splitlines())):
            other = others[i % len(others)]
            mine = text(ask(incumbent, instructions, row["question"])[1])
            theirs = text(ask(other, instructions, row["question"], OTHER_MAX_TOKENS)[1])
            right = {"mine": same_number(final_number(mine), row["gold"]), "theirs": same_number(final_number(theirs), row["gold"])}
            incumbent_first = rng.random() < 0.5
            a, b = (mine, theirs) if incumbent_first else (theirs, mine)
            ra, rb = (right["mine"], right["theirs"]) if incumbent_first else (right["theirs"], right["mine"])
            preferred = "tie" if ra == rb else ("a" if ra else "b")
            f.write(json.dumps({
                "id": row["id"], "inputs": {"question": row["question"]}, "answer_a": a, "answer_b": b, "preferred": preferred,
                "note": f"derived from GSM8K's solution (final number {row['gold']}); "
                        f"a = {'local/' + incumbent if incumbent_first else 'local/' + other}, "
                        f"b = {'local/' + other if incumbent_first else 'local/' + incumbent}",
            }) + "\n")
            f.flush()


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    main()
