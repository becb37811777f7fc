"""The feature as the team shipped it (issue 10): splits from a data column or stratified by slice,
the incumbent's exact demos, `--policy FILE`, and `--dry-run` (no call)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from offramp.errors import UserError
from offramp.tasks.feature.spec import FeatureSpec, load_feature, split_examples
from tests.helpers import make_feature, make_space
from tests.test_cli import offramp


def edit(root: Path, change) -> None:
    spec = yaml.safe_load((root / "feature.yaml").read_text())
    change(spec)
    (root / "feature.yaml").write_text(yaml.safe_dump(spec))


def add_column(root: Path, name: str, value_of) -> None:
    """Add a column to data.csv: `value_of(row_number, row)` gives each row's value."""
    with (root / "data.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (root / "data.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], name])
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({**row, name: value_of(i, row)})


def ids(examples) -> set[str]:
    return {e.id for e in examples}


# ------------------------------------------------------------------------------ split column
def test_split_column_is_honoured_and_nothing_leaks(tmp_path):
    root = make_feature(tmp_path / "f", n=90)
    upstream = ["train", "validation", "test", "TRAIN", "val", "Test"]  # upstream's own names, any case
    add_column(root, "split", lambda i, row: upstream[i % 6])
    edit(root, lambda s: s.update(splits={"seed": 1, "column": "split"}))
    feature = load_feature(root)
    splits = split_examples(feature)
    want = {name: {f"ex{i}" for i in range(90) if upstream[i % 6].lower() in aliases}
            for name, aliases in (("train", {"train"}), ("dev", {"validation", "val"}), ("test", {"test"}))}
    assert (ids(splits.train), ids(splits.dev), ids(splits.test)) == (want["train"], want["dev"], want["test"])
    # sizes cap a column's split: a seeded subset of that split only, never rows of another
    edit(root, lambda s: s["splits"].update(train=10, dev=6))
    capped = split_examples(load_feature(root))
    assert len(capped.train) == 10 and ids(capped.train) <= want["train"]
    assert len(capped.dev) == 6 and ids(capped.dev) <= want["dev"]
    assert ids(capped.test) == want["test"]
    quick = split_examples(load_feature(root), max_examples=4)
    assert len(quick.test) == 4 and ids(quick.test) <= want["test"]


def test_split_column_value_with_no_split_names_file_field_and_value(tmp_path):
    root = make_feature(tmp_path / "f")
    add_column(root, "split", lambda i, row: "holdout" if i == 7 else ["train", "dev", "test"][i % 3])
    edit(root, lambda s: s.update(splits={"column": "split"}))
    with pytest.raises(UserError, match=r"feature\.yaml: field `splits\.values`: data\.csv row 8 has split = 'holdout'"):
        load_feature(root)
    edit(root, lambda s: s["splits"].update(values={"train": "train", "dev": "dev", "test": "test", "holdout": "test"}))
    assert "ex7" in ids(split_examples(load_feature(root)).test)


def test_split_column_without_test_rows_is_refused(tmp_path):
    root = make_feature(tmp_path / "f")
    add_column(root, "split", lambda i, row: ["train", "dev"][i % 2])
    edit(root, lambda s: s.update(splits={"column": "split"}))
    with pytest.raises(UserError, match=r"field `splits.column`: no row of column `split` is in the test split") as info:
        split_examples(load_feature(root))
    assert str(root / "feature.yaml") in str(info.value)


def test_split_column_missing_from_a_row_names_the_column(tmp_path):
    root = make_feature(tmp_path / "f")
    edit(root, lambda s: s.update(splits={"column": "split"}))
    with pytest.raises(UserError, match=r"field `data.columns`: data.csv row 1 has no column\(s\) \['split'\]"):
        load_feature(root)


def test_drawn_splits_are_stratified_by_the_first_slice(tmp_path):
    """A rare slice (10%) gets its share of dev and test, within one example, whatever the seed
    (a plain shuffle misses it by several examples for most seeds)."""
    root = make_feature(tmp_path / "f", n=300)
    add_column(root, "tier", lambda i, row: "rare" if i % 10 == 0 else "common")
    edit(root, lambda s: (s["data"].update(slices=["tier", "group"]), s.update(splits={"train": 100, "dev": 50, "test": 50})))
    feature = load_feature(root)
    for seed in range(12):
        splits = split_examples(feature, seed=seed)
        for part, size in ((splits.train, 100), (splits.dev, 50), (splits.test, 50)):
            rare = sum(e.slices["tier"] == "rare" for e in part)
            assert abs(rare - size / 10) <= 1, (seed, len(part), rare)


