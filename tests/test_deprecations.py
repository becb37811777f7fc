"""The deprecation watch: sources, matching, the registry, and the flow on a fixture price map
(right features selected, no duplicate events, a date change re-emits, bad entries skipped)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from offramp.errors import UserError
from offramp.flows.deployments import EVENT_TEMPLATES, trigger_parameters
from offramp.flows.params import MigrateParams, WatchParams
from offramp.tasks.watch.deprecations import (
    Notice,
    NoticeEntry,
    assess,
    canonical,
    check_user_notice,
    latest_snapshot,
    load_notices_file,
    load_price_map,
    map_notices,
    model_identity,
)
from offramp.tasks.watch.registry import RegisteredFeature, discover
from offramp.warehouse import Warehouse, records, warehouse_path
from tests.helpers import make_feature

TODAY = dt.date(2026, 11, 22)
MAP = {
    "sample_spec": {"deprecation_date": "date when the model becomes deprecated in the format YYYY-MM-DD"},
    "gpt-old": {"litellm_provider": "openai", "deprecation_date": "2027-01-10"},
    "gpt-far": {"litellm_provider": "openai", "deprecation_date": "2027-09-01"},
    "gpt-4o": {"litellm_provider": "openai"},
    "gpt-4o-2024-05-13": {"litellm_provider": "openai", "deprecation_date": "2027-02-01"},
    "gpt-4o-2024-11-20": {"litellm_provider": "openai", "deprecation_date": "2027-03-01"},
    "gpt-4o-mini-2024-07-18": {"litellm_provider": "openai", "deprecation_date": "2026-12-01"},
    "claude-x-20240620": {"litellm_provider": "anthropic", "deprecation_date": "2026-12-24"},
    "azure/gpt-old": {"litellm_provider": "azure", "deprecation_date": "2028-01-01"},
    "bad-date": {"litellm_provider": "openai", "deprecation_date": "soon"},
    "gpt-new": {"litellm_provider": "openai"},
}


def feature(name: str, model: str, release: str | None = None) -> RegisteredFeature:
    return RegisteredFeature(name=name, dir=f"/f/{name}", spec_path=f"/f/{name}/feature.yaml", incumbent_model=model,
                             release_model=release, release_version=1 if release else None)


def test_map_notices_skip_the_spec_and_report_bad_dates():
    notices, problems = map_notices(MAP)
    assert {n.model for n in notices} == {k for k, v in MAP.items() if "deprecation_date" in v} - {"sample_spec", "bad-date"}
    assert len(problems) == 1 and "bad-date" in problems[0] and "deprecation_date" in problems[0]


def test_matching_prefixes_aliases_and_unknown():
    assert canonical("openai/gpt-old", MAP) == "gpt-old"
    assert canonical("azure/gpt-old", MAP) == "azure/gpt-old"  # a different deployment, its own date
    assert latest_snapshot("gpt-4o", MAP) == "gpt-4o-2024-11-20"
    assert latest_snapshot("claude-x-latest", MAP) == "claude-x-20240620"
    notices, _ = map_notices(MAP)
    features = [feature("a", "openai/gpt-old"), feature("b", "gpt-4o"), feature("c", "gpt-new"),
                feature("d", "azure/gpt-old"), feature("e", "claude-x-latest"), feature("f", "gpt-far")]
    got = {x.feature: x for x in assess(features, notices, MAP, today=TODAY)}
    assert got["a"].status == "retiring" and got["a"].retires_on == dt.date(2027, 1, 10) and got["a"].days_left == 49
    assert got["b"].retires_on == dt.date(2027, 3, 1) and "gpt-4o-2024-11-20" in got["b"].via  # the alias's newest snapshot
    assert got["c"].status == "unknown" and got["c"].retires_on is None  # no date is not "safe"
    assert got["d"].status == "later" and got["d"].provider == "azure"
    assert got["e"].status == "retiring" and got["e"].provider == "anthropic"
    assert got["f"].status == "later"  # 283 days > 120
    per_provider = {x.feature: x for x in assess(features, notices, MAP, today=TODAY, provider_horizon_days={"openai": 300})}
    assert per_provider["f"].status == "retiring" and per_provider["f"].horizon_days == 300
    assert per_provider["d"].horizon_days == 120


def test_user_notices_beat_the_map_and_past_dates_are_retired():
    notices, _ = map_notices(MAP)
    user = Notice("gpt-old", dt.date(2027, 8, 1), "notice", "gpt-new", "https://example.com")
    [a] = assess([feature("a", "gpt-old")], [*notices, user], MAP, today=TODAY)
    assert (a.source, a.retires_on, a.status, a.replacement) == ("notice", dt.date(2027, 8, 1), "later", "gpt-new")
    gone = Notice("gpt-new", dt.date(2026, 11, 1), "notices_file")
    [b] = assess([feature("b", "gpt-new")], [gone], MAP, today=TODAY)
    assert b.status == "retired" and b.days_left == -21 and b.actionable


def test_release_models_are_watched_too():
    notices, _ = map_notices(MAP)
    roles = {x.model: x for x in assess([feature("a", "gpt-new", release="gpt-old")], notices, MAP, today=TODAY)}
    assert roles["gpt-old"].role == "release" and roles["gpt-old"].actionable and not roles["gpt-old"].migratable
    assert roles["gpt-new"].role == "incumbent" and roles["gpt-new"].migratable


def test_notices_file_bad_entries_are_skipped_with_their_place(tmp_path: Path):
    path = tmp_path / "notices.yaml"
    path.write_text(yaml.safe_dump({"notices": [
        {"model": "gpt-old", "retires_on": "2027-01-01", "source": "https://x"},
        {"model": "gpt-new", "retires_on": "next spring"},
        {"model": "gpt-old", "retires_on": "2026-12-15"},
        {"retires_on": "2027-01-01"},
        {"model": "gpt-4o", "retires_on": "2027-01-01", "colour": "red"},
    ]}))
    notices, problems = load_notices_file(path)
    assert [(n.model, n.retires_on) for n in notices] == [("gpt-old", dt.date(2026, 12, 15))]  # the earlier date
    text = "\n".join(problems)
    assert "notices[1]: field `retires_on`" in text and "notices[3]: field `model`" in text and "notices[4]: field `colour`" in text
    assert "listed twice" in text and all(str(path) in p for p in problems)
    (tmp_path / "broken.yaml").write_text("notices: [model: gpt-old, retires_on: {")
    notices, problems = load_notices_file(tmp_path / "broken.yaml")
    assert notices == [] and "not valid YAML" in problems[0] and "broken.yaml" in problems[0]
    (tmp_path / "list.yaml").write_text("- model: gpt-old\n")
    assert "field `notices`" in load_notices_file(tmp_path / "list.yaml")[1][0]
    assert "does not exist" in load_notices_file(tmp_path / "missing.yaml")[1][0]


def test_price_map_file_errors_name_the_file(tmp_path: Path):
    (tmp_path / "map.json").write_text("{not json")
    with pytest.raises(UserError, match="map.json: not valid JSON"):
        load_price_map(tmp_path / "map.json")
    with pytest.raises(UserError, match="does not exist"):
        load_price_map(tmp_path / "nope.json")
    assert "gpt-3.5-turbo" in load_price_map()  # the bundled map, offline


def test_provider_api_reads_shutdown_dates_and_never_leaks_the_key(monkeypatch):
    """OpenAI's GET /v1/models, faked at the network edge."""
    import httpx

    from offramp.tasks.watch.deprecations import provider_api_notices

    seen = []

    def models(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"data": [
            {"id": "gpt-old", "shutdown_date": "2027-01-05"}, {"id": "gpt-new", "shutdown_date": None},
            {"id": "ft-thing", "shutdown_date": "2027-02-30"}, {"id": "brand-new", "shutdown_date": "2027-06-01"},
        ]})

    notices, problems = provider_api_notices("openai", MAP, api_key="sk-secret", transport=httpx.MockTransport(models))
    assert seen == ["Bearer sk-secret"]
    assert {(n.model, n.retires_on, n.source) for n in notices} == {
        ("gpt-old", dt.date(2027, 1, 5), "provider_api"), ("openai/brand-new", dt.date(2027, 6, 1), "provider_api")}
    assert len(problems) == 1 and "ft-thing" in problems[0] and "shutdown_date" in problems[0]
    [a] = assess([feature("a", "openai/gpt-old")], [*map_notices(MAP)[0], *notices], MAP, today=TODAY)
    assert (a.source, a.retires_on) == ("provider_api", dt.date(2027, 1, 5))  # beats litellm's map

    denied = httpx.MockTransport(lambda request: httpx.Response(401, json={"error": "bad key sk-secret"}))
    notices, problems = provider_api_notices("openai", MAP, api_key="sk-secret", transport=denied)
    assert notices == [] and "HTTP 401" in problems[0] and "sk-secret" not in problems[0]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert "OPENAI_API_KEY is not set" in provider_api_notices("openai", MAP, base_url="http://x")[1][0]


