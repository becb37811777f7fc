"""Run one migrate-feature study on the fake provider, in its own process (for the resume test).

usage: python -m tests.run_fake_study FEATURE_DIR SPACE_FILE MAX_TRIALS
Latency is deterministic enough to order configs: it grows with the prompt and the answer budget.
"""

from __future__ import annotations

import os
import sys
import time

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from tests import fake_provider  # noqa: E402
from tests.helpers import dspy_reply, oracle  # noqa: E402


def slow_answer(base_s: float, wrong_every: int):
    def answer(messages: list[dict]) -> str:
        chars = sum(len(m["content"]) for m in messages)
        time.sleep(base_s + chars / 8_000)
        text = messages[-1]["content"]
        if wrong_every and sum(map(ord, text)) % wrong_every == 0:
            return dspy_reply(messages, lambda name, t: "alpha") or "alpha"
        return oracle(messages)

    return answer


def main() -> None:
    feature_dir, space, max_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = fake_provider.install()
    provider.add("old", answer=slow_answer(0.02, 2))
    provider.add("good", answer=slow_answer(0.06, 7))
    provider.add("cheap", answer=slow_answer(0.01, 3))
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import GatewayParams, MigrateParams

    summary = migrate_feature(MigrateParams(
        feature_dir=feature_dir, space=space, max_trials=max_trials, trigger="cli", gateway=GatewayParams(concurrency=1),
    ))
    print("STUDY", summary.study_id, summary.status, flush=True)


if __name__ == "__main__":
    main()
