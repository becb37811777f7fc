"""Report, promote, releases, rollback, and loading a release in an application."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from prefect.testing.utilities import prefect_test_harness

from offramp.errors import UserError
from offramp.flows.migrate_feature import migrate_feature
from offramp.flows.params import MigrateParams
from offramp.tasks.evidence.render import markdown, write_html
from offramp.tasks.evidence.report import load_report
from offramp.tasks.watch.releases import list_releases, load_release, promote, rollback
from offramp.warehouse import Warehouse, warehouse_path
from tests.helpers import dspy_reply, make_feature, make_space, oracle


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def study(harness, home, fake, tmp_path):
    fake.add("old", answer=lambda m: dspy_reply(m, lambda n, t: "alpha") or "alpha")
    fake.add("good", answer=oracle)
    fake.add("sloppy", answer=lambda m: "beta")
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good", "fake/sloppy"], strategies={"incumbent": {}, "zero_shot": {}})
    summary = migrate_feature(MigrateParams(feature_dir=str(feature), space=str(space), max_trials=5, trigger="cli"))
    return summary, Warehouse(warehouse_path())


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_report_forms_share_the_facts(study, home):
    summary, wh = study
    r = load_report(wh, summary.study_id)
    assert {t.trial_id for t in r.front} == set(summary.front)
    md = markdown(r)
    assert summary.study_id in md and "Decision:" in md and "v_regressions" in md
    for t in r.front:  # every front config's paired delta appears in the markdown
        o = r.overall(t.trial_id)
        assert f"{o['diff']:+.3f}" in md
    path = write_html(r, home / "reports" / "r.html")
    parser = _Collect()
    parser.feed(path.read_text())
    assert "script" in parser.tags and "table" in parser.tags
    text = " ".join(parser.text)
    assert "incumbent" in text and "naive swap" in text and summary.study_id in text
    assert summary.report_path and json.dumps(summary.report_path)


def test_promote_load_rollback_round_trip(study, tmp_path):
    summary, wh = study
    directory = tmp_path / "releases"
    selected = summary.selection["trial_id"]
    assert selected is not None
    path, entry, warnings = promote(wh, summary.study_id, directory=directory)
    assert path == directory / "tiny-routing.json" and entry["version"] == 1 and entry["trial_id"] == selected and not warnings
    program = load_release(path)
    assert program(text="a message about banana") == {"label": "beta"}  # the released config on the real call path
    assert program(text="grape, please") == {"label": "gamma"}

    others = [t for t in summary.front if t != selected]
    non_front = [t.trial_id for t in summary.trials if t.split == "dev" and t.role != "incumbent" and t.trial_id not in summary.front
                 and t.status == "completed"]
    target = others[0] if others else None
    if non_front:
        with pytest.raises(UserError, match="not on the front"):
            promote(wh, summary.study_id, trial_id=non_front[0], directory=directory)
        _, forced, warnings = promote(wh, summary.study_id, trial_id=non_front[0], force=True, directory=directory)
        assert any("not on the front" in w for w in warnings) and forced["version"] == 2
    elif target is not None:
        promote(wh, summary.study_id, trial_id=target, directory=directory)
    else:
        promote(wh, summary.study_id, directory=directory)
    current, items = list_releases("tiny-routing", directory=directory)
    assert current == 2 and len(items) == 2

    _, back = rollback(wh, "tiny-routing", directory=directory)
    assert back["rolled_back_to"] == 1 and back["trial_id"] == selected and back["version"] == 3
    assert load_release(path).entry["trial_id"] == selected
    with pytest.raises(UserError, match="nothing to roll back to"):
        rollback(wh, "tiny-routing", directory=directory)
    _, rows = wh.fetch("select version, action, trial_id, latest_action from v_releases where feature = 'tiny-routing' order by version")
    assert [(r[0], r[1]) for r in rows] == [(1, "promote"), (2, "promote"), (3, "rollback")]
    assert rows[-1][3] and rows[-1][2] == selected


def test_bad_promotions(study, tmp_path):
    summary, wh = study
    with pytest.raises(UserError, match="no study"):
        promote(wh, "no-such-study", directory=tmp_path)
    incumbent = next(t.trial_id for t in summary.trials if t.role == "incumbent")
    with pytest.raises(UserError, match="not a completed candidate"):
        promote(wh, summary.study_id, trial_id=incumbent, directory=tmp_path)
    with pytest.raises(UserError, match="no release file"):
        load_release(tmp_path / "nothing.json")
