"""Build this feature's data files from the GSM8K subset in data/gsm8k/ (standard library only,
deterministic). Run from anywhere: `python features/math-tutor/build_data.py`.

Writes:
- data/questions.csv   the study's examples: id, question, steps (a slice). No gold answer: the
                       feature is judged, not scored against a reference.
- data/calibration_questions.jsonl, data/traffic_questions.jsonl
                       the questions record_answers.py asks the local models (maintainers only).

The GSM8K human-written solutions stay in data/gsm8k/; they are used for two things only: the
`steps` slice (how many calculation lines the human solution needed) and, in record_answers.py,
the correctness verdicts of data/human_judgements.jsonl.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "data" / "gsm8k" / "test_subset.jsonl"
SEED = 7
N_STUDY, N_TRAFFIC, N_CALIBRATION = 120, 60, 60


def gold_number(solution: str) -> str:
    """The final number of a GSM8K solution (after '#### '), without thousands separators."""
    return solution.split("####")[-1].strip().replace(",", "")


def final_number(text: str | None) -> str | None:
    """The number an answer ends on: after its last 'Answer:' when it has one, else its last number."""
    if not text:
        return None
    tail = text.rsplit("Answer:", 1)[-1] if "Answer:" in text else text
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", tail)
    return found[-1].replace(",", "") if found else None


def same_number(a: str | None, b: str | None) -> bool:
    try:
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return False


def steps(solution: str) -> str:
    n = len([line for line in solution.split("####")[0].strip().splitlines() if line.strip()])
    return "1-2" if n <= 2 else ("3" if n == 3 else "4+")


def load() -> list[dict]:
    rows = [json.loads(line) for line in SOURCE.read_text().splitlines() if line.strip()]
    random.Random(SEED).shuffle(rows)
    return rows


def main() -> None:
    rows = load()
    study = rows[:N_STUDY]
    traffic = rows[N_STUDY:N_STUDY + N_TRAFFIC]
    calibration = rows[N_STUDY + N_TRAFFIC:N_STUDY + N_TRAFFIC + N_CALIBRATION]
    out = HERE / "data"
    with (out / "questions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "question", "steps"])
        for r in study:
            w.writerow([f"gsm8k-test-{r['line']}", r["question"], steps(r["answer"])])
    for name, part in (("traffic_questions.jsonl", traffic), ("calibration_questions.jsonl", calibration)):
        with (out / name).open("w") as f:
            for r in part:
                f.write(json.dumps({"id": f"gsm8k-test-{r['line']}", "question": r["question"],
                                    "gold": gold_number(r["answer"])}) + "\n")
    print(f"questions.csv: {len(study)}; traffic: {len(traffic)}; calibration: {len(calibration)}")


if __name__ == "__main__":
    main()
