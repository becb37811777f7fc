"""A study on the fake provider builds a cascade from what the search measured on dev, confirms it
on the held-out split through its members' calls, compares it with the incumbent, and reports how
often each branch answered."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness
from rich.console import Console

from offramp.errors import SpaceError
from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.search_spaces.schema import load_space
from offramp.tasks.evidence.render import markdown, write_html
from offramp.tasks.evidence.report import load_report
from offramp.tasks.evidence.terminal import render_report
from offramp.tasks.watch.releases import load_release, promote
from offramp.warehouse import Warehouse, warehouse_path
from tests.helpers import make_feature, oracle

NUMBER = re.compile(r"message (\d+) about")


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def cheap_answer(messages: list[dict]) -> str:
    """Right on even-numbered messages; an answer that does not parse on the others."""
    number = int(NUMBER.search(messages[-1]["content"]).group(1))
    return oracle(messages) if number % 2 == 0 else "hmm, hard to say"


def run_study(tmp_path, fake, *, composites: bool = True):
    fake.add("old", answer=lambda m: "alpha")  # the incumbent: one label for everything (1/3 right)
    fake.add("cheap", answer=cheap_answer)
    fake.add("strong", answer=oracle)
    feature = make_feature(tmp_path / "feature")
    space = {
        "name": "cascade-space", "models": ["fake/cheap", "fake/strong"], "strategies": {"incumbent": {}},
        "settings": {"max_tokens": [64]},
        "prices": {"fake/cheap": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7},
                   "fake/strong": {"input_cost_per_token": 1e-5, "output_cost_per_token": 2e-5},
                   "fake/old": {"input_cost_per_token": 2e-5, "output_cost_per_token": 4e-5}},
    }
    if not composites:
        space["composites"] = False
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    params = MigrateParams(feature_dir=str(feature), space=str(tmp_path / "space.yaml"), trigger="cli", max_trials=4,
                           deprecated_model="fake/old")
    return migrate_feature(params)


def test_a_cascade_is_built_confirmed_compared_selected_and_reported(harness, home, fake, tmp_path):
    summary = run_study(tmp_path, fake)
    assert summary.status == "completed"
    wh = Warehouse(warehouse_path())
    sid = summary.study_id
    _, singles = wh.fetch("select model, trial_id, quality from trials where study_id = ? and split = 'dev' and role = 'naive_swap'", [sid])
    single = {model: (trial_id, quality) for model, trial_id, quality in singles}
    assert single["fake/cheap"][1] == 0.5 and single["fake/strong"][1] == 1.0
    _, composites = wh.fetch("select trial_id, kind, rule, label, members from composites where study_id = ?", [sid])
    cascade = [c for c in composites if c[1] == "cascade" and c[2] == "unsure"]
    assert len(cascade) == 1, composites
    dev_id, _, _, label, members = cascade[0]
    _, member_models = wh.fetch("select trial_id, model from trials where study_id = ? and list_contains(?, trial_id)",
                                [sid, json.loads(members)])
    assert [dict(member_models)[m] for m in json.loads(members)] == ["fake/cheap", "fake/strong"]
    assert label == "cascade (unsure): fake/cheap → fake/strong"
    _, single_branch = wh.fetch(  # a composite that routes every request to one member is that member: not built
        "select a.trial_id from composite_answers a join trials t using (study_id, trial_id) where a.study_id = ? and t.split = 'dev' "
        "group by a.trial_id having count(distinct a.branch) = 1", [sid])
    assert single_branch == []
    # on dev: no call of its own, quality from its members' answers, cost and latency summed
    _, [(role, quality, cost, n_calls)] = wh.fetch(
        "select role, quality, cost_per_1k_usd, n_calls from v_trials where study_id = ? and trial_id = ?", [sid, dev_id])
    _, costs = wh.fetch("select model, cost_per_1k_usd from trials where study_id = ? and split = 'dev' and role = 'naive_swap'", [sid])
    costs = dict(costs)
    assert role == "composite" and quality == 1.0 and n_calls == 0
    assert costs["fake/cheap"] < cost < costs["fake/strong"]  # (naive swaps: the same price per call as the members)
    # on test: the cheap member on every request, the strong one on the escalated half only (purpose 'composite')
    _, [(test_id, test_quality)] = wh.fetch(
        "select trial_id, quality from trials where study_id = ? and split = 'test' and source_trial_id = ?", [sid, dev_id])
    assert test_quality == 1.0
    _, branches = wh.fetch("select branch, count(*) from composite_answers where study_id = ? and trial_id = ? group by all",
                           [sid, test_id])
    branches = dict(branches)
    escalated = branches["escalated: " + [x for x in branches if x.startswith("escalated")][0].split(": ", 1)[1]]
    assert sum(branches.values()) == 20 and 0 < escalated < 20
    _, calls = wh.fetch("select model, count(*) from calls where study_id = ? and trial_id = ? and purpose = 'composite' group by all",
                        [sid, test_id])
    assert dict(calls) == {"fake/cheap": 20, "fake/strong": escalated}
    _, [(spend, paid)] = wh.fetch(  # what the trial paid is what its member calls paid (a cached answer: free)
        "select any_value(t.spend_usd), sum(c.cost_usd) from trials t join calls c using (study_id, trial_id) "
        "where t.study_id = ? and t.trial_id = ?", [sid, test_id])
    assert spend == pytest.approx(paid)
    # compared with the incumbent like any config, and selected: as good as the strong model, cheaper
    _, compared = wh.fetch("select trial_id, test_trial_id from comparisons where study_id = ? and slice_field is null", [sid])
    assert (dev_id, test_id) in compared
    assert dev_id in summary.front
    _, [(on_front, selected)] = wh.fetch("select on_front, selected from v_leaderboard where study_id = ? and trial_id = ?", [sid, dev_id])
    assert on_front and selected
    assert summary.selection["trial_id"] == dev_id, summary.selection
    # the report says how often each branch answered, on dev and on test
    report = load_report(wh, sid)
    [line] = [x for x in report.composite_lines() if x.startswith(f"trial {dev_id} ")]
    assert "dev: cheap: fake/cheap" in line and "test: cheap: fake/cheap" in line and "escalated: fake/strong" in line
    assert f"({escalated})" in line
    assert line in markdown(report)
    console = Console(record=True, width=400)
    render_report(console, report)
    assert f"- {line}" in console.export_text()
    page = write_html(report, tmp_path / "r.html").read_text()
    assert "branches taken" in page and "cascade (unsure): fake/cheap → fake/strong" in page
    # released, it answers through its members: the cheap one, the strong one when the cheap answer does not parse
    path, entry, _ = promote(wh, sid, directory=tmp_path / "releases")
    assert entry["strategy"] == "cascade:unsure" and len(entry["members"]) == 2
    route = load_release(path)
    strong_calls = fake.models["strong"].calls
    assert route(text="message 2 about banana #5") == {"label": "beta"} and route.last_branch.startswith("cheap: fake/cheap")
    assert fake.models["strong"].calls == strong_calls
    assert route(text="message 3 about grape #5") == {"label": "gamma"} and route.last_branch.startswith("escalated: fake/strong")
    assert fake.models["strong"].calls == strong_calls + 1


def test_composites_false_searches_single_configs_only(harness, home, fake, tmp_path):
    summary = run_study(tmp_path, fake, composites=False)
    wh = Warehouse(warehouse_path())
    _, [(n,)] = wh.fetch("select count(*) from trials where study_id = ? and role = 'composite'", [summary.study_id])
    assert summary.status == "completed" and n == 0


def test_composites_option_is_validated_at_load(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "models": ["fake/a"], "composites": "sometimes"}))
    with pytest.raises(SpaceError, match="composites"):
        load_space(path)
