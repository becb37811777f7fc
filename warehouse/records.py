"""What the layers above write, and the functions that write it.

Rows are plain frozen dataclasses (a trial writes thousands of calls; pydantic validation there
would cost more than the write). JSON columns are passed as JSON text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from offramp.warehouse.db import Warehouse, insert_rows, query


def _row(record: Any) -> dict[str, Any]:
    """A record's fields as a dict, shallow (dataclasses.asdict deep-copies: 10x slower on calls)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    """One LLM request as it happened (see table `calls`)."""

    study_id: str | None
    trial_id: int | None
    example_id: str | None
    model: str
    settings: str  # JSON text
    prompt_hash: str
    cache_key: str
    output_text: str | None
    prediction: str | None  # JSON text; None when unparseable or failed
    score: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float
    latency_s: float
    orig_cost_usd: float | None
    orig_latency_s: float | None
    error: str | None
    cache_hit: bool
    attempts: int
    purpose: str
    created_at: dt.datetime
    confidence: float | None = None  # log-probability of the answer, where the model gives one


@dataclasses.dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached model answer (see table `llm_cache`)."""

    cache_key: str
    model: str
    request: str  # JSON text
    output_text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float
    latency_s: float
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class TrialMeasurement:
    """What a trial measured on its examples: the objectives with the quality interval, the rates
    and the totals (the columns of table `trials`). The one shape of a measurement: the search
    races and tells Optuna with it, the warehouse stores it, the selection judges it, the report
    shows it."""

    status: str = "completed"
    n_examples: int = 0
    quality: float | None = None
    quality_ci_low: float | None = None
    quality_ci_high: float | None = None  # 95% interval of quality
    cost_per_1k_usd: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p95_ci_low: float | None = None
    latency_p95_ci_high: float | None = None  # 95% bootstrap interval of p95: its measurement noise
    load_avg_min: float | None = None
    load_avg_max: float | None = None  # the machine's 1-minute load average while the trial ran (os.getloadavg)
    error_rate: float | None = None
    parse_failure_rate: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend_usd: float = 0.0
    error: str | None = None

    @classmethod
    def failed(cls, n_examples: int, status: str, error: str) -> TrialMeasurement:
        """A trial that produced no measurement (failed, or stopped before evaluating)."""
        return cls(status=status, n_examples=n_examples, error=error[:2000])

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrialMeasurement:
        """From a row of `trials` or `v_trials` (the columns share the field names)."""
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in row and row[f.name] is not None})


@dataclasses.dataclass(frozen=True, slots=True)
class Trial:
    """A trial of a study: which config in which role on which split, and what it measured."""

    trial_id: int
    role: str  # incumbent | naive_swap | candidate
    split: str  # dev | test
    label: str  # the config, in words
    model: str
    measurement: TrialMeasurement
    source_trial_id: int | None = None  # a test trial: the dev trial it confirms
    program_hash: str | None = None
    optuna_number: int | None = None
    stage: float | None = None  # the fraction of the split evaluated

    @property
    def status(self) -> str:
        return self.measurement.status

    @classmethod
    def from_row(cls, row: dict[str, Any], label: str) -> Trial:
        return cls(
            trial_id=row["trial_id"], role=row["role"], split=row["split"], label=label, model=row["model"],
            measurement=TrialMeasurement.from_row(row), source_trial_id=row["source_trial_id"],
            program_hash=row["program_hash"], optuna_number=row["optuna_number"], stage=row["stage"],
        )


def upsert_feature(wh: Warehouse, *, name: str, description: str, spec_path: str, spec_hash: str, spec: dict) -> None:
    with wh.writer() as con:
        con.execute(
            query("upsert_feature"),
            {"name": name, "description": description, "spec_path": spec_path, "spec_hash": spec_hash, "spec": _json(spec)},
        )


def start_study(
    wh: Warehouse,
    *,
    study_id: str,
    feature: str,
    deprecated_model: str | None,
    incumbent_model: str,
    trigger: str,
    space_name: str,
    space: dict,
    params: dict,
    seed: int,
    max_spend_usd: float | None = None,
    optuna_storage: str | None = None,
) -> None:
    with wh.writer() as con:
        con.execute(
            query("insert_study"),
            {
                "id": study_id,
                "feature": feature,
                "deprecated_model": deprecated_model,
                "incumbent_model": incumbent_model,
                "trigger": trigger,
                "space_name": space_name,
                "space": _json(space),
                "params": _json(params),
                "seed": seed,
                "max_spend_usd": max_spend_usd,
                "optuna_storage": optuna_storage,
            },
        )


def finish_study(
    wh: Warehouse, study_id: str, *, status: str, error: str | None = None,
    selected_trial_id: int | None = None, selection: dict | None = None, stopped_by: str | None = None,
) -> None:
    with wh.writer() as con:
        con.execute(
            query("finish_study"),
            {"id": study_id, "status": status, "error": error, "selected_trial_id": selected_trial_id,
             "selection": _json(selection), "stopped_by": stopped_by},
        )


def interrupt_study(wh: Warehouse, study_id: str, reason: str) -> None:
    """A study stopped on request (SIGINT/SIGTERM): it and its running trials are `interrupted`,
    with `reason`; the same command resumes it."""
    with wh.writer() as con:
        con.execute(query("finish_study"), {"id": study_id, "status": "interrupted", "error": reason,
                                            "selected_trial_id": None, "selection": None, "stopped_by": "signal"})
        con.execute(query("stopped_trials"), {"study_id": study_id, "error": reason})


@dataclasses.dataclass(frozen=True, slots=True)
class StudyState:
    """What a rerun needs to know of a recorded study."""

    status: str
    params: dict
    stopped_by: str | None
    max_spend_usd: float | None


def find_study(wh: Warehouse, study_id: str) -> StudyState | None:
    """The recorded state of a study, or None."""
    if not wh.path.exists():
        return None
    wh.ensure_schema()
    with wh.reader() as con:
        row = con.execute(query("find_study"), {"study_id": study_id}).fetchone()
    return None if row is None else StudyState(row[1], json.loads(row[2]), row[3], row[4])


def change_cap(wh: Warehouse, study_id: str, from_usd: float | None, to_usd: float | None, spent_usd: float) -> None:
    """Record a change of a study's spend cap (from, to, the spend then, when) and apply it."""
    with wh.writer() as con:
        con.execute(query("insert_cap_change"),
                    {"study_id": study_id, "from_usd": from_usd, "to_usd": to_usd, "spent_usd": spent_usd})
        con.execute("UPDATE studies SET max_spend_usd = $to_usd WHERE id = $study_id", {"to_usd": to_usd, "study_id": study_id})


