"""The `offramp` command as a user runs it: separate processes, exit codes, formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import make_feature

OFFRAMP = [sys.executable, "-m", "offramp.flows.cli"]


def offramp(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([*OFFRAMP, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


WRITER = textwrap.dedent(
    """
    import datetime as dt, pathlib, sys, time
    from offramp.warehouse import Warehouse, records
    wh = Warehouse(sys.argv[1])
    records.start_study(wh, study_id="s", feature="f", deprecated_model=None, incumbent_model="m", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    print("ready", flush=True)
    stop, deadline = pathlib.Path(sys.argv[2]), time.monotonic() + 180
    trial = 0
    while not stop.exists() and time.monotonic() < deadline:  # until the reader has seen enough
        records.start_trial(wh, study_id="s", trial_id=trial, role="candidate", split="dev", source_trial_id=None,
                            config_hash="h", model="m", settings={})
        now = dt.datetime.now()
        calls = [records.CallRecord("s", trial, f"e{i}", "m", "{}", "p", "k", "o", None, 1.0, 10, 2, 0.1, 0.1, 0.1,
                                    0.1, None, False, 1, "eval", now) for i in range(200)]
        agg = records.TrialMeasurement("completed", 200, 1.0, 1.0, 1.0, 100.0, 0.1, 0.1, 0.0, 0.0, 2000, 400, 20.0)
        records.finish_trial(wh, study_id="s", trial_id=trial, measurement=agg, calls=calls)
        trial += 1
    print("trials", trial, flush=True)
    """
)


def test_sql_reads_while_a_study_writes(home):
    home.mkdir(parents=True)
    db = home / "warehouse.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stop = home / "stop-writing"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        counts = []
        # reads until it has seen the study grow (no time limit per read: on a loaded machine one
        # `offramp sql` takes seconds), the writer writing all along
        while len(counts) < 3 or counts[-1] == counts[0]:
            result = offramp("sql", "select count(*) as n from calls", "--format", "json", home=home)
            assert result.returncode == 0, result.stderr
            counts.append(json.loads(result.stdout)[0]["n"])
            assert writer.poll() is None, "the writer must still be running while we read"
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    written_trials = int(out.split()[-1])
    assert len(counts) >= 3
    assert counts == sorted(counts) and counts[-1] > counts[0]  # we saw the study grow
    assert written_trials * 200 >= counts[-1]
    final = offramp("sql", "select count(*) from calls", "--format", "csv", home=home)
    assert final.stdout.splitlines()[1] == str(written_trials * 200)


def test_sql_formats_and_read_only(home):
    home.mkdir(parents=True)
    from offramp.warehouse import Warehouse, records

    wh = Warehouse(home / "warehouse.duckdb")
    records.start_study(wh, study_id="s1", feature="f", deprecated_model=None, incumbent_model="m", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    result = offramp("sql", "select id, feature, status from studies", "--format", "csv", home=home)
    assert result.returncode == 0
    assert list(csv.reader(io.StringIO(result.stdout))) == [["id", "feature", "status"], ["s1", "f", "running"]]
    result = offramp("sql", "select id, status from studies", "--format", "json", home=home)
    assert json.loads(result.stdout) == [{"id": "s1", "status": "running"}]
    result = offramp("sql", "select id from studies", home=home)
    assert result.returncode == 0 and "s1" in result.stdout
    result = offramp("sql", "delete from studies", home=home)
    assert result.returncode == 2 and "read-only" in result.stderr.lower()
    _, [(n,)] = wh.fetch("select count(*) from studies")
    assert n == 1


def test_sql_json_keeps_json_columns_json_and_lines_prints_one_field_per_line(home):
    """Issue 13: `--format json` must not double-encode a JSON column (`space`, `params`, `selection`);
    `--format lines` / `--vertical` prints each field of a wide row on its own line, whole."""
    home.mkdir(parents=True)
    from offramp.warehouse import Warehouse, records

    wh = Warehouse(home / "warehouse.duckdb")
    long_text = "a model id that is long " * 8
    records.start_study(wh, study_id="s1", feature="f", deprecated_model=long_text, incumbent_model="m", trigger="cli",
                        space_name="x", space={"models": ["a", "b"], "n": 2}, params={"max_trials": 16}, seed=0)
    result = offramp("sql", "select id, space, params, deprecated_model, space->'n' as n from studies", "--format", "json", home=home)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["space"] == {"models": ["a", "b"], "n": 2} and row["params"] == {"max_trials": 16} and row["n"] == 2
    assert row["deprecated_model"] == long_text  # text stays text
    for option in (["--format", "lines"], ["--vertical"]):
        result = offramp("sql", "select id, feature, deprecated_model, space from studies", *option, home=home)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "-- row 1 --"
        assert lines[1:] == ["              id = s1", "         feature = f", f"deprecated_model = {long_text}",
                             '           space = {"models": ["a", "b"], "n": 2}']
    result = offramp("sql", "select 1 as x", "--format", "wide", home=home)
    assert result.returncode == 2 and "table, csv, json or lines" in result.stderr


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("COPY (select * from studies) TO '{out}/studies.csv'", "file system operations are disabled"),
        ("EXPORT DATABASE '{out}/dump'", "file system operations are disabled"),
        ("SET enable_external_access = true", "configuration has been locked"),
        ("ATTACH '{out}/other.duckdb' AS other", "disabled"),
        ("INSTALL httpfs", "disabled"),
        ("LOAD httpfs", "disabled"),
        ("LOAD '{out}/evil.duckdb_extension'", "disabled"),
        ("select * from read_csv('{out}/secret.csv')", "file system operations are disabled"),
    ],
)
def test_sql_can_neither_write_nor_read_other_files(tmp_path, monkeypatch, statement, expected):
    """`offramp sql` reads the warehouse and nothing else: a query that would write a file (every
    prompt and answer in it), attach a database, install an extension or read another file fails
    with exit 2 and leaves every file as it was; a view still answers."""
    # no reader snapshot: this process's writes below would refresh it a few seconds later, on a
    # timer, while the files are compared (that is this process writing, not `offramp sql`)
    monkeypatch.setenv("OFFRAMP_WAREHOUSE_SNAPSHOT", "false")
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    out.mkdir()
    (out / "secret.csv").write_text("a,b\n1,2\n")
    (out / "evil.duckdb_extension").write_bytes(b"not an extension")
    from offramp.warehouse import Warehouse, records

    wh = Warehouse(home / "warehouse.duckdb")
    records.start_study(wh, study_id="s1", feature="f", deprecated_model=None, incumbent_model="m", trigger="cli",
                        space_name="x", space={}, params={}, seed=0)
    records.start_trial(wh, study_id="s1", trial_id=0, role="candidate", split="dev", source_trial_id=None,
                        config_hash="h", model="m", settings={})
    call = records.CallRecord("s1", 0, "e0", "m", "{}", "p", "k", "a secret answer", None, 1.0, 10, 2, 0.1, 0.1, 0.1,
                              0.1, None, False, 1, "eval", dt.datetime.now())
    records.finish_trial(wh, study_id="s1", trial_id=0, calls=[call],
                         measurement=records.TrialMeasurement("completed", 1, 1.0, 1.0, 1.0, 100.0, 0.1, 0.1, 0.0, 0.0, 10, 2, 0.1))
    # HOME too: DuckDB installs extensions under ~/.duckdb, which must stay untouched (absent)
    env = {**os.environ, "OFFRAMP_HOME": str(home), "HOME": str(tmp_path / "user"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    before = _files(tmp_path)

    def sql(query: str) -> subprocess.CompletedProcess:
        return subprocess.run([*OFFRAMP, "sql", query, "--format", "csv"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    result = sql(statement.format(out=out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "query failed" in result.stderr and expected in result.stderr
    after = _files(tmp_path)
    assert after.keys() - before.keys() == set(), "the query wrote a file"
    assert after == before
    result = sql("select feature, study_id, n_calls from v_study_spend")  # a view still works, from the locked connection
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["feature,study_id,n_calls", "f,s1,1"]


def test_sql_without_a_warehouse_says_so(home):
    result = offramp("sql", "select 1", home=home)
    assert result.returncode == 2 and "no warehouse yet" in result.stderr


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda root: (root / "feature.yaml").write_text("name: [oops\n"), "not valid YAML"),
        (lambda root: (root / "data.csv").unlink(), "does not exist"),
        (lambda root: (root / "data.csv").write_text("id,text,label,group\n"), "hold no examples"),
    ],
)
def test_migrate_bad_input_exits_2_and_writes_nothing(home, tmp_path, setup, expected):
    root = make_feature(tmp_path / "feature")
    setup(root)
    result = offramp("migrate", str(root), "--space", "local-zoo", home=home)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and str(root) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr
    assert not (home / "warehouse.duckdb").exists()


def test_migrate_unknown_space_and_unknown_model(home, tmp_path):
    root = make_feature(tmp_path / "feature")
    result = offramp("migrate", str(root), "--space", "no-such-space", home=home)
    assert result.returncode == 2 and "no such search space" in result.stderr
    space = tmp_path / "s.yaml"
    space.write_text("name: s\nmodels: [made-up/model-9]\n")
    result = offramp("migrate", str(root), "--space", str(space), home=home)
    assert result.returncode == 2 and "made-up/model-9" in result.stderr
    assert not (home / "warehouse.duckdb").exists()


@pytest.mark.parametrize(
    ("args", "space_text", "expected"),
    [
        (["--storage", "postgresql://nobody@127.0.0.1:1/nothing"], None, "cannot be opened"),
        (["--storage", "sqlite:////nonexistent-dir/x/optuna.db"], None, "cannot be opened"),
        (["--max-spend", "0"], None, "max_spend_usd"),
        (["--sampler", "grid"], None, "sampler"),
        ([], "name: s\nmodels: []\n", "field `models`"),
        ([], "name: s\nmodels: [fake/good]\nsettings: {temperature: []}\n", "field `settings.temperature`"),
    ],
)
def test_search_bad_input_is_refused_before_any_call(home, tmp_path, args, space_text, expected):
    from tests.helpers import make_space

    root = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/good"])
    if space_text is not None:
        space.write_text(space_text)
    result = offramp("migrate", str(root), "--space", str(space), *args, home=home)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr
    assert not (home / "warehouse.duckdb").exists()


def _children(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc)."""
    import os

    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_sigterm_stops_the_temporary_prefect_server(tmp_path):
    """A CLI stopped with SIGTERM (a CI timeout, `kill`) leaves no Prefect server behind."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "OFFRAMP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    cli = subprocess.Popen([sys.executable, "-m", "offramp.flows.cli", "watch", "--features", str(ROOT / "features")],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    server = set()
    while not server and time.monotonic() < deadline and cli.poll() is None:
        server = {p for p in _children(cli.pid) if b"uvicorn" in Path(f"/proc/{p}/cmdline").read_bytes()}
        time.sleep(0.2)
    assert server, "the temporary Prefect server never started"
    cli.send_signal(signal.SIGTERM)
    code = cli.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in server):
        time.sleep(0.2)
    left = [p for p in server if os.path.exists(f"/proc/{p}")]
    for p in left:  # this test's own leftovers, stopped by PID
        os.kill(p, signal.SIGKILL)
    assert code == 143 and not left


def test_notify_records_replaces_and_withdraws_a_notice(tmp_path):
    import datetime as dt
    import os
    import subprocess
    import sys

    from offramp.warehouse import Warehouse
    from tests.conftest import ROOT

    env = {**os.environ, "OFFRAMP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}

    def offramp(*args):
        return subprocess.run([sys.executable, "-m", "offramp.flows.cli", *args, "--features", str(ROOT / "features")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    first, later = (str(dt.date.today() + dt.timedelta(days=d)) for d in (40, 90))
    assert "(new)" in offramp("notify", "local/smollm2-135m", "--retires", first).stdout
    assert "(date changed)" in offramp("notify", "local/smollm2-135m", "--retires", later).stdout
    assert "withdrawn" in offramp("notify", "local/smollm2-135m", "--withdraw").stdout
    again = offramp("notify", "local/smollm2-135m", "--withdraw")
    assert again.returncode == 2 and "no notice of yours" in again.stderr
    missing = offramp("notify", "local/smollm2-135m")
    assert missing.returncode == 2 and "--retires YYYY-MM-DD is required" in missing.stderr
    wh = Warehouse(tmp_path / "home" / "warehouse.duckdb")
    assert wh.fetch("select count(*) from deprecations")[1] == [(0,)]
    history = wh.fetch("select change, cast(retires_on as text) from deprecation_history order by seen_at")[1]
    assert history == [("new", first), ("date_changed", later), ("withdrawn", later)]


def _fake_env() -> dict[str, str]:
    return {"OFFRAMP_PLUGINS": "tests.fake_plugin:install", "PYTHONPATH": str(ROOT)}


def offramp_fake(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`offramp` with the fake provider's models routed (as a user's plugin would)."""
    env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **_fake_env()}
    return subprocess.run([*OFFRAMP, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], r"field `splits`: train\+dev\+test = 1500 examples requested, but the data holds 60"),
        (["--max-examples", "10"], r"field `splits`: train\+dev\+test = 520 examples requested, but the data holds 60"),
    ],
)
def test_migrate_oversized_splits_fail_before_prefect_starts(home, tmp_path, args, expected):
    import re

    from tests.helpers import make_space

    root = make_feature(tmp_path / "feature", extra={"splits": {"seed": 3, "train": 500, "dev": 500, "test": 500}})
    space = make_space(tmp_path / "space.yaml", ["fake/good"])
    result = offramp_fake("migrate", str(root), "--space", str(space), *args, home=home)
    assert result.returncode == 2, result.stderr
    stderr = result.stderr.replace("\n", "")
    assert re.search(expected, stderr) and str(root / "feature.yaml") in stderr
    assert "Traceback" not in result.stderr
    assert not list((home / "prefect").glob("*.db")), "Prefect's ephemeral server was started"  # its database
    assert "flow run" not in result.stderr.lower()
    assert not (home / "warehouse.duckdb").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["migrate", "FEATURE", "--max-examples", "0"], "--max-examples"),
        (["migrate", "FEATURE", "--max-examples", "-3"], "--max-examples"),
        (["migrate", "FEATURE", "--max-trials", "0"], "--max-trials"),
        (["migrate", "FEATURE", "--parallel", "-1"], "--parallel"),
        (["migrate", "FEATURE", "--concurrency", "0"], "--concurrency"),
        (["migrate", "FEATURE", "--max-wall", "0"], "--max-wall"),
        (["migrate", "FEATURE", "--max-spend", "-1"], "--max-spend"),
        (["demo", "--max-examples", "0"], "--max-examples"),
        (["demo", "--max-trials", "-2"], "--max-trials"),
    ],
)
def test_count_options_below_one_exit_2_naming_the_option(home, tmp_path, args, option):
    root = make_feature(tmp_path / "feature")
    result = offramp(*[str(root) if a == "FEATURE" else a for a in args], home=home)
    assert result.returncode == 2, result.stderr
    assert option in result.stderr and "Traceback" not in result.stderr
    assert not (home / "warehouse.duckdb").exists()