def test_notify_checks():
    entry = NoticeEntry(model="gpt-zzz", retires_on=dt.date(2027, 1, 1))
    with pytest.raises(UserError, match="does not know it and no registered feature uses it"):
        check_user_notice(entry, today=TODAY, price_map=MAP, models_in_use=["gpt-old"])
    check_user_notice(entry, today=TODAY, price_map=MAP, models_in_use=["gpt-zzz"])  # a feature uses it
    check_user_notice(entry, today=TODAY, price_map=MAP, models_in_use=[], force=True)
    past = NoticeEntry(model="gpt-old", retires_on=dt.date(2026, 1, 1))
    with pytest.raises(UserError, match="in the past"):
        check_user_notice(past, today=TODAY, price_map=MAP, models_in_use=[])
    check_user_notice(past, today=TODAY, price_map=MAP, models_in_use=[], already_retired=True)


def test_registry_reads_specs_releases_and_reports_bad_folders(tmp_path: Path):
    root = tmp_path / "features"
    make_feature(root / "one", incumbent="gpt-old", extra={"search_space": "space.yaml"})
    make_feature(root / "two", incumbent="gpt-new", extra={"name": "two"})
    (root / "broken").mkdir()
    (root / "broken" / "feature.yaml").write_text("name: [unclosed")
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "two.json").write_text(json.dumps({"feature": "two", "current": 2, "releases": [
        {"version": 1, "model": "gpt-4o"}, {"version": 2, "model": "gpt-far"}]}))
    found, problems = discover(root, releases=releases)
    by_name = {f.name: f for f in found}
    assert set(by_name) == {"tiny-routing", "two"}
    assert by_name["tiny-routing"].search_space == str(root / "one" / "space.yaml")
    assert by_name["two"].models() == {"gpt-new": "incumbent", "gpt-far": "release"}
    assert len(problems) == 1 and "broken" in problems[0]
    assert discover(tmp_path / "nowhere")[1][0].endswith("is not a folder (set --features or OFFRAMP_FEATURES)")


