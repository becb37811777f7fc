"""Releases: the config chosen for a feature, pinned in a versioned file an application loads.

`releases/<feature>.json` holds every version and which one is current:
`{"feature": ..., "current": 3, "releases": [{version, action, study_id, trial_id, model, strategy,
settings, instructions, prompt | program, spec, metrics, evidence, created_at}, ...]}`.
`promote` appends a version and makes it current; `rollback` appends a version that re-pins the
previous one (history is never rewritten). Each action is also a row of the warehouse's
`releases` table (`v_releases`).

In an application, one call gives a ready-to-call program:

    from offramp.tasks.watch.releases import load_release
    route = load_release("releases/bank-support-routing.json")
    route(message="I still have not received my card")   # -> {"queue": "cards"}
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offramp.errors import UserError
from offramp.search_spaces.schema import Config, ModelEntry, Settings, Strategy
from offramp.tasks.feature.prompts import parse_answer, render_input, render_messages, response_format, shipped_prompt_demos
from offramp.tasks.feature.spec import Example, FeatureSpec, load_feature, split_examples
from offramp.warehouse import Warehouse
from offramp.warehouse.composites import composite_members
from offramp.warehouse.db import query
from offramp.warehouse.home import OfframpSettings


def releases_dir(explicit: Path | str | None = None) -> Path:
    """`--releases-dir`, else `OFFRAMP_RELEASES`, else `./releases`."""
    return Path(explicit or OfframpSettings().releases).expanduser().resolve()


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"{path}: no release file yet (pin one with `offramp promote STUDY`)")
    try:
        data = json.loads(path.read_text())
        data["current"], data["releases"]  # noqa: B018 - the shape every reader relies on
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a release file ({exc}); expected {{feature, current, releases}}") from None
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)  # readers never see half a file


def _record(wh: Warehouse, entry: dict[str, Any], path: Path) -> None:
    with wh.writer() as con:
        con.execute(query("insert_release"), {
            "feature": entry["feature"], "version": entry["version"], "action": entry["action"],
            "study_id": entry["study_id"], "trial_id": entry["trial_id"], "model": entry["model"],
            "strategy": entry["strategy"], "program_hash": entry.get("program_hash"), "path": str(path),
            "forced": entry.get("forced", False),
        })


def _candidate(wh: Warehouse, study_id: str, trial_id: int) -> dict[str, Any]:
    with wh.reader() as con:
        cursor = con.execute(query("release_candidate"), {"study_id": study_id, "trial_id": trial_id})
        columns = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    if row is None:
        raise UserError(f"study {study_id!r} has no trial {trial_id}")
    return dict(zip(columns, row))


def _study(wh: Warehouse, study_id: str) -> tuple[str, dict, int | None, int]:
    """(feature, params, selected trial, seed) of a study."""
    with wh.reader() as con:
        row = con.execute("SELECT feature, params, selected_trial_id, seed FROM studies WHERE id = ?", [study_id]).fetchone()
    if row is None:
        raise UserError(f"no study {study_id!r}; list them: offramp sql \"select id, feature, status from studies\"")
    return row[0], json.loads(row[1]), row[2], row[3]


def _not_accepted(row: dict[str, Any], trial_id: int, selected: int | None) -> str | None:
    """Why a trial the policy did not accept may not be promoted without --force (None: it was
    selected, or accepted on the held-out split)."""
    if trial_id == selected:
        return None
    selection = json.loads(row["selection"]) if row["selection"] else {}
    verdict = next((v for v in selection.get("verdicts", []) if v["trial_id"] == trial_id), None)
    if verdict is None:
        return "was not confirmed on the held-out split, so the policy never accepted it"
    if not verdict["accepted"]:
        return f"was rejected by the study's policy: {verdict['why']}"
    return None


def _shipped_prompt(spec: FeatureSpec, config: Config, demos: list[Example]) -> dict[str, Any]:
    """The incumbent strategy's messages before the input (system + demo turns)."""
    probe = Example(id="probe", inputs={f.name: "" for f in spec.signature.inputs}, outputs={})
    return {"messages": render_messages(spec, config, demos, probe)[:-1]}