# ------------------------------------------------------------------------------ shipped demos
def test_exact_demos_by_id_are_the_shipped_prompt_and_in_no_split(tmp_path):
    from offramp.tasks.feature.prompts import shipped_prompt_demos

    root = make_feature(tmp_path / "f", n=63)
    shipped = ["ex5", "ex1", "ex9"]
    edit(root, lambda s: s["incumbent"].update(demos=shipped))
    feature = load_feature(root)
    assert [d.id for d in feature.shipped_demos] == shipped
    assert feature.spec.incumbent.settings.demos == 3  # shipped-prompt configs carry the count
    assert FeatureSpec.model_validate(feature.spec.model_dump(mode="json")) == feature.spec  # as the warehouse stores it
    for seed in range(5):
        splits = split_examples(feature, seed=seed)
        assert not ids(splits.train + splits.dev + splits.test) & set(shipped)
        assert len(splits.train) == len(splits.dev) == len(splits.test) == 20
        assert [d.id for d in shipped_prompt_demos(feature, splits.train, 3, seed)] == shipped
    # `settings.demos: N` keeps its meaning: N drawn from offramp's own train split
    edit(root, lambda s: (s["incumbent"].pop("demos"), s["incumbent"]["settings"].update(demos=3)))
    drawn = load_feature(root)
    train = split_examples(drawn).train
    assert drawn.shipped_demos == () and ids(shipped_prompt_demos(drawn, train, 3, 0)) <= ids(train)


def test_a_demos_file_and_its_copies_in_the_data_are_set_aside(tmp_path):
    root = make_feature(tmp_path / "f", n=66)
    with (root / "data.csv").open(newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    with (root / "shipped_demos.jsonl").open("w") as handle:  # the shipped prompt's examples, two of them also in the data
        for i in ("ex2", "ex30"):
            handle.write(json.dumps({"text": rows[i]["text"], "label": rows[i]["label"]}) + "\n")
        handle.write(json.dumps({"text": "hand-written: my banana", "label": "beta"}) + "\n")
    edit(root, lambda s: s["incumbent"].update(demos="shipped_demos.jsonl"))
    feature = load_feature(root)
    assert [d.inputs["text"] for d in feature.shipped_demos][-1] == "hand-written: my banana"
    splits = split_examples(feature)
    used = ids(splits.train + splits.dev + splits.test)
    assert "ex2" not in used and "ex30" not in used and len(used) == 60


@pytest.mark.parametrize(("demos", "settings", "expected"), [
    (["ex1", "nope"], {}, r"field `incumbent.demos`: no example has id \['nope'\]"),
    ("missing.csv", {}, r"field `incumbent.demos`: .*missing.csv does not exist"),
    (["ex1"], {"demos": 2}, r"field `incumbent`: .*`settings.demos` is 2 .* but `demos` lists 1"),
    ("shipped.csv", {"demos": 2}, r"field `incumbent.settings.demos`: 2 demos drawn from train, but `incumbent.demos` gives 1"),
    ([], {}, r"field `incumbent`: .*at least one example id"),
])
def test_bad_shipped_demos_name_file_and_field(tmp_path, demos, settings, expected):
    root = make_feature(tmp_path / "f")
    (root / "shipped.csv").write_text("text,label\nmy apple,alpha\n")
    edit(root, lambda s: (s["incumbent"].update(demos=demos), s["incumbent"]["settings"].update(settings)))
    with pytest.raises(UserError, match=expected) as info:
        load_feature(root)
    assert str(root / "feature.yaml") in str(info.value)


# ------------------------------------------------------------------------------ in a study
@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def study(tmp_path: Path, feature: Path, **kwargs):
    from offramp.flows.migrate_feature import migrate_feature
    from offramp.flows.params import MigrateParams

    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/sloppy"], output_mode=["text"])
    return migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), trigger="cli", max_trials=3, **kwargs))


def answering(fake, seen: list | None = None):
    from tests.helpers import oracle

    def old(messages):
        if seen is not None:
            seen.append(messages)
        return "alpha"

    fake.add("old", answer=old)
    fake.add("good", answer=oracle)
    fake.add("sloppy", answer=lambda m: f"I think {oracle(m)}, or maybe not" if "1" in m[-1]["content"] else oracle(m))


def test_a_study_prompts_with_the_exact_shipped_demos_and_never_scores_them(harness, home, fake, tmp_path):
    from offramp.warehouse import Warehouse, warehouse_path

    root = make_feature(tmp_path / "feature", n=63)
    edit(root, lambda s: s["incumbent"].update(demos=["ex4", "ex8", "ex0"]))
    seen: list = []
    answering(fake, seen)
    summary = study(tmp_path, root)
    texts = {e.id: e.inputs["text"] for e in load_feature(root).examples}
    demo_turns = [m["content"] for m in seen[0][1:-1]]
    assert demo_turns == [texts["ex4"], "beta", texts["ex8"], "gamma", texts["ex0"], "alpha"]
    assert all([m["content"] for m in s[1:-1]] == demo_turns for s in seen)  # every incumbent call, dev and test
    _, scored = Warehouse(warehouse_path()).fetch("select distinct example_id from calls where study_id = ?", [summary.study_id])
    assert not {r[0] for r in scored} & {"ex4", "ex8", "ex0"}