def test_trigger_templates_render_with_prefects_renderer():
    """The templates as Prefect's automation renders them (hydrate with Jinja): a UUID id through
    `| string`, a missing optional key through `| default(none)`; the result is valid MigrateParams."""
    import copy
    import uuid

    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    for payload in ({"feature_dir": "/f/a", "model": "gpt-old", "replacement": "gpt-new"}, {"feature_dir": "/f/a", "model": "gpt-old"}):
        event = {"id": uuid.uuid4(), "payload": payload}
        params = copy.deepcopy(trigger_parameters({"max_trials": 5}))
        RunDeployment._upgrade_v1_templates(params)  # what the server does to plain-string templates
        rendered = hydrate(params, HydrationContext(render_jinja=True, jinja_context={"event": event}, raise_on_error=True))
        migrate = MigrateParams.model_validate(rendered["params"])
        assert migrate.feature_dir == "/f/a" and migrate.deprecated_model == "gpt-old" and migrate.trigger == "event"
        assert migrate.replacement_model == payload.get("replacement") and migrate.event_id == str(event["id"])
        assert migrate.max_trials == 5
    with pytest.raises(ValueError, match="not migrate-feature parameters"):
        trigger_parameters({"max_trails": 5})


def test_prefect_yaml_matches_the_deployments_offramp_serve_builds():
    from offramp.flows.deployments import DEFAULT_CRON, EVENT, MIGRATE_DEPLOYMENT, WATCH_DEPLOYMENT
    from tests.conftest import ROOT

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in config["deployments"]}
    migrate, watch = by_name[MIGRATE_DEPLOYMENT], by_name[WATCH_DEPLOYMENT]
    assert migrate["entrypoint"] == "offramp.flows.migrate_feature.migrate_feature"
    [trigger] = migrate["triggers"]
    limits = migrate["parameters"]["params"]  # the form's limits; the trigger repeats them (issue 13)
    assert limits["max_trials"] >= 1 and limits["max_spend_usd"] > 0
    assert trigger["expect"] == [EVENT] and trigger["parameters"]["params"] == {**limits, **EVENT_TEMPLATES}
    assert MigrateParams.model_validate({**limits, "feature_dir": "f"}).max_spend_usd == limits["max_spend_usd"]
    assert watch["entrypoint"] == "offramp.flows.watch_deprecations.watch_deprecations"
    assert watch["schedules"][0]["cron"] == DEFAULT_CRON
    WatchParams.model_validate(watch["parameters"]["params"])