def ingest_ledger(wh: Warehouse, rows: Sequence[dict[str, Any]], cache: Sequence[CacheEntry]) -> None:
    """Journal lines into `ledger` and their paid answers into `llm_cache`, in one transaction;
    lines already there are kept (so ingesting twice changes nothing)."""
    if not rows:
        return
    cache_rows = [_row(e) for e in cache]

    def apply(con: Any) -> None:
        insert_rows(con, "insert_ledger", rows)
        insert_rows(con, "insert_cache", cache_rows)

    wh.defer(apply, _cache_lookups(cache))  # kept in order while a reader holds the file (the journal stays)


def charge_unfinished_trials(wh: Warehouse, study_id: str) -> None:
    """Trials that did not complete are charged their evaluation calls' cost from the ledger."""
    with wh.writer() as con:
        con.execute(query("trial_spend"), {"study_id": study_id})


def resume_study(wh: Warehouse, study_id: str) -> None:
    """Mark a study running again and its interrupted trials failed."""
    with wh.writer() as con:
        con.execute(query("resume_study"), {"study_id": study_id})
        con.execute(query("interrupted_trials"), {"study_id": study_id})


def study_trials(wh: Warehouse, study_id: str, *, own_writes: bool = True) -> list[dict]:
    """The study's trials. `own_writes=False`: only what the file holds, without waiting for the
    writes this process keeps while another process holds the file (`Warehouse.reader`)."""
    wh.ensure_schema()
    with wh.reader(own_writes=own_writes) as con:
        cursor = con.execute(query("study_trials"), {"study_id": study_id})
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def start_trial(
    wh: Warehouse, *, study_id: str, trial_id: int, role: str, split: str, source_trial_id: int | None,
    config_hash: str, model: str, settings: dict, strategy: str = "incumbent", compile_key: str | None = None,
    optuna_number: int | None = None,
) -> None:
    params = {
        "study_id": study_id, "trial_id": trial_id, "role": role, "split": split,
        "source_trial_id": source_trial_id, "config_hash": config_hash, "model": model,
        "settings": _json(settings), "strategy": strategy, "compile_key": compile_key,
        "optuna_number": optuna_number,
    }
    wh.defer(lambda con: con.execute(query("insert_trial"), params))