def write_policy(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def test_policy_file_changes_the_decision_and_is_named_in_the_report(harness, home, fake, tmp_path, monkeypatch):
    from offramp.tasks.evidence.render import markdown
    from offramp.tasks.evidence.report import load_report
    from offramp.warehouse import Warehouse, warehouse_path

    root = make_feature(tmp_path / "feature")
    answering(fake)
    lenient = study(tmp_path, root)
    assert lenient.selection["trial_id"] is not None
    strict = write_policy(tmp_path / "strict.yaml", max_cost_per_1k_usd=1e-9, prefer="quality")
    from offramp.flows import migrate_feature as mf

    stored_before_selection = []  # the study records its policy from its start, not only when it selects
    real_confirm = mf.confirm_front  # confirms on test and judges: the selection

    def confirm(wh, study_id, *args, **kwargs):
        stored_before_selection.append(wh.fetch("select policy from studies where id = ?", [study_id])[1][0][0])
        return real_confirm(wh, study_id, *args, **kwargs)

    monkeypatch.setattr(mf, "confirm_front", confirm)
    judged = study(tmp_path, root, policy_file=str(strict))
    assert judged.study_id != lenient.study_id and judged.selection["trial_id"] is None
    wh = Warehouse(warehouse_path())
    _, [(stored,)] = wh.fetch("select policy from studies where id = ?", [judged.study_id])
    stored = json.loads(stored)
    assert json.loads(stored_before_selection[0]) == stored
    assert stored["file"] == str(strict.resolve()) and stored["values"]["max_cost_per_1k_usd"] == 1e-9
    assert re.fullmatch(r"[0-9a-f]{12}", stored["hash"])
    report = load_report(wh, judged.study_id)
    for text in (report.policy, markdown(report)):
        assert str(strict.resolve()) in text and stored["hash"] in text and "max_cost_per_1k_usd=1e-09" in text
    assert "cost <= $1e-09 per 1k" in report.policy
    default = load_report(wh, lenient.study_id).policy
    assert "no policy file" in default and json.loads(wh.fetch("select policy from studies where id = ?",
                                                               [lenient.study_id])[1][0][0])["file"] is None


# ------------------------------------------------------------------------------ the CLI
@pytest.mark.parametrize(("policy", "expected"), [
    ({"prefer": "vibes"}, r"field `prefer`"),
    ({"quality_tolerance": 2}, r"field `quality_tolerance`"),
    ({"surprise": 1}, r"field `surprise`: Extra inputs"),
])
def test_bad_policy_file_exits_2_naming_file_and_field(tmp_path, policy, expected):
    root = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good"])
    bad = write_policy(tmp_path / "policy.yaml", **policy)
    for extra in (["--dry-run"], [])[: 2 if "prefer" in policy else 1]:  # a real run checks it before Prefect too
        result = offramp("migrate", str(root), "--space", str(space), "--policy", str(bad), *extra, home=tmp_path / "home")
        assert result.returncode == 2, result.stderr
        assert re.search(expected, result.stderr) and str(bad) in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_dry_run_prices_and_estimates_without_a_call(tmp_path):
    from offramp.warehouse import Warehouse, records
    from tests.fake_openai import Endpoint, FakeOpenAI, Model

    root = make_feature(tmp_path / "feature", incumbent="openai/old")
    space = tmp_path / "space.yaml"
    prices = {"openai/old": (1e-6, 2e-6), "openai/good": (3e-6, 4e-6), "openai/other": (5e-6, 6e-6)}
    space.write_text(yaml.safe_dump({
        "name": "s", "models": ["openai/good", "openai/other"], "settings": {"max_tokens": [16, 32]},
        "prices": {m: {"input_cost_per_token": i, "output_cost_per_token": o} for m, (i, o) in prices.items()},
    }))
    home = tmp_path / "home"
    with FakeOpenAI([Endpoint("e", {m: Model(m) for m in ("old", "good", "other")})]).start() as server:
        import os

        os.environ["OPENAI_API_BASE"], os.environ["OPENAI_API_KEY"] = server.endpoints["e"].url, "sk-fake"
        try:
            first = offramp("migrate", str(root), "--space", str(space), "--dry-run", "--max-trials", "5", home=home)
            # measured: answered calls of one model in the warehouse give its time per call
            wh = Warehouse(home / "warehouse.duckdb")
            records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="m", trigger="cli",
                                space_name="x", space={}, params={}, seed=0)
            import datetime as dt

            calls = [records.CallRecord("s", 0, f"e{i}", "openai/old", "{}", "p", f"k{i}", "o", None, 1.0, 10, 2, 0.0,
                                        latency, None, None, None, False, 1, "eval", dt.datetime.now())
                     for i, latency in enumerate([0.5, 1.5])]
            records.store_calls(wh, calls, ())
            second = offramp("migrate", str(root), "--space", str(space), "--dry-run", "--max-trials", "5", home=home)
        finally:
            del os.environ["OPENAI_API_BASE"], os.environ["OPENAI_API_KEY"]
        assert server.count("billed") == 0 and server.ledger() == {}
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    out = first.stdout
    assert "train 20, dev 20, test 20" in out
    # (1 incumbent + 5 trials) x (20 dev + 20 test): the incumbent strategy compiles nothing
    assert re.search(r"total\s*│\s*│\s*│\s*240\s*│", out), out
    per_call = {m: float(v) for m, v in re.findall(r"(openai/\w+)\s*│ ([\d.]+)", out)}
    assert per_call["openai/other"] > per_call["openai/good"] > per_call["openai/old"] > 32 * 2e-6  # all max_tokens priced
    total = float(re.search(r"total\s*│\s*│\s*│\s*240\s*│ ([\d.]+)", out).group(1))
    assert total == pytest.approx(40 * per_call["openai/old"] + 200 * per_call["openai/other"], rel=1e-3)  # the dearest candidate
    assert "no measurement" in out and "Time: no measurement for openai/old, openai/good, openai/other" in out
    row = re.search(r"openai/old\s*│ ([\d.]+)\s*│ ([\d.-]+)\s*│ warehouse: mean of 2 answered calls", second.stdout)
    assert row and float(row.group(2)) == 1.0, second.stdout
    assert not (home / "prefect").exists() or not any((home / "prefect").iterdir())


