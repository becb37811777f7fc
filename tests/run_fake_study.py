"""Run one migrate-feature study on the fake provider, in its own process (for the resume test).

usage: python -m tests.run_fake_study FEATURE_DIR SPACE_FILE MAX_TRIALS [OPTUNA_STORAGE_URL]
Latency is deterministic enough to order configs: it grows with the prompt and the answer budget.
"""

from __future__ import annotations

import os
import sys

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from tests.fake_plugin import install_slow  # noqa: E402


def main() -> None:
    feature_dir, space, max_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storage = sys.argv[4] if len(sys.argv) > 4 else None
    install_slow()
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import GatewayParams, MigrateParams

    summary = migrate_feature(MigrateParams(
        feature_dir=feature_dir, space=space, max_trials=max_trials, trigger="cli", optuna_storage=storage, gateway=GatewayParams(concurrency=1),
    ))
    print("STUDY", summary.study_id, summary.status, flush=True)


if __name__ == "__main__":
    main()