def finish_trial(
    wh: Warehouse, *, study_id: str, trial_id: int, measurement: TrialMeasurement, calls: list[CallRecord],
    program_hash: str | None = None, reused_program: bool | None = None, feasible: bool | None = None,
    stage: float | None = None,
) -> None:
    """Store a trial's calls and its aggregates in one transaction: both land or neither (kept
    in order while another process holds the file: `Warehouse.defer`)."""
    rows = [_row(c) for c in calls]
    params = {
        "study_id": study_id, "trial_id": trial_id, "program_hash": program_hash, "reused_program": reused_program,
        "feasible": feasible, "stage": stage, **_row(measurement),
    }

    def apply(con: Any) -> None:
        insert_rows(con, "insert_calls", rows)
        con.execute(query("finish_trial"), params)

    wh.defer(apply)


@dataclasses.dataclass(frozen=True, slots=True)
class ProgramRecord:
    """A compiled program (see table `programs`)."""

    compile_key: str
    program_hash: str
    feature: str
    model: str
    strategy: str
    strategy_params: str  # JSON text
    settings: str  # JSON text
    train_size: int
    seed: int
    program: str  # JSON text
    study_id: str | None
    trial_id: int | None
    compile_calls: int
    compile_tokens: int
    compile_cost_usd: float
    compile_seconds: float
    compile_cut: str | None = None  # the call bound stopped the optimizer: why, and what was kept


def store_program(wh: Warehouse, program: ProgramRecord, calls: Sequence[CallRecord], paid: Sequence[CacheEntry] = ()) -> None:
    """Store a compiled program with the optimizer calls that made it (and their paid answers,
    when the compiling task handed them back), in one transaction (kept in order while another
    process holds the file; `find_program` and `cache_lookup` see it meanwhile)."""
    call_rows, paid_rows, program_row = [_row(c) for c in calls], [_row(e) for e in paid], _row(program)

    def apply(con: Any) -> None:
        insert_rows(con, "insert_calls", call_rows)
        insert_rows(con, "insert_cache", paid_rows)
        con.execute(query("insert_program"), program_row)

    lookups = {**_cache_lookups(paid), _PROGRAM + program.compile_key: (program.program_hash, program.program)}
    wh.defer(apply, lookups)


def find_program(wh: Warehouse, compile_key: str) -> tuple[str, dict] | None:
    """(program_hash, program state) compiled earlier for this key, by any study."""
    wh.ensure_schema()
    with wh.reader(own_writes=False) as con:
        row = con.execute(query("find_program"), {"compile_key": compile_key}).fetchone()
        row = row or wh.pending([_PROGRAM + compile_key]).get(_PROGRAM + compile_key)
    return None if row is None else (row[0], json.loads(row[1]))


def study_spend(wh: Warehouse, study_id: str) -> float:
    """What a study has spent so far, all purposes, from the ledger (v_ledger_spend): paid answers
    at their cost, requests left without an answer by a killed process at their worst case."""
    wh.ensure_schema()
    with wh.reader() as con:
        return float(con.execute(query("study_spend"), {"study_id": study_id}).fetchone()[0])


def store_calls(wh: Warehouse, calls: Sequence[CallRecord], paid: Sequence[CacheEntry] = ()) -> None:
    """Store calls, and the paid answers a task handed back (the response cache), in one
    transaction (kept in order while another process holds the file; `cache_lookup` sees them)."""
    call_rows, paid_rows = [_row(c) for c in calls], [_row(e) for e in paid]

    def apply(con: Any) -> None:
        insert_rows(con, "insert_calls", call_rows)
        insert_rows(con, "insert_cache", paid_rows)

    wh.defer(apply, _cache_lookups(paid))