def test_migrate_max_error_rate_and_timeout_reach_the_study(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from offramp.flows import cli

    seen = []
    monkeypatch.setattr(cli, "configure_environment", lambda: None)  # keep this process's environment
    monkeypatch.setattr(cli, "_run_migration", seen.append)
    monkeypatch.setattr(cli, "_print_study", lambda summary: None)
    result = CliRunner().invoke(cli.app, ["migrate", str(tmp_path), "--max-error-rate", "0.05", "--timeout", "7.5"])
    assert result.exit_code == 0, result.output
    [params] = seen
    assert params.max_error_rate == 0.05 and params.gateway.timeout_s == 7.5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-error-rate", "1.5"], "option --max-error-rate (field `max_error_rate`): Input should be less than or equal to 1"),
        (["--max-error-rate", "-0.1"], "option --max-error-rate (field `max_error_rate`): Input should be greater than or equal to 0"),
        (["--timeout", "0"], "option --timeout (field `timeout_s`): Input should be greater than 0"),
    ],
)
def test_migrate_limits_out_of_range_exit_2_naming_the_option(home, tmp_path, args, expected):
    root = make_feature(tmp_path / "feature")
    result = offramp("migrate", str(root), *args, home=home)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr.replace("\n", " ") and "Traceback" not in result.stderr