def test_dry_run_plan_counts_compile_calls_of_dspy_strategies(tmp_path, home):
    from offramp.flows.migrate_feature import study_inputs
    from offramp.flows.params import MigrateParams
    from offramp.tasks.study.plan import plan_study
    from offramp.tasks.study.prepare import preflight

    root = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good"], strategies={"incumbent": {}, "few_shot": {"k": [2, 3]}})
    params = MigrateParams(feature_dir=str(root), space=str(space), max_trials=4, max_examples=5)
    plan = plan_study(preflight(study_inputs(params)), params)
    phases = {p.name.split(" (")[0]: p for p in plan.phases}
    assert phases["compiles"].calls == 4 * 4 * 3  # BootstrapFewShot: at most 4k calls, the largest k, every trial
    assert phases["search on dev"].calls == phases["front on test"].calls == 4 * 5
    assert plan.calls == 5 + 20 + 48 + 5 + 20


def test_the_deployment_takes_a_policy_file_and_its_flow_applies_it(tmp_path):
    from offramp.flows.deployments import trigger_parameters
    from offramp.flows.migrate_feature import study_inputs
    from offramp.flows.params import MigrateParams
    from offramp.tasks.evidence.policy import SelectionPolicy
    from offramp.tasks.study.prepare import resolve_policy

    policy = write_policy(tmp_path / "p.yaml", prefer="knee", max_slice_drop=None)
    params = trigger_parameters({"policy_file": str(policy)})["params"]
    assert params["policy_file"] == str(policy)
    run = MigrateParams(**{**params, "feature_dir": "f", "deprecated_model": "m", "replacement_model": None, "event_id": "e"})
    applied, source = resolve_policy(study_inputs(run))
    assert applied == SelectionPolicy(prefer="knee", max_slice_drop=None) and source == str(policy.resolve())
    both = run.model_copy(update={"policy": SelectionPolicy(prefer="fastest")})
    with pytest.raises(UserError, match="give one"):
        resolve_policy(study_inputs(both))


def test_a_study_stopped_before_its_selection_still_names_its_policy():
    from offramp.tasks.evidence.policy import SelectionPolicy
    from offramp.tasks.evidence.report import StudyReport

    stored = SelectionPolicy(prefer="knee").identity("/srv/policy.yaml")
    report = StudyReport(study={"id": "s", "policy": json.dumps(stored)}, trials=[], front_ids=set(), regressions=[],
                         flips=[], spend=[], health=[], unparsed=[])
    assert report.policy.startswith(SelectionPolicy(prefer="knee").describe())
    assert f"From /srv/policy.yaml, hash {stored['hash']}: " in report.policy and "prefer=knee" in report.policy