def record_study_models(wh: Warehouse, rows: Sequence[dict[str, Any]], calls: Sequence[CallRecord] = (),
                        paid: Sequence[CacheEntry] = ()) -> None:
    """A study's models as its preflight found them, with the preflight's calls, in one transaction."""
    with wh.writer() as con:
        insert_rows(con, "record_study_models", list(rows))
        insert_rows(con, "insert_calls", [_row(c) for c in calls])
        insert_rows(con, "insert_cache", [_row(e) for e in paid])


def study_models(wh: Warehouse, study_id: str) -> list[dict[str, Any]]:
    """A study's models: endpoint, price source, preflight outcome (none for a study before 0006)."""
    wh.ensure_schema()
    with wh.reader() as con:
        cur = con.execute(query("study_models"), {"study_id": study_id})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def cache_lookup(wh: Warehouse, keys: list[str]) -> dict[str, tuple]:
    """Cached answers among `keys`: key -> (output_text, prompt_tokens, completion_tokens, cost_usd, latency_s)."""
    if not keys:
        return {}
    wh.ensure_schema()
    with wh.reader(own_writes=False) as con:  # what the file holds, and what is kept for it meanwhile
        found = {row[0]: row[1:] for row in con.execute(query("cache_lookup"), {"keys": keys}).fetchall()}
        pending = wh.pending(_CACHE + key for key in keys if key not in found)
    return {**found, **{key[len(_CACHE):]: value for key, value in pending.items()}}


def cache_store(wh: Warehouse, entries: list[CacheEntry]) -> None:
    """Store paid answers (kept in order while another process holds the file; `cache_lookup` sees them)."""
    rows = [_row(e) for e in entries]
    wh.defer(lambda con: insert_rows(con, "insert_cache", rows), _cache_lookups(entries))


_CACHE, _PROGRAM = "cache:", "program:"  # namespaces of `Warehouse.pending` lookups


def _cache_lookups(entries: Sequence[CacheEntry]) -> dict[str, tuple]:
    """What `cache_lookup` answers for these entries while they wait to be written."""
    return {_CACHE + e.cache_key: (e.output_text, e.prompt_tokens, e.completion_tokens, e.cost_usd, e.latency_s)
            for e in entries}


def store_judgements(wh: Warehouse, rows: Sequence[dict[str, Any]]) -> None:
    """Store a judge's verdicts (table `judgements`), in order with the calls stored before them."""
    rows = list(rows)
    if rows:
        wh.defer(lambda con: insert_rows(con, "insert_judgements", rows))


def store_judge_calibration(wh: Warehouse, row: dict[str, Any]) -> None:
    """A study's judge against the human judgements (table `judge_calibrations`, one row per study)."""
    wh.defer(lambda con: con.execute(query("insert_judge_calibration"), row))


