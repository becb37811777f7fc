#!/usr/bin/env python3
"""Build data/routing.csv for the bank-support-routing feature.

Reads the vendored BANKING77 files (data/banking77/{train,test}.csv and
categories.json) and queues.yaml, checks that every BANKING77 intent is mapped
to exactly one queue, and writes data/routing.csv with columns

    id,text,intent,queue,source

* id      ``train-000001`` .. / ``test-000001`` ..: the 1-based data-row number
          in the source file (header excluded), so ids are stable as long as
          the vendored source files do not change.
* text    the customer message, verbatim (no stripping or normalisation).
* intent  the BANKING77 category, verbatim.
* queue   the queue that intent is mapped to in queues.yaml.
* source  ``train`` or ``test`` (the BANKING77 split the row comes from).

Rows are written in source order: all of train.csv, then all of test.csv.
Output is UTF-8, ``\\n`` line endings, minimal CSV quoting, so running the
script again on the same inputs gives a byte-identical file.

Usage (from anywhere):

    python features/bank-support-routing/build_data.py          # (re)write
    python features/bank-support-routing/build_data.py --check  # verify only

Only the standard library and PyYAML are used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SRC_DIR = HERE / "data" / "banking77"
QUEUES_PATH = HERE / "queues.yaml"
OUT_PATH = HERE / "data" / "routing.csv"
SPLITS = ("train", "test")
COLUMNS = ("id", "text", "intent", "queue", "source")


class BuildError(Exception):
    """A problem with the inputs; reported without a traceback."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last)."""


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise BuildError(
                f"{QUEUES_PATH.name}: duplicate key {key!r} "
                f"(line {key_node.start_mark.line + 1})"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_categories() -> list[str]:
    path = SRC_DIR / "categories.json"
    cats = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        raise BuildError(f"{path}: expected a JSON list of strings")
    dups = sorted(c for c, n in Counter(cats).items() if n > 1)
    if dups:
        raise BuildError(f"{path}: duplicate categories: {dups}")
    return cats


def load_queues(categories: list[str]) -> tuple[list[str], dict[str, str]]:
    """Return (queue names in file order, intent -> queue). Validates fully."""
    with QUEUES_PATH.open(encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_UniqueKeyLoader)
    if not isinstance(doc, dict) or not isinstance(doc.get("queues"), dict):
        raise BuildError(f"{QUEUES_PATH.name}: expected a top-level 'queues:' mapping")
    queues = doc["queues"]
    if not queues:
        raise BuildError(f"{QUEUES_PATH.name}: 'queues' is empty")

    problems: list[str] = []
    owners: dict[str, list[str]] = {}
    for name, spec in queues.items():
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"queue name {name!r} must be a plain identifier")
        if not isinstance(spec, dict):
            problems.append(f"queue {name!r}: expected a mapping with 'description' and 'intents'")
            continue
        extra = sorted(set(spec) - {"description", "intents"})
        if extra:
            problems.append(f"queue {name!r}: unknown keys {extra}")
        desc = spec.get("description")
        if not isinstance(desc, str) or not desc.strip():
            problems.append(f"queue {name!r}: missing or empty 'description'")
        intents = spec.get("intents")
        if not isinstance(intents, list) or not intents:
            problems.append(f"queue {name!r}: 'intents' must be a non-empty list")
            continue
        for intent in intents:
            if not isinstance(intent, str):
                problems.append(f"queue {name!r}: intent {intent!r} is not a string")
                continue
            owners.setdefault(intent, []).append(name)

    known = set(categories)
    unknown = sorted(i for i in owners if i not in known)
    if unknown:
        problems.append(
            "intents not in categories.json (typo?): " + ", ".join(unknown)
        )
    multi = {i: q for i, q in owners.items() if len(q) > 1}
    for intent in sorted(multi):
        problems.append(
            f"intent {intent!r} is mapped more than once: {multi[intent]}"
        )
    unmapped = [c for c in categories if c not in owners]
    if unmapped:
        problems.append(
            f"{len(unmapped)} intent(s) not mapped to any queue: " + ", ".join(unmapped)
        )
    if problems:
        raise BuildError(
            f"{QUEUES_PATH.name} is invalid; every one of the {len(categories)} "
            "BANKING77 intents must appear in exactly one queue:\n  - "
            + "\n  - ".join(problems)
        )
    return list(queues), {i: q[0] for i, q in owners.items()}


def read_split(split: str, known: set[str]) -> list[tuple[str, str]]:
    path = SRC_DIR / f"{split}.csv"
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["text", "category"]:
            raise BuildError(f"{path}: expected header text,category, got {header}")
        rows = []
        for n, rec in enumerate(reader, start=1):
            if len(rec) != 2:
                raise BuildError(f"{path}: data row {n} has {len(rec)} fields, expected 2")
            text, cat = rec
            if cat not in known:
                raise BuildError(f"{path}: data row {n} has category {cat!r} not in categories.json")
            rows.append((text, cat))
    return rows


def render(intent_to_queue: dict[str, str], known: set[str]):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(COLUMNS)
    counts: dict[str, Counter] = {}
    for split in SPLITS:
        rows = read_split(split, known)
        counts[split] = Counter()
        for n, (text, intent) in enumerate(rows, start=1):
            queue = intent_to_queue[intent]
            counts[split][queue] += 1
            w.writerow((f"{split}-{n:06d}", text, intent, queue, split))
    return buf.getvalue().encode("utf-8"), counts


def print_distribution(queue_names, counts, intent_to_queue) -> None:
    n_intents = Counter(intent_to_queue.values())
    total = Counter()
    for c in counts.values():
        total.update(c)
    n_test, n_all = sum(counts["test"].values()), sum(total.values())
    print(f"{'queue':<18}{'intents':>8}{'test':>7}{'test %':>8}{'all':>7}{'all %':>8}")
    for q in queue_names:
        t, a = counts["test"][q], total[q]
        print(f"{q:<18}{n_intents[q]:>8}{t:>7}{100 * t / n_test:>7.1f}%{a:>7}{100 * a / n_all:>7.1f}%")
    print(f"{'TOTAL':<18}{len(intent_to_queue):>8}{n_test:>7}{'':>8}{n_all:>7}")
    top_q, top_n = max(((q, counts["test"][q]) for q in queue_names), key=lambda x: x[1])
    print(f"majority class in test: {top_q} = {top_n}/{n_test} = {100 * top_n / n_test:.1f}%")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if data/routing.csv is missing or stale")
    ap.add_argument("--quiet", action="store_true", help="do not print the distribution")
    args = ap.parse_args(argv)
    try:
        categories = load_categories()
        queue_names, intent_to_queue = load_queues(categories)
        data, counts = render(intent_to_queue, set(categories))
    except BuildError as e:
        print(f"build_data.py: error: {e}", file=sys.stderr)
        return 2

    rel = OUT_PATH.relative_to(HERE)
    if args.check:
        current = OUT_PATH.read_bytes() if OUT_PATH.exists() else None
        if current != data:
            print(f"{rel} is missing or out of date; run build_data.py", file=sys.stderr)
            return 1
        print(f"{rel} is up to date")
    else:
        tmp = OUT_PATH.with_suffix(".csv.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, OUT_PATH)
        print(f"wrote {rel}: {sum(sum(c.values()) for c in counts.values())} rows")
    if not args.quiet:
        print_distribution(queue_names, counts, intent_to_queue)
    return 0


if __name__ == "__main__":
    sys.exit(main())
