"""The migration report's facts, read from the warehouse's documented views (`StudyReport`). Every
number here is a row of `v_trials`, `v_pareto_front`, `v_regressions`, `v_flips` or
`v_study_spend`; the report shows the queries. The report itself is built from these facts as one
model (`tasks/evidence/reviewer.py`) and rendered by `tasks/evidence/render.py` (markdown, table
artifacts, HTML) and `tasks/evidence/terminal.py`.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from offramp.errors import NoSuchStudy
from offramp.search_spaces.strategies import strategy_class, strategy_names
from offramp.tasks.evidence.discovered_report import discovered_lines
from offramp.tasks.evidence.policy import SelectionPolicy
from offramp.warehouse import Warehouse
from offramp.warehouse.db import query
from offramp.warehouse.records import Trial

QUERIES = {
    "trials": "SELECT * FROM v_trials WHERE study_id = '{id}' ORDER BY trial_id",
    "front": "SELECT * FROM v_pareto_front WHERE study_id = '{id}'",
    "regressions": "SELECT * FROM v_regressions WHERE study_id = '{id}' ORDER BY trial_id, slice_field, slice_value",
    "flips": "SELECT * FROM v_flips WHERE study_id = '{id}'",
    "spend": "SELECT * FROM v_study_spend WHERE study_id = '{id}'",
    "ledger": "SELECT * FROM v_ledger_spend WHERE study_id = '{id}'",
    "models": "SELECT * FROM v_model_health WHERE study_id = '{id}'",
    "endpoints": "SELECT * FROM study_models WHERE study_id = '{id}'",
    "composites": "SELECT * FROM composites WHERE study_id = '{id}'",
    "discovered": "SELECT * FROM v_discovered_slices WHERE study_id = '{id}'",
    "samples": "SELECT * FROM v_sample_agreement WHERE study_id = '{id}'",
    "labels": "SELECT * FROM v_label_metrics WHERE study_id = '{id}'",  # label targets: also v_label_confusion, v_label_collapse
}


def _rows(wh: Warehouse, name: str, study_id: str) -> list[dict[str, Any]]:
    with wh.reader() as con:
        cursor = con.execute(query(name), {"study_id": study_id})
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, r)) for r in cursor.fetchall()]


def _label(t: dict[str, Any]) -> str:
    if t["role"] == "composite":
        return t["model"]  # its label: `cascade (unsure): A → B`
    if t["strategy"] in strategy_names() and strategy_class(t["strategy"]).own_model:
        return f"{t['model']} (tuned on train)"  # decoding settings do not apply to it
    s = json.loads(t["settings"]) if isinstance(t["settings"], str) else t["settings"]
    mode = s.get("adapter") or ("json" if s.get("output_mode") == "json_schema" else "text")
    return f"{t['model']} {t['strategy']} {mode} max={s.get('max_tokens')}"


def _unparsed_hint(row: dict[str, Any]) -> str | None:
    """What could make a mostly unparsed trial readable: the plain adapter for a DSPy program read
    with another adapter (it asks for the bare answer and reads labels and numbers leniently)."""
    dspy_program = row["strategy"] in strategy_names() and strategy_class(row["strategy"]).takes_adapter
    if not dspy_program or row.get("output_mode") not in (None, "text"):
        return None
    if row.get("adapter") == "plain":
        return "the plain adapter could not read these either: the answers name no single allowed value"
    return f"it was read with the {row.get('adapter') or 'chat'} adapter: try `settings: adapter: [plain]` in the search space"


@dataclasses.dataclass
class StudyReport:
    study: dict[str, Any]
    trials: list[Trial]  # every trial of the study, with its measurement
    front_ids: set[int]  # the dev trials on the front
    regressions: list[dict[str, Any]]
    flips: list[dict[str, Any]]
    spend: list[dict[str, Any]]
    health: list[dict[str, Any]]  # per model: paid calls, errors, retries, wall-time p95 (v_model_health)
    unparsed: list[dict[str, Any]]  # trials whose answers mostly could not be parsed, with an example answer
    models: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # study_models: endpoint, price source, preflight
    failed: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # failed trials, with their main error
    money: dict[str, Any] = dataclasses.field(default_factory=dict)  # cap, ledger spend, overshoot (report_money)
    cap_changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every raise: from, to, when
    tuned: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # offramp's own models: labels learned from, cost
    composites: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # branch counts per composite trial
    power: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # slice_power: what the test split could tell
    discovery: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # slice discovery runs (report_discovery)
    discovered: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # discovered slices (report_discovered)

    def discovered_lines(self) -> list[str]:
        """The "discovered slices" section (tasks/evidence/discovered_report.py)."""
        return discovered_lines(self.discovery, self.discovered)
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per samples trial: agreement with what was served
    sample_stage: dict[str, Any] | None = None  # the samples stage: n chosen and why (tasks/study/samples.py)
    judged: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # metric.judge: per judged trial (report_judge)
    calibration: dict[str, Any] | None = None  # metric.judge vs the human judgements (judge_calibrations)

    @property
    def study_id(self) -> str:
        return self.study["id"]

    @property
    def selection(self) -> dict[str, Any]:
        return json.loads(self.study["selection"]) if self.study.get("selection") else {}

    def trial(self, trial_id: int) -> Trial:
        return next(t for t in self.trials if t.trial_id == trial_id)

    def test_of(self, trial_id: int) -> Trial | None:
        return next((t for t in self.trials if t.split == "test" and t.source_trial_id == trial_id), None)

    @property
    def incumbent(self) -> Trial | None:
        return next((t for t in self.trials if t.role == "incumbent" and t.split == "dev"), None)

    def on_front(self, t: Trial) -> bool:
        return t.trial_id in self.front_ids

    @property
    def front(self) -> list[Trial]:
        return [t for t in self.trials if self.on_front(t)]

    def overall(self, trial_id: int) -> dict[str, Any] | None:
        return next((r for r in self.regressions if r["trial_id"] == trial_id and r["slice_field"] == "(all)"), None)

    def unparsed_warnings(self) -> list[str]:
        """One line per trial whose answers mostly could not be parsed: which strategy on which
        model, how often, one answer as the model gave it, and what to try (a plain answer to a
        prompt that asks for DSPy's field markers scores 0, and this says why)."""
        lines = []
        for x in self.unparsed:
            example = (x["example_answer"] or "").strip().replace("\n", " ")
            hint = _unparsed_hint(x)
            lines.append(f"trial {x['trial_id']} ({x['model']}, {x['strategy']}, {x['split']}): "
                         f"{x['parse_failure_rate']:.0%} of its answers could not be parsed, e.g. {example[:120]!r}"
                         + (f"; {hint}" if hint else ""))
        return lines

    @property
    def policy(self) -> str:
        """The policy the study applied, named: its rule, the file it came from (or that it was the
        flow's parameters), the hash of its values, and the values."""
        stored = json.loads(self.study["policy"]) if self.study.get("policy") else None
        rule = self.selection.get("rule", "-")
        if not stored or "values" not in stored:  # not judged yet, or recorded before policies were named
            return rule
        if rule == "-":  # stopped before its selection: the rule of the policy it would have applied
            rule = SelectionPolicy.model_validate(stored["values"]).describe()
        source = stored["file"] or "the flow's parameters (no policy file)"
        values = ", ".join(f"{k}={v}" for k, v in stored["values"].items())
        return f"{rule}. From {source}, hash {stored['hash']}: {values}"

    def composite_lines(self) -> list[str]:
        """One line per composite (cascade, router): its rule, and how often each branch answered on
        dev and on test, with the calls a request made on average."""
        lines = []
        for dev_id in sorted({x["composite_trial_id"] for x in self.composites}):
            rows = [x for x in self.composites if x["composite_trial_id"] == dev_id]
            parts = []
            for split in ("dev", "test"):
                here = [x for x in rows if x["split"] == split]
                if here:
                    shares = ", ".join(f"{x['branch']} {x['share']:.0%} ({x['n']})" for x in here)
                    calls = sum(x["calls_per_request"] * x["n"] for x in here) / sum(x["n"] for x in here)
                    parts.append(f"{split}: {shares}; {calls:.2f} calls per request")
            lines.append(f"trial {dev_id} {rows[0]['label']}: {rows[0]['description']}. " + " | ".join(parts))
        return lines

    def model_lines(self) -> list[str]:
        """One line per model of the study: where it is served, who priced it, its preflight call."""
        lines = []
        for m in self.models:
            served = m["litellm_id"] + (f" at {m['api_base']}" if m["api_base"] else "")
            preflight = {"ok": "preflight ok", "left_out": "LEFT OUT", "failed": "preflight failed (kept)"}.get(
                m["preflight"], m["preflight"])
            parsed = ", its answer did not parse" if m["parsed"] is False else ""
            note = f": {m['note']}" if m["note"] and m["preflight"] != "ok" else ""
            lines.append(f"{m['model']} ({m['role']}, {served}): price from {m['price_source']}; {preflight}{parsed}{note}")
        for t in self.tuned:
            taught = (f" + {t['taught_labels']} taught by the incumbent's recorded answers (of {t['unlabeled_inputs']} unlabeled inputs)"
                      if t["unlabeled_inputs"] else " (no taught labels: the feature has no data.unlabeled)")
            lines.append(f"tuned/{t['program_hash']} (trial {t['trial_id']}, offramp's own classifier): trained on "
                         f"{t['gold_labels']} gold labels{taught}; {t['compile_seconds']:.1f} s of machine time, "
                         f"${t['compile_cost_usd']:.6f}{' (reused from an earlier study)' if t['reused_program'] else ''}")
        return lines

    @property
    def left_out(self) -> str | None:
        """The models the preflight left out of the search, with the fix, for the decision."""
        out = [f"{m['model']} ({m['note']})" for m in self.models if m["preflight"] == "left_out"]
        return ("Not searched (left out by the preflight call): " + "; ".join(out)) if out else None

    def failed_summary(self) -> str | None:
        return summarize_failed(self.failed)

    def money_lines(self) -> list[str]:
        """The study's spend against its cap (the ledger's), every change of the cap, and an
        overshoot when a provider billed more than the worst case."""
        m = self.money
        if not m:
            return []
        line = f"Recorded spend (ledger): ${m['spend_usd']:.4f} (cap: {_cap(m['cap_usd'])})"
        if m["n_unresolved"]:
            line += f", of which ${m['unresolved_usd']:.4f} for {m['n_unresolved']} requests sent with no answer on record"
        lines = [line + "."]
        lines += [f"Spend cap changed from {_cap(c['from_usd'])} to {_cap(c['to_usd'])} at "
                  f"{c['changed_at']:%Y-%m-%d %H:%M:%S} (${c['spent_usd']:.4f} spent then)." for c in self.cap_changes]
        if m["overshoot_usd"] > 0:
            lines.append(f"The spend cap was overshot by ${m['overshoot_usd']:.6f}: a provider billed more than the worst case "
                         "offramp reserved (more tokens than estimated); no call was made after that.")
        return lines

    def queries(self) -> dict[str, str]:
        return {k: v.format(id=self.study_id) for k, v in QUERIES.items()}

    @property
    def unfinished(self) -> str | None:
        """What to do about a study that did not finish (status failed or running), else None."""
        status = self.study.get("status")
        if status == "provider_down":
            return (f"An endpoint this study needs stayed down ({self.study.get('error') or 'see calls.error'}). "
                    "The trials measured so far are kept; run the same command again when it is back to resume.")
        if status not in ("failed", "running", "interrupted"):
            return None
        why = ("it was interrupted" + (f" ({self.study['error']})" if self.study.get("error") else "") if status != "running"
               else "it is still running, or its process was killed before it could say so")
        return (f"This study did not finish (status {status}: {why}). Run the same `offramp migrate ...` command again "
                "(or the same flow run's parameters) to resume it: the study id is derived from its parameters, so "
                "completed trials are kept and paid calls come from the cache.")


def _cap(usd: float | None) -> str:
    return "none" if usd is None else f"${usd:.4f}"


def load_report(wh: Warehouse, study_id: str) -> StudyReport:
    studies = _rows(wh, "report_study", study_id)
    if not studies:
        raise NoSuchStudy(f"no study {study_id!r} in {wh.path}; list them: offramp sql \"select id, feature, status from studies\"")
    rows = _rows(wh, "report_trials", study_id)
    return StudyReport(
        study=studies[0], trials=[Trial.from_row(row, _label(row)) for row in rows],
        front_ids={row["trial_id"] for row in rows if row["on_front"]}, regressions=_rows(wh, "report_regressions", study_id),
        flips=_rows(wh, "report_flips", study_id), spend=_rows(wh, "report_spend", study_id),
        health=_rows(wh, "report_model_health", study_id), unparsed=_rows(wh, "report_unparsed", study_id),
        models=_rows(wh, "study_models", study_id),
        failed=_rows(wh, "report_failed_trials", study_id),
        money=(_rows(wh, "report_money", study_id) or [{}])[0], cap_changes=_rows(wh, "report_cap_changes", study_id),
        tuned=_rows(wh, "report_tuned", study_id),
        composites=_rows(wh, "report_composites", study_id),
        power=_rows(wh, "report_slice_power", study_id),
        discovery=_rows(wh, "report_discovery", study_id), discovered=_rows(wh, "report_discovered", study_id),
        samples=_rows(wh, "report_samples", study_id), sample_stage=(_rows(wh, "report_sample_stage", study_id) or [None])[0],
        judged=_rows(wh, "report_judge", study_id), calibration=(_rows(wh, "judge_calibration", study_id) or [None])[0],
    )


_FIX = {
    "AuthenticationError": "the endpoint refused the key: check the environment variable that holds it",
    "PermissionDeniedError": "the key may not use this model",
    "NotFoundError": "the endpoint does not serve this model id",
    "BadRequestError": "the request was refused as it was sent (an id litellm cannot route, a model the endpoint "
                       "does not serve, a setting it rejects)",
    "EndpointDown": "the endpoint was down; the same command resumes the study when it is back",
}


def _error_text(error: str | None, kind: str) -> str:
    """A failed call's message without its kind and litellm's repeated prefixes."""
    text = (error or "").split(":", 1)[-1].strip()
    for prefix in (f"litellm.{kind}:", f"{kind}:", "OpenAIException -"):
        text = text.removeprefix(prefix).strip()
    return text.replace("\n", " ")[:140]


def summarize_failed(rows: list[dict[str, Any]]) -> str | None:
    """One sentence naming the failed trials (or those whose calls failed more often than the
    study's --max-error-rate), per model: its main error, how many of its calls failed, one error
    as the provider gave it, and what it usually means. None when no trial failed."""
    if not rows:
        return None
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    parts = []
    for model, items in by_model.items():
        kind = Counter(r["main_error"] or (r["error"] or "no measurement").split(":", 1)[0] for r in items).most_common(1)[0][0]
        calls, errors = sum(r["n_calls"] for r in items), sum(r["n_errors"] for r in items)
        share = "every call" if calls and errors == calls else f"{errors} of {calls} calls" if calls else "no call made"
        example = next((r["example_error"] for r in items if r["main_error"] == kind), None)
        ids = ", ".join(str(r["trial_id"]) for r in items)
        detail = f": {_error_text(example, kind)}" if example else ""
        fix = f" ({_FIX[kind]})" if kind in _FIX else ""
        parts.append(f"{model} — {kind} ({share}; trial{'s' if len(items) > 1 else ''} {ids}){detail}{fix}")
    n = len(rows)
    return f"{n} trial{'s' if n != 1 else ''} failed: " + "; ".join(parts)


def failed_trials(wh: Warehouse, study_id: str) -> str | None:
    """`summarize_failed` of a study's trials, from the warehouse."""
    return summarize_failed(_rows(wh, "report_failed_trials", study_id))


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table cell: fixed digits for floats, "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
