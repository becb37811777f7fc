#!/usr/bin/env python3
"""Build data/posts.csv for the post-entity-type feature from the vendored WNUT17 files.

WNUT17 (data/wnut17/, CC BY 4.0) tags every token of a social-media post with BIO tags over six
entity types. The feature asks one question per post: what kind of named thing does it mention?
So a post becomes an example only when its answer is unambiguous:

* every entity in the post has the same type -> that type is the label;
* the post has no entity -> ``none``; one in NONE_EVERY of those posts is kept (in file order),
  so ``none`` is a large class, as it is in a real feed, without drowning the six others;
* posts with entities of two or more types, and posts of fewer than MIN_TOKENS tokens, are left out.

Columns of posts.csv:

    id,post,entity_type,entities,wnut_split

* id           ``<split>-NNNN``: the 1-based number of the post (sentence) in its source file,
               stable as long as the vendored files do not change.
* post         the post's tokens joined by single spaces (WNUT17 ships tokens, not the raw text).
* entity_type  person, location, group, corporation, product, creative_work or none
               (WNUT17's ``creative-work`` is written ``creative_work``).
* entities     the entity mentions, as annotated, joined by `` | `` (empty for none).
* wnut_split   train, dev or test: the WNUT17 file the post comes from.

Output is UTF-8 with ``\\n`` line endings and minimal quoting: a rerun gives a byte-identical file.

    python features/post-entity-type/build_data.py          # (re)write data/posts.csv
    python features/post-entity-type/build_data.py --check  # exit 1 if posts.csv is missing or stale

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC_DIR = HERE / "data" / "wnut17"
OUT_PATH = HERE / "data" / "posts.csv"
SOURCES = (("train", "wnut17train.conll"), ("dev", "emerging.dev.conll"), ("test", "emerging.test.annotated"))
TYPES = ("person", "location", "group", "corporation", "product", "creative_work")
COLUMNS = ("id", "post", "entity_type", "entities", "wnut_split")
NONE_EVERY = 4
MIN_TOKENS = 3


class BuildError(Exception):
    """A problem with the vendored files; reported without a traceback."""


def read_posts(path: Path) -> list[list[tuple[str, str]]]:
    """The posts of a CoNLL file: lists of (token, tag); a blank (or whitespace-only) line ends a post."""
    posts: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            if current:
                posts.append(current)
                current = []
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not (fields[1] == "O" or fields[1][:2] in ("B-", "I-")):
            raise BuildError(f"{path.name} line {number}: expected `token<TAB>tag` with a BIO tag, got {line!r}")
        current.append((fields[0], fields[1]))
    if current:
        posts.append(current)
    return posts


def mentions(post: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (type, surface form) of each entity mention: a B- tag and the I- tags that follow it."""
    found: list[tuple[str, list[str]]] = []
    for token, tag in post:
        if tag.startswith("B-"):
            found.append((tag[2:].replace("-", "_"), [token]))
        elif tag.startswith("I-") and found:
            found[-1][1].append(token)
    for kind, _ in found:
        if kind not in TYPES:
            raise BuildError(f"unknown entity type {kind!r}; expected one of {TYPES}")
    return [(kind, " ".join(tokens)) for kind, tokens in found]


def rows() -> list[tuple[str, str, str, str, str]]:
    """Every kept post of every source file, in file order."""
    out = []
    for split, name in SOURCES:
        nones = 0
        for number, post in enumerate(read_posts(SRC_DIR / name), start=1):
            if len(post) < MIN_TOKENS:
                continue
            found = mentions(post)
            kinds = {kind for kind, _ in found}
            if len(kinds) > 1:
                continue
            if not kinds:
                nones += 1
                if nones % NONE_EVERY:
                    continue
            label = kinds.pop() if kinds else "none"
            text = " ".join(token for token, _ in post)
            out.append((f"{split}-{number:04d}", text, label, " | ".join(surface for _, surface in found), split))
    return out


def render(kept: list[tuple[str, str, str, str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    writer.writerows(kept)
    return buf.getvalue().encode("utf-8")


def print_distribution(kept) -> None:
    labels = Counter(r[2] for r in kept)
    by_split = Counter((r[4], r[2]) for r in kept)
    print(f"{'entity_type':<15}{'train':>7}{'dev':>7}{'test':>7}{'all':>7}{'share':>8}")
    for label in (*TYPES, "none"):
        cells = "".join(f"{by_split[(s, label)]:>7}" for s, _ in SOURCES)
        print(f"{label:<15}{cells}{labels[label]:>7}{100 * labels[label] / len(kept):>7.1f}%")
    print(f"{'TOTAL':<15}{''.join(f'{sum(by_split[(s, t)] for t in labels):>7}' for s, _ in SOURCES)}{len(kept):>7}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if data/posts.csv is missing or stale")
    parser.add_argument("--quiet", action="store_true", help="do not print the distribution")
    args = parser.parse_args(argv)
    try:
        kept = rows()
    except (BuildError, OSError) as error:
        print(f"build_data.py: error: {error}", file=sys.stderr)
        return 2
    data = render(kept)
    rel = OUT_PATH.relative_to(HERE)
    if args.check:
        if not OUT_PATH.exists() or OUT_PATH.read_bytes() != data:
            print(f"{rel} is missing or out of date; run build_data.py", file=sys.stderr)
            return 1
        print(f"{rel} is up to date")
    else:
        tmp = OUT_PATH.with_suffix(".csv.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, OUT_PATH)
        print(f"wrote {rel}: {len(kept)} rows")
    if not args.quiet:
        print_distribution(kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