# -- the flow, under Prefect's test harness ----------------------------------------------------

@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_map(path: Path, dates: dict[str, str]) -> Path:
    path.write_text(json.dumps({m: {"litellm_provider": "fake", "deprecation_date": d} for m, d in dates.items()}))
    return path


def test_watch_flow_selects_emits_once_and_reemits_on_a_date_change(harness, home, tmp_path: Path):
    from offramp.flows.watch_deprecations import watch_deprecations
    from offramp.tasks.watch.deprecations import today_utc

    today = today_utc()
    soon, later, far = (str(today + dt.timedelta(days=d)) for d in (30, 60, 400))
    root = tmp_path / "features"
    make_feature(root / "a", incumbent="fake/old")
    make_feature(root / "b", incumbent="fake/steady", extra={"name": "b-feature"})
    make_feature(root / "c", incumbent="fake/unlisted", extra={"name": "c-feature"})
    (root / "bad").mkdir()
    (root / "bad" / "feature.yaml").write_text("name: Not A Valid Name\n")
    notices = tmp_path / "notices.yaml"
    notices.write_text(yaml.safe_dump({"notices": [{"model": "fake/x", "retires_on": "someday"}]}))
    price_map = write_map(tmp_path / "map.json", {"fake/old": soon, "fake/steady": far})
    params = WatchParams(features_root=str(root), notices_file=str(notices), price_map=str(price_map))

    first = watch_deprecations(params)
    status = {a.feature: a.status for a in first.assessments}
    assert status == {"tiny-routing": "retiring", "b-feature": "later", "c-feature": "unknown"}
    assert [(e["feature"], e["model"]) for e in first.emitted] == [("tiny-routing", "fake/old")]
    assert any("bad" in p for p in first.problems) and any("notices[0]" in p for p in first.problems)

    second = watch_deprecations(params)  # nothing changed: no second event
    assert second.emitted == [] and [a.feature for a in second.already] == ["tiny-routing"]

    write_map(price_map, {"fake/old": later, "fake/steady": far})  # the provider moved the date
    third = watch_deprecations(params)
    assert [(e["model"], str(e["retires_on"])) for e in third.emitted] == [("fake/old", later)]
    assert [c["change"] for c in third.changes] == ["date_changed"]

    wh = Warehouse(warehouse_path())
    assert wh.fetch("select count(*) from deprecation_events")[1] == [(2,)]
    history = wh.fetch("select model, change, retires_on, previous_retires_on from deprecation_history where model = 'fake/old' order by seen_at")[1]
    assert [(h[1], str(h[2]), str(h[3]) if h[3] else None) for h in history] == [("new", soon, None), ("date_changed", later, soon)]
    assert wh.fetch("select first_seen < last_seen from deprecations where model = 'fake/old'")[1] == [(True,)]
    registry = wh.fetch("select name, incumbent_model, cast(incumbent_retires_on as text), retirement_source from v_features")[1]
    assert registry == [("b-feature", "fake/steady", far, "litellm"), ("c-feature", "fake/unlisted", None, None),
                        ("tiny-routing", "fake/old", later, "litellm")]


def test_watch_flow_dry_run_emits_nothing_and_a_bad_price_map_is_a_problem(harness, home, tmp_path: Path):
    from offramp.flows.watch_deprecations import watch_deprecations

    root = tmp_path / "features"
    make_feature(root / "a", incumbent="fake/old")
    (tmp_path / "map.json").write_text("[]")
    summary = watch_deprecations(WatchParams(features_root=str(root), price_map=str(tmp_path / "map.json"), emit=False))
    assert summary.emitted == [] and summary.assessments[0].status == "unknown"
    assert any("map.json" in p and "expected a JSON object" in p for p in summary.problems)
    records.record_deprecations(Warehouse(warehouse_path()), [Notice("fake/old", dt.date.today() + dt.timedelta(days=5), "notice").row()])
    summary = watch_deprecations(WatchParams(features_root=str(root), price_map=str(tmp_path / "map.json"), emit=False))
    assert [a.feature for a in summary.pending] == ["tiny-routing"] and summary.emitted == []
    assert Warehouse(warehouse_path()).fetch("select count(*) from deprecation_events")[1] == [(0,)]