def _config_entry(row: dict[str, Any], spec: FeatureSpec, spec_path: str, params: dict, seed: int) -> dict[str, Any]:
    """What answers as one config: model, prompt strategy, settings, the prompt or DSPy program, endpoint."""
    settings = Settings.model_validate(json.loads(row["settings"]))
    strategy = Strategy.model_validate(json.loads(row["strategy_params"])) if row["strategy_params"] else Strategy()
    config = Config(model=row["model"], instructions=spec.incumbent.instructions, strategy=strategy, settings=settings)
    entry: dict[str, Any] = {
        "model": config.model, "strategy": strategy.model_dump(mode="json"), "settings": settings.model_dump(mode="json"),
        "instructions": config.instructions, "spec": spec.model_dump(mode="json"), "program_hash": row["program_hash"],
        # a declared model's endpoint (api_base, the key's variable name, limits; never the key): the release calls it there
        "endpoint": (json.loads(row["space"] or "{}").get("endpoints") or {}).get(config.model),
    }
    if strategy.kind.shipped_prompt:
        feature = load_feature(spec_path)
        splits = split_examples(feature, max_examples=params.get("max_examples"), seed=seed)
        entry["prompt"] = _shipped_prompt(spec, config, shipped_prompt_demos(feature, splits.train, settings.demos, seed))
    else:
        entry["program"] = json.loads(row["program"])
    return entry


def promote(
    wh: Warehouse, study_id: str, *, trial_id: int | None = None, force: bool = False, directory: Path | None = None,
) -> tuple[Path, dict[str, Any], list[str]]:
    """Pin a study's selected trial (or `trial_id`) as the feature's current release.
    Returns (file, the new entry, warnings)."""
    feature_name, params, selected, seed = _study(wh, study_id)
    warnings: list[str] = []
    if trial_id is None:
        if selected is None:
            raise UserError(f"study {study_id!r} selected nothing; choose a trial with --trial N (see `offramp report {study_id}`)")
        trial_id = selected
    row = _candidate(wh, study_id, trial_id)
    if row["split"] != "dev" or row["role"] == "incumbent" or row["status"] != "completed":
        raise UserError(f"trial {trial_id} of {study_id} is not a completed candidate (role {row['role']}, split {row['split']}, status {row['status']})")
    if not row["on_front"]:
        if not force:
            raise UserError(f"trial {trial_id} is not on the front of {study_id}: another config beats it on quality, cost "
                            "and latency. Use --force to promote it anyway.")
        warnings.append(f"trial {trial_id} is not on the front (forced)")
    unaccepted = _not_accepted(row, trial_id, selected)
    if unaccepted:
        if not force:
            raise UserError(f"trial {trial_id} of {study_id} {unaccepted}. Use --force to promote it anyway "
                            f"(see `offramp report {study_id}`).")
        warnings.append(f"trial {trial_id} {unaccepted} (forced)")
    if trial_id != selected:
        warnings.append(f"trial {trial_id} is not the study's selection ({selected}); the policy's verdict: see the report")
    with wh.reader() as con:
        spec_json, spec_path = con.execute(query("feature_spec"), {"name": feature_name}).fetchone()
    spec = FeatureSpec.model_validate(json.loads(spec_json))
    if row["role"] == "composite":  # a cascade or router answers through its members' configs
        from offramp.tasks.watch.composite_release import composite_entry

        members = {m: _config_entry(_candidate(wh, study_id, m), spec, spec_path, params, seed) for m in composite_members(wh, study_id, trial_id)}
        entry = composite_entry(wh, study_id, trial_id, members)
    else:
        entry = _config_entry(row, spec, spec_path, params, seed)
    entry.update({
        "feature": feature_name, "action": "promote", "study_id": study_id, "trial_id": trial_id,
        "forced": not row["on_front"] or unaccepted is not None,  # past the checks above only with --force
        "metrics": {"dev_quality": row["quality"], "test_quality": row["test_quality"], "cost_per_1k_usd": row["cost_per_1k_usd"],
                    "latency_p95_s": row["latency_p95_s"], "test_diff_vs_incumbent": row["diff"],
                    "test_diff_ci": [row["diff_ci_low"], row["diff_ci_high"]]},
        "evidence": json.loads(row["selection"]).get("reason") if row["selection"] else None,
        "created_at": dt.datetime.now().isoformat(timespec="seconds"),
    })
    path = releases_dir(directory) / f"{feature_name}.json"
    data = _read(path) if path.exists() else {"feature": feature_name, "current": None, "releases": []}
    entry["version"] = max((r["version"] for r in data["releases"]), default=0) + 1
    data["releases"].append(entry)
    data["current"] = entry["version"]
    _record(wh, entry, path)
    _write(path, data)
    return path, entry, warnings


