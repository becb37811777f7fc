"""Benchmark: what judging costs. For each study of a judged feature (metric.judge) in a warehouse,
the judge's share of what the study paid and of its calls, beside the answers it judged (not a
test; nothing asserts).

Run a judged study first, e.g. `offramp demo --feature math-tutor` (local models: priced by machine
time, see tasks/gateway/prices.yaml), then:
`.venv/bin/python -m bench.judge_spend [--warehouse PATH] [--study ID]`.

Columns, per study: calls and spend by purpose (`eval` answers of the configs, `optimize` DSPy
compiles, `judge` the judge's calls, the rest), the judge's share of the spend and of the calls,
and judge calls per judged answer (pairwise asks two orders; identical answers and the incumbent
against itself need none; a cached judge call costs nothing again).
"""

from __future__ import annotations

import argparse
import sys

from offramp.warehouse import Warehouse, warehouse_path

QUERY = """
SELECT s.study_id, any_value(s.feature) AS feature,
       sum(s.n_calls) AS calls, sum(s.spend_usd) AS spend,
       sum(s.n_calls) FILTER (WHERE s.purpose = 'judge') AS judge_calls,
       sum(s.spend_usd) FILTER (WHERE s.purpose = 'judge') AS judge_spend,
       sum(s.spend_usd) FILTER (WHERE s.purpose = 'eval') AS eval_spend,
       sum(s.spend_usd) FILTER (WHERE s.purpose = 'optimize') AS optimize_spend
FROM v_study_spend s
WHERE s.study_id IN (SELECT DISTINCT study_id FROM judgements)
GROUP BY s.study_id
"""
ANSWERS = "SELECT study_id, count(DISTINCT (trial_id, example_id)) AS judged FROM judgements GROUP BY study_id"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=None, help="the DuckDB file (default: $OFFRAMP_HOME's warehouse)")
    parser.add_argument("--study", default=None, help="one study id (default: every judged study)")
    args = parser.parse_args(argv)
    wh = Warehouse(args.warehouse or warehouse_path(), read_only=True)
    _, rows = wh.fetch(QUERY)
    _, judged = wh.fetch(ANSWERS)
    answers = dict(judged)
    rows = [r for r in rows if args.study in (None, r[0])]
    if not rows:
        print("no judged study in this warehouse: run one first (e.g. `offramp demo --feature math-tutor`)")
        return 1
    print("| study | feature | calls | judge calls | judge share of calls | spend $ | judge $ | judge share of spend | "
          "eval $ | optimize $ | judged answers | judge calls / answer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for study, feature, calls, spend, jcalls, jspend, espend, ospend in rows:
        jcalls, jspend, spend = jcalls or 0, jspend or 0.0, spend or 0.0
        n = answers.get(study, 0)
        print(f"| {study} | {feature} | {calls} | {jcalls} | {jcalls / calls:.0%} | {spend:.6f} | {jspend:.6f} | "
              f"{(jspend / spend if spend else 0):.0%} | {espend or 0:.6f} | {ospend or 0:.6f} | {n} | "
              f"{(jcalls / n if n else 0):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
