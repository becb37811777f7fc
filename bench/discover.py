"""Benchmark: does slice discovery find a planted bad slice, and how often does it cry wolf? (not a
test; nothing asserts)

Run: `.venv/bin/python -m bench.discover [--seeds 10] [--n 400] [--json]`.

Synthetic traffic (`synthetic_traffic`): `n` support messages from 6 topics (cards, transfers,
refunds, login, fees, addresses), each sentence built from its topic's words, shared filler words
and a few words of a neighbouring topic. The planted slice is a *sub-topic* of the cards topic
("card declined abroad, foreign currency, ...": 1-2 cards words and 3-4 of its own) holding
`share` of the traffic; the candidate loses on `loss_in` of its members and on `loss_out` of every
other input (disagreements: every loss, plus 10% of the rest at random). Discovery
(`tasks.evidence.discover.discover_slices`, default rule) runs on each; for each planted share x loss
rate, over the seeds, the table gives:
  found         runs in which a reported `loss` slice holds >= half of the planted members, with >= 50% of its
                members planted (the slice is "found"), of the runs
  precision     mean share of the best-matching reported slice's members that are planted (runs where found)
  recall        mean share of the planted members inside it (runs where found)
  false/run     reported `loss` slices that are not the planted one, per run (mostly planted = none)
Null rows (no planted slice, the candidate loses 10% or 30% of every input uniformly) measure false
alarms alone.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from offramp.tasks.evidence.discover import ComparedInput, discover_slices

TOPICS = {
    "cards": ["card", "debit", "credit", "pin", "contactless", "chip", "physical", "virtual", "replace", "stolen", "lost", "expired", "activate", "limit"],
    "transfers": ["transfer", "wire", "sepa", "iban", "beneficiary", "recipient", "send", "received", "pending", "bank", "account", "arrive", "sort", "code"],
    "refunds": ["refund", "return", "merchant", "purchase", "dispute", "chargeback", "order", "item", "seller", "money", "back", "duplicate"],
    "login": ["login", "password", "app", "reset", "locked", "biometric", "face", "fingerprint", "two", "factor", "code", "device", "sign", "verification"],
    "fees": ["fee", "charge", "commission", "monthly", "plan", "premium", "cost", "interest", "overdraft", "statement", "extra", "why", "charged"],
    "address": ["address", "change", "move", "street", "postcode", "city", "update", "details", "name", "phone", "email", "residence", "proof"],
}
PLANTED = ["abroad", "foreign", "currency", "exchange", "rate", "travel", "holiday", "atm", "overseas", "declined", "country"]
FILLER = ["i", "my", "the", "a", "is", "was", "can", "you", "please", "help", "how", "do", "why", "it", "not", "to", "with",
          "for", "on", "this", "today", "yesterday", "again", "still", "need", "want", "tried"]


def _sentence(rng: random.Random, words: list[str], neighbour: list[str], extra: list[str] | None = None) -> str:
    topic = (rng.sample(words, rng.randint(1, 2)) + rng.sample(extra, rng.randint(3, 4)) if extra
             else rng.sample(words, rng.randint(2, 4)))
    noise = rng.sample(FILLER, rng.randint(3, 6)) + (rng.sample(neighbour, 1) if rng.random() < 0.3 else [])
    out = topic + noise
    rng.shuffle(out)
    return " ".join(out)


def synthetic_traffic(n: int = 400, *, share: float = 0.0, loss_in: float = 0.6, loss_out: float = 0.05, seed: int = 0,
                      planted_topic: bool = False) -> tuple[list[ComparedInput], set[str]]:
    """(compared inputs, ids of the planted slice's members). `planted_topic`: the planted slice is
    the whole cards topic (1/6 of the traffic) rather than a sub-topic of `share`."""
    rng = random.Random(seed)
    names = list(TOPICS)
    planted_n = 0 if planted_topic else round(share * n)
    inputs, planted = [], set()
    for i in range(n):
        example_id = f"ex{i:05d}"
        if i < planted_n:
            text, bad = _sentence(rng, TOPICS["cards"], TOPICS["fees"], PLANTED), True
        else:
            topic = names[(i - planted_n) % len(names)]
            neighbour = TOPICS[names[(names.index(topic) + 1) % len(names)]]
            text, bad = _sentence(rng, TOPICS[topic], neighbour), planted_topic and topic == "cards"
        lost = rng.random() < (loss_in if bad else loss_out)
        disagrees = lost or rng.random() < 0.10
        if bad:
            planted.add(example_id)
        inputs.append(ComparedInput(example_id=example_id, text=text, lost=lost, disagrees=disagrees,
                                    incumbent_answer="cards", candidate_answer="fees" if disagrees else "cards"))
    rng.shuffle(inputs)
    return inputs, planted


def score_run(found, planted: set[str]) -> tuple[bool, float | None, float | None, int]:
    """(found the planted slice, member precision, member recall, false slices) of one discovery."""
    loss = [s for s in found.slices if s.signal == "loss"]
    best, best_overlap = None, 0
    for s in loss:
        overlap = len(planted & set(s.member_ids))
        if overlap > best_overlap:
            best, best_overlap = s, overlap
    if not planted or best is None:
        return False, None, None, len(loss)
    precision, recall = best_overlap / best.size, best_overlap / len(planted)
    hit = precision >= 0.5 and recall >= 0.5
    return hit, precision, recall, len(loss) - (1 if hit else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cases = [(0.0, 0.10, 0.10), (0.0, 0.30, 0.30)] + [(share, loss_in, 0.05) for share in (0.02, 0.05, 0.10)
                                                      for loss_in in (0.3, 0.6, 0.9)]
    rows = []
    started = time.perf_counter()
    for share, loss_in, loss_out in cases:
        hits, precisions, recalls, false = 0, [], [], 0
        for seed in range(args.seeds):
            inputs, planted = synthetic_traffic(args.n, share=share, loss_in=loss_in, loss_out=loss_out, seed=seed)
            hit, precision, recall, wrong = score_run(discover_slices(inputs, seed=seed), planted)
            hits += hit
            false += wrong
            if hit:
                precisions.append(precision)
                recalls.append(recall)
        rows.append({"planted_share": share, "planted_n": round(share * args.n), "loss_in": loss_in, "loss_out": loss_out,
                     "found": hits, "runs": args.seeds,
                     "precision": sum(precisions) / len(precisions) if precisions else None,
                     "recall": sum(recalls) / len(recalls) if recalls else None, "false_per_run": false / args.seeds})
    seconds = time.perf_counter() - started
    if args.json:
        json.dump({"rows": rows, "seconds": seconds, "n": args.n}, sys.stdout, indent=2)
        return 0
    print(f"Discovered slices on synthetic traffic: n={args.n} inputs per run, {args.seeds} seeds per row, "
          f"{seconds:.1f} s in all ({seconds / (len(cases) * args.seeds):.2f} s per discovery)")
    print("| planted share (n) | loss in / out | found | member precision | member recall | false slices / run |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        planted = "none (null)" if r["planted_share"] == 0 else f"{r['planted_share']:.0%} ({r['planted_n']})"
        print(f"| {planted} | {r['loss_in']:.0%} / {r['loss_out']:.0%} | {r['found']}/{r['runs']} | {fmt(r['precision'])} | "
              f"{fmt(r['recall'])} | {r['false_per_run']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
