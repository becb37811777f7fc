"""The write-ahead ledger: every paid answer is on disk before the caller sees it.

A gateway of a study (in any process: the flow's threads, a Dask worker) appends JSON lines to a
file of its own, `<home>/ledger/<study>/<pid>-<uuid>.jsonl`, each flushed and fsync'd before the
gateway goes on:
- `intent` before a request is sent: its cache key and its worst-case cost. A process killed
  between sending and receiving leaves an intent with no answer, counted at its worst case, so
  the record is at least what the provider billed;
- `answer` when a paid answer came back: tokens, cost, and the request and answer that fill the
  response cache (never credentials: litellm's arguments stay out of it). It repeats what its
  intent says of the call (study, trial, purpose, model, cache key): an answer can come back after
  its task ended and its file was ingested and removed (a DSPy compile's call in flight when a stop
  was requested); it then opens a new file without its intent and is still ingested whole;
- `failed` when the request got no answer after its retries (nothing was billed for it).
The flow process, the warehouse's one writer, ingests the files into table `ledger` (unique per
journal and line) and `llm_cache`, idempotently; a fully ingested file whose writer is gone is
removed. The study's spend for its cap, its record and its report is the ledger's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offramp.warehouse import Warehouse, records

LEDGER_DIR = "ledger"


def study_dir(home: Path, study_id: str) -> Path:
    """Where a study's journals live."""
    return home / LEDGER_DIR / study_id


class Journal:
    """One gateway's append-only journal file (created on its first line). Thread-safe."""

    def __init__(self, home: Path, study_id: str, trial_id: int | None, purpose: str) -> None:
        self.path = study_dir(home, study_id) / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self.study_id, self.trial_id, self.purpose = study_id, trial_id, purpose
        self._seq = 0
        self._lock = threading.Lock()
        self._handle: Any = None

    def _append(self, line: dict[str, Any]) -> int:
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the gateway's life
            self._seq += 1
            line = {"seq": self._seq, "at": dt.datetime.now().isoformat(), **line}
            self._handle.write(json.dumps(line, sort_keys=True) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())  # durable before the request goes out / the answer is used
            return self._seq

    def _about(self, model: str, cache_key: str, purpose: str | None = None) -> dict[str, Any]:
        return {"study_id": self.study_id, "trial_id": self.trial_id, "purpose": purpose or self.purpose, "model": model,
                "cache_key": cache_key}

    def intent(self, *, model: str, cache_key: str, worst_usd: float, purpose: str | None = None) -> int:
        """Before a request is sent; returns the line number its outcome refers to. `purpose`: the
        call's own (a judge call made by an evaluation's gateway), else the gateway's."""
        return self._append({"kind": "intent", **self._about(model, cache_key, purpose), "worst_usd": worst_usd})

    def answer(self, intent: int, *, model: str, cache_key: str, request: dict[str, Any] | None, text: str,
               prompt_tokens: int | None, completion_tokens: int | None, cost_usd: float, latency_s: float,
               purpose: str | None = None) -> None:
        """A paid answer, before the caller gets it (`request` None: machine time offramp spent itself,
        e.g. training a tuned model: on the bill, not in the response cache)."""
        self._append({
            "kind": "answer", "intent": intent, **self._about(model, cache_key, purpose), "request": request, "output_text": text,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost_usd": cost_usd,
            "latency_s": latency_s,
        })

    def failed(self, intent: int) -> None:
        """No answer after the retries: nothing billed."""
        self._append({"kind": "failed", "intent": intent})

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """A journal's whole lines; a torn last line (the writer killed mid-write) is skipped: its
    intent, written whole before, still counts."""
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            if not raw.endswith("\n"):
                return
            try:
                yield json.loads(raw)
            except ValueError:
                return


def _writer_alive(path: Path) -> bool:
    pid = int(path.name.split("-", 1)[0])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ingest_file(wh: Warehouse, path: Path, *, remove: bool = False) -> int:
    """Bring one journal into the warehouse (table `ledger`, its paid answers into `llm_cache`);
    idempotent. `remove`: delete it afterwards (its writer is done). Returns the lines read."""
    rows, cache = [], []
    intents: dict[int, dict[str, Any]] = {}
    for line in _lines(path):
        if line["kind"] == "intent":
            intents[line["seq"]] = line
        about = _about(line, intents, study_id=path.parent.name)
        rows.append(_ledger_row(path.name, line, about))
        if line["kind"] == "answer" and about["cache_key"] is not None and line.get("request") is not None:
            cache.append(_cache_entry(line, about))
    records.ingest_ledger(wh, rows, cache)
    if remove and not wh.holding():  # a write kept in memory (a reader holds the file): the journal stays until it lands
        path.unlink(missing_ok=True)
    return len(rows)


def ingest(wh: Warehouse, home: Path, study_id: str, *, remove_own: bool = False) -> int:
    """Bring all of a study's journals into the warehouse; remove those whose writer is gone
    (or, with `remove_own`, this process's: its gateways are done). Returns the lines read."""
    folder = study_dir(home, study_id)
    if not folder.is_dir():
        return 0
    read = 0
    for path in sorted(folder.glob("*.jsonl")):
        done = not _writer_alive(path) or (remove_own and path.name.startswith(f"{os.getpid()}-"))
        read += ingest_file(wh, path, remove=done)
    return read


_ABOUT = ("study_id", "trial_id", "purpose", "model", "cache_key")


def _about(line: dict[str, Any], intents: dict[int, dict[str, Any]], *, study_id: str) -> dict[str, Any]:
    """What a line is about: its own fields (intents, and answers since they repeat them), else its
    intent's in this file; the study is the folder's when neither says (an answer of an older journal
    whose intent went with a removed file: its cost still counts, it fills no cache entry)."""
    intent = intents.get(line.get("intent"), {}) if line["kind"] != "intent" else {}
    about = {key: line.get(key, intent.get(key)) for key in _ABOUT}
    about["study_id"] = about["study_id"] or study_id
    return about


def _ledger_row(journal: str, line: dict[str, Any], about: dict[str, Any]) -> dict[str, Any]:
    return {
        "journal": journal, "seq": line["seq"], "kind": line["kind"], "intent_seq": line.get("intent"), **about,
        "worst_usd": line.get("worst_usd"), "cost_usd": line.get("cost_usd"), "prompt_tokens": line.get("prompt_tokens"),
        "completion_tokens": line.get("completion_tokens"), "created_at": dt.datetime.fromisoformat(line["at"]),
    }


def _cache_entry(line: dict[str, Any], about: dict[str, Any]) -> records.CacheEntry:
    return records.CacheEntry(
        cache_key=about["cache_key"], model=about["model"], request=json.dumps(line["request"], sort_keys=True),
        output_text=line["output_text"], prompt_tokens=line["prompt_tokens"], completion_tokens=line["completion_tokens"],
        cost_usd=line["cost_usd"], latency_s=line["latency_s"], created_at=dt.datetime.fromisoformat(line["at"]),
    )