def rollback(wh: Warehouse, feature: str, *, directory: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Pin the release that was current before the current one (as a new version)."""
    path = releases_dir(directory) / f"{feature}.json"
    data = _read(path)
    history = [r for r in data["releases"] if r["action"] == "promote"]
    current = next(r for r in data["releases"] if r["version"] == data["current"])
    target_version = current.get("rolled_back_to", current["version"])
    earlier = [r for r in history if r["version"] < target_version]
    if not earlier:
        raise UserError(f"{path}: release {data['current']} is the first one; there is nothing to roll back to")
    target = earlier[-1]
    entry = {**target, "action": "rollback", "rolled_back_to": target["version"],
             "version": max(r["version"] for r in data["releases"]) + 1,
             "created_at": dt.datetime.now().isoformat(timespec="seconds")}
    data["releases"].append(entry)
    data["current"] = entry["version"]
    _record(wh, entry, path)
    _write(path, data)
    return path, entry


def list_releases(feature: str, *, directory: Path | None = None) -> tuple[int, list[dict[str, Any]]]:
    data = _read(releases_dir(directory) / f"{feature}.json")
    return data["current"], data["releases"]


class ReleasedProgram:
    """A released config, ready to call: `program(**inputs) -> outputs dict` (None if unparseable)."""

    def __init__(self, entry: dict[str, Any], call_model: Callable[..., str] | None = None) -> None:
        self.entry = entry
        self.spec = FeatureSpec.model_validate(entry["spec"])
        self.config = Config(model=entry["model"], instructions=entry["instructions"],
                             strategy=Strategy.model_validate(entry["strategy"]), settings=Settings.model_validate(entry["settings"]))
        self._call_model = call_model or self._litellm
        self._runner = None
        self.last_confidence: float | None = None  # the last answer's log-probability, where the model gives one
        if self.config.strategy.kind.own_model:  # offramp's own model: answered in this process
            from offramp.tasks.feature.programs import TunedRunner

            self._runner = TunedRunner(self.spec, entry["program"])
            self._call_model = call_model or self._tuned
        elif not self.config.strategy.kind.shipped_prompt:  # a DSPy program: its adapter renders and parses
            from offramp.tasks.feature.programs import ProgramRunner

            self._runner = ProgramRunner(self.spec, self.config, entry["program"])

    def _tuned(self, messages: list[dict], **_: Any) -> str:
        import math

        from offramp.tasks.gateway import tuned

        label, probability, _, _ = tuned.answer(self._runner.model, messages)
        self.last_confidence = math.log(max(probability, 1e-12))  # what a confidence cascade escalates on
        return label

    def _litellm(self, messages: list[dict], **settings: Any) -> str:
        import litellm

        from offramp.tasks.gateway.llm import route
        from offramp.warehouse import state_dir

        endpoint = self.entry.get("endpoint")
        endpoints = {self.config.model: ModelEntry.model_validate(endpoint)} if endpoint else None
        response = litellm.completion(messages=messages, **{**route(self.config.model, state_dir(), endpoints), **settings})
        return response.choices[0].message.content or ""

    def messages(self, inputs: dict[str, Any]) -> list[dict]:
        example = Example(id="input", inputs=inputs, outputs={})
        if self._runner is not None:
            return self._runner.messages(example)
        return [*self.entry["prompt"]["messages"], {"role": "user", "content": render_input(self.spec, example)}]

    def parse(self, text: str) -> dict | None:
        if self._runner is not None:
            return self._runner.parse(text)
        return parse_answer(self.spec, self.config, text)

    def __call__(self, **inputs: Any) -> dict | None:
        missing = [f.name for f in self.spec.signature.inputs if f.name not in inputs]
        if missing:
            raise TypeError(f"missing input field(s) {missing} for feature {self.spec.name}")
        settings: dict[str, Any] = {"temperature": self.config.settings.temperature, "max_tokens": self.config.settings.max_tokens}
        fmt = response_format(self.spec, self.config)
        if fmt is not None:
            settings["response_format"] = fmt
        return self.parse(self._call_model(self.messages(inputs), **settings))


def load_release(path: Path | str, *, version: int | None = None, call_model: Callable[..., str] | None = None) -> ReleasedProgram:
    """The current (or a given) release of a feature, ready to call. `call_model(messages, **settings)
    -> text` replaces the litellm call (tests, custom clients)."""
    data = _read(Path(path))
    wanted = data["current"] if version is None else version
    entry = next((r for r in data["releases"] if r["version"] == wanted), None)
    if entry is None:
        raise UserError(f"{path}: no release version {wanted}")
    if "composite" in entry:
        from offramp.tasks.watch.composite_release import ReleasedComposite

        return ReleasedComposite(entry, lambda member: ReleasedProgram(member, call_model))
    return ReleasedProgram(entry, call_model)