def test_triggered_study_takes_the_features_space_and_the_replacement_when_it_can_price_it(home, tmp_path: Path):
    from offramp.flows.migrate_feature import preflight, study_inputs

    folder = make_feature(tmp_path / "f", extra={"search_space": "space.yaml"})
    from tests.helpers import make_space

    make_space(folder / "space.yaml", ["fake/good"])
    price = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    (tmp_path / "prices.yaml").write_text(yaml.safe_dump({"fake/new": price, "fake/old": price}))
    base = dict(feature_dir=str(folder), deprecated_model="fake/old", prices_file=str(tmp_path / "prices.yaml"))
    space = preflight(study_inputs(MigrateParams(**base))).space
    assert space.name == "fake-space" and space.models == ["fake/good"]  # the feature's own space, not local-zoo
    space = preflight(study_inputs(MigrateParams(**base, replacement_model="fake/new"))).space
    assert space.models == ["fake/good", "fake/new"]
    space = preflight(study_inputs(MigrateParams(**base, replacement_model="fake/unpriced"))).space
    assert space.models == ["fake/good"]  # left out (logged), the study still runs
    space = preflight(study_inputs(MigrateParams(**base, space="local-zoo", replacement_model="fake/new"))).space
    assert "local/qwen2.5-0.5b" in space.models and space.models[-1] == "fake/new"


def test_model_identity_resolves_the_provider_prefix_one_way_for_everyone():
    assert model_identity("gpt-4o") == model_identity("openai/gpt-4o") == "openai/gpt-4o"
    assert model_identity("azure/gpt-4o") == "azure/gpt-4o"  # another deployment, not the same model
    assert model_identity("gpt-old", MAP) == model_identity("openai/gpt-old", MAP)  # litellm does not know it: the map does
    assert model_identity("local/smollm2-135m") == "local/smollm2-135m"
    assert model_identity("made-up-model-9") == "made-up-model-9"


@pytest.mark.parametrize(
    ("incumbent", "deprecated"),
    [("openai/gpt-4o", "gpt-4o"), ("gpt-4o", "openai/gpt-4o"), ("openai/gpt-4o", "openai/gpt-4o")],
)
def test_migrate_deprecated_matches_the_incumbent_through_the_provider_prefix(home, tmp_path, incumbent, deprecated):
    from offramp.flows.migrate_feature import preflight, study_inputs
    from tests.helpers import make_space

    folder = make_feature(tmp_path / "f", incumbent=incumbent)
    space = make_space(tmp_path / "space.yaml", ["fake/good"])
    price = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    (tmp_path / "prices.yaml").write_text(yaml.safe_dump({incumbent: price}))
    params = MigrateParams(feature_dir=str(folder), deprecated_model=deprecated, space=str(space),
                           prices_file=str(tmp_path / "prices.yaml"))
    assert preflight(study_inputs(params)).feature.spec.incumbent.model == incumbent


@pytest.mark.parametrize("deprecated", ["gpt-4o-mini", "azure/gpt-4o", "anthropic/gpt-4o"])
def test_migrate_deprecated_that_is_another_model_is_still_refused(home, tmp_path, deprecated):
    from offramp.flows.migrate_feature import preflight, study_inputs
    from tests.helpers import make_space

    folder = make_feature(tmp_path / "f", incumbent="openai/gpt-4o")
    space = make_space(tmp_path / "space.yaml", ["fake/good"])
    params = MigrateParams(feature_dir=str(folder), deprecated_model=deprecated, space=str(space))
    with pytest.raises(UserError, match=r"field `incumbent.model` is 'openai/gpt-4o'.*this feature does not use it"):
        preflight(study_inputs(params))


def test_watch_matches_a_user_notice_through_the_prefix_when_the_map_does_not_list_the_model():
    notices = [Notice("gpt-4o-mini", dt.date(2027, 1, 1), "notice"), Notice("openai/gpt-4.1", dt.date(2027, 1, 2), "notice")]
    features = [feature("a", "openai/gpt-4o-mini"), feature("b", "gpt-4.1"), feature("c", "azure/gpt-4o-mini")]
    got = {x.feature: x for x in assess(features, notices, MAP, today=TODAY)}
    assert got["a"].retires_on == dt.date(2027, 1, 1) and got["b"].retires_on == dt.date(2027, 1, 2)
    assert got["c"].status == "unknown"  # another provider's deployment is not matched