def rows(wh: Warehouse, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of query `queries/<name>.sql`, one dict each."""
    wh.ensure_schema()
    with wh.reader() as con:
        cur = con.execute(query(name), params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def judge_calibration(wh: Warehouse, study_id: str) -> dict[str, Any] | None:
    """The study's judge calibration row, if measured."""
    found = rows(wh, "judge_calibration", {"study_id": study_id})
    return found[0] if found else None


def trial_judgements(wh: Warehouse, study_id: str, trial_id: int) -> list[dict[str, Any]]:
    """A judged trial's verdicts, one dict per judge answer (see `queries/trial_judgements.sql`)."""
    wh.ensure_schema()
    with wh.reader() as con:
        cur = con.execute(query("trial_judgements"), {"study_id": study_id, "trial_id": trial_id})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def trial_answers(wh: Warehouse, study_id: str, trial_id: int) -> dict[str, tuple[float | None, Any]]:
    """example_id -> (score, parsed prediction) of a trial's evaluation calls."""
    with wh.reader() as con:
        rows = con.execute(query("trial_answers"), {"study_id": study_id, "trial_id": trial_id}).fetchall()
    return {r[0]: (r[1], None if r[2] is None else json.loads(r[2])) for r in rows}


def store_evidence(wh: Warehouse, study_id: str, comparisons: list[dict], flips: list[dict], policy: dict) -> None:
    """Replace a study's comparisons and flips (one transaction) and record its policy."""
    with wh.writer() as con:
        con.execute(query("clear_evidence"), {"study_id": study_id})
        con.execute(query("clear_flips"), {"study_id": study_id})
        insert_rows(con, "insert_comparisons", comparisons)
        insert_rows(con, "insert_flips", flips)
        con.execute(query("set_policy"), {"study_id": study_id, "policy": _json(policy)})


def store_slice_power(wh: Warehouse, study_id: str, rows: list[dict]) -> None:
    """Replace a study's power table (one transaction): `slice_power` rows without study_id."""
    with wh.writer() as con:
        con.execute(query("clear_slice_power"), {"study_id": study_id})
        insert_rows(con, "insert_slice_power", [{"study_id": study_id, **r} for r in rows])


def set_policy(wh: Warehouse, study_id: str, policy: dict) -> None:
    """Record the selection policy a study applies (its file, hash and values), from its start:
    a study stopped before its selection still says which policy it would have applied."""
    with wh.writer() as con:
        con.execute(query("set_policy"), {"study_id": study_id, "policy": _json(policy)})


def current_deprecations(wh: Warehouse, source: str | None = None) -> list[dict]:
    """Rows of `deprecations` (all, or one source's)."""
    wh.ensure_schema()
    sql = "select model, source, retires_on, replacement, source_ref from deprecations"
    columns, rows = wh.fetch(sql + (" where source = ?" if source else ""), [source] if source else None)
    return [dict(zip(columns, r)) for r in rows]


def record_deprecations(wh: Warehouse, rows: list[dict]) -> list[dict]:
    """Upsert what the sources say now (one row per model and source) and append to
    `deprecation_history` what is new or changed; returns the changes."""
    rows = list({(r["model"], r["source"]): r for r in rows}.values())
    changes: list[dict] = []
    with wh.writer() as con:
        before = {(m, s): (d, r) for m, s, d, r in con.execute(
            "select model, source, retires_on, replacement from deprecations").fetchall()}
        for row in rows:
            old = before.get((row["model"], row["source"]))
            change = ("new" if old is None else "date_changed" if old[0] != row["retires_on"]
                      else "replacement_changed" if old[1] != row["replacement"] else None)
            if change:
                changes.append({**row, "change": change, "previous_retires_on": old[0] if old else None})
        insert_rows(con, "upsert_deprecations", rows)
        insert_rows(con, "insert_deprecation_history", [
            {k: c[k] for k in ("model", "source", "change", "retires_on", "previous_retires_on", "replacement", "source_ref")}
            for c in changes
        ])
    return changes


def withdraw_notice(wh: Warehouse, model: str) -> dict | None:
    """Remove a user's notice (`offramp notify MODEL --withdraw`); the history keeps it, marked
    `withdrawn`. Returns the row removed, None if there was none."""
    with wh.writer() as con:
        row = con.execute("select retires_on, replacement, source_ref from deprecations where model = ? and source = 'notice'",
                          [model]).fetchone()
        if row is None:
            return None
        con.execute("delete from deprecations where model = ? and source = 'notice'", [model])
        insert_rows(con, "insert_deprecation_history", [{
            "model": model, "source": "notice", "change": "withdrawn", "retires_on": row[0], "previous_retires_on": None,
            "replacement": row[1], "source_ref": row[2],
        }])
    return {"model": model, "retires_on": row[0]}


def emitted_deprecations(wh: Warehouse) -> set[tuple[str, str, dt.date]]:
    """(feature, model, retires_on) of every deprecation event already emitted."""
    wh.ensure_schema()
    return {tuple(r) for r in wh.fetch("select feature, model, retires_on from deprecation_events")[1]}


def record_deprecation_event(wh: Warehouse, **row: Any) -> None:
    with wh.writer() as con:
        con.execute(query("insert_deprecation_event"), row)
