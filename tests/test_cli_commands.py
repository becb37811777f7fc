"""The `offramp` commands as a user runs them, end to end: the console script in subprocesses,
one state dir, a tiny feature on the fake provider (registered in each process through
OFFRAMP_PLUGINS). One study is migrated once for the module; report, promote, releases and
rollback then work on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import make_feature, make_space

OFFRAMP = Path(sys.executable).with_name("offramp")  # the console script
FEATURE = "tiny-routing"  # tests.helpers.make_feature's name


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "OFFRAMP_PLUGINS": "tests.fake_plugin:install_ordered", "PYTHONPATH": str(ROOT)}
    for name in ("PREFECT_API_URL", "OFFRAMP_WAREHOUSE", "OFFRAMP_RELEASES"):
        env.pop(name, None)  # an ephemeral Prefect server; everything under OFFRAMP_HOME
    return env


def run(home: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(OFFRAMP), *args], cwd=cwd, env=_env(home), capture_output=True, text=True, timeout=timeout)


def flat(text: str) -> str:
    """Output as printed before rich wrapped it (at 160 columns off a terminal; the space stays before the break)."""
    return text.replace("\n", "")


def sql(home: Path, query: str, cwd: Path) -> list[dict]:
    result = run(home, "sql", query, "--format", "json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Study:
    def __init__(self, root: Path, home: Path, result: subprocess.CompletedProcess, study_id: str) -> None:
        self.root, self.home, self.result, self.id = root, home, result, study_id

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return run(self.home, *args, cwd=self.root)

    def sql(self, query: str) -> list[dict]:
        return sql(self.home, query, self.root)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    root = tmp_path_factory.mktemp("cli")
    home = root / "home"
    feature = make_feature(root / "feature")
    space = make_space(root / "space.yaml", ["fake/good", "fake/cheap"], strategies={"incumbent": {}, "zero_shot": {}},
                       output_mode=["text"])
    result = run(home, "migrate", str(feature), "--space", str(space), "--deprecated", "fake/old", "--max-trials", "3",
                 "--no-racing", "--concurrency", "2", cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = re.search(r"\(terminal: offramp report (\S+)\)", result.stdout)
    assert found, result.stdout[-3000:]
    return Study(root, home, result, found.group(1))


def test_migrate_prints_the_report_and_the_study_id(study):
    out = study.result.stdout
    [row] = study.sql("select id, feature, status, incumbent_model, selected_trial_id from studies")
    assert row["id"] == study.id and row["feature"] == FEATURE and row["status"] == "completed"
    assert row["incumbent_model"] == "fake/old" and row["selected_trial_id"] is not None
    assert f"Study {study.id}: feature {FEATURE}, moving off fake/old (status completed)" in out
    dev = study.sql(f"select trial_id, role, model, status from trials where study_id = '{study.id}' and split = 'dev' order by trial_id")
    assert [r["role"] for r in dev] == ["incumbent", "naive_swap", "naive_swap", "candidate"]  # 3 search trials
    assert {r["model"] for r in dev[1:3]} == {"fake/good", "fake/cheap"} and {r["status"] for r in dev} == {"completed"}
    verdicts = re.findall(r"^- trial (\d+) \((SELECTED|accepted|REJECTED[^)]*)\): (.*)$", out, flags=re.M)
    front = study.sql(f"select trial_id from v_pareto_front where study_id = '{study.id}'")
    assert sorted(int(t) for t, _, _ in verdicts) == sorted(r["trial_id"] for r in front)
    assert [int(t) for t, _, why in verdicts if "selected" in why] == [row["selected_trial_id"]]
    report_path = study.home / "reports" / f"{study.id}.html"
    assert f"Report: {report_path}" in flat(out) and report_path.is_file()
    assert f"where study_id = '{study.id}'" in out  # the query to paste


def test_report_in_the_terminal_and_as_html(study, tmp_path):
    result = study.run("report", study.id)
    assert result.returncode == 0, result.stderr
    assert f"Study {study.id}: feature {FEATURE}, moving off fake/old (status completed)" in result.stdout
    [row] = study.sql(f"select selected_trial_id from studies where id = '{study.id}'")
    assert re.search(rf"^- trial {row['selected_trial_id']} \(SELECTED\): .*selected", result.stdout, flags=re.M)
    assert "Decision:" in result.stdout and "v_regressions" in result.stdout

    html = tmp_path / "out" / "report.html"
    result = study.run("report", study.id, "--html", str(html))
    assert result.returncode == 0, result.stderr
    assert f"HTML report: {html}" in flat(result.stdout)
    text = html.read_text()
    assert study.id in text and "<table" in text and FEATURE in text

    missing = study.run("report", "no-such-study")
    assert missing.returncode == 2 and "no-such-study" in missing.stderr and "Traceback" not in missing.stderr


def test_promote_releases_rollback(study, tmp_path):
    releases = tmp_path / "releases"
    path = releases / f"{FEATURE}.json"
    [row] = study.sql(f"select selected_trial_id from studies where id = '{study.id}'")
    selected = row["selected_trial_id"]
    off_front = study.sql(f"select trial_id, model from v_leaderboard where study_id = '{study.id}' and role <> 'incumbent' "
                          "and not on_front order by trial_id")
    assert off_front and "fake/cheap" in {r["model"] for r in off_front}  # dominated on every objective
    dominated = off_front[0]["trial_id"]

    # 1. the study's selection
    result = study.run("promote", study.id, "--releases-dir", str(releases))
    assert result.returncode == 0, result.stderr
    assert f"{FEATURE}: release v1 = trial {selected} of {study.id} (fake/good, incumbent) written to {path}" in flat(result.stdout)
    data = json.loads(path.read_text())
    assert data["current"] == 1 and [(r["version"], r["trial_id"], r["action"]) for r in data["releases"]] == [(1, selected, "promote")]
    # the printed way to load it works, in an application's process
    load = flat(result.stdout).split("Load it: ", 1)[1]  # the last line printed
    loaded = subprocess.run([sys.executable, "-c", f"{load}\nprint(program.entry['version'], program.config.model)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["1", "fake/good"]

    # 2. a dominated trial: refused, then forced (and flagged)
    refused = study.run("promote", study.id, "--trial", str(dominated), "--releases-dir", str(releases))
    assert refused.returncode == 2 and f"trial {dominated} is not on the front of {study.id}" in flat(refused.stderr)
    assert "--force" in refused.stderr and json.loads(path.read_text())["current"] == 1
    forced = study.run("promote", study.id, "--trial", str(dominated), "--force", "--releases-dir", str(releases))
    assert forced.returncode == 0, forced.stderr
    assert f"trial {dominated} is not on the front (forced)" in flat(forced.stderr)
    assert f"release v2 = trial {dominated} of {study.id}" in flat(forced.stdout)
    data = json.loads(path.read_text())
    assert data["current"] == 2 and data["releases"][1]["forced"] is True and data["releases"][1]["trial_id"] == dominated

    # 3. the list, * on the current version
    listed = study.run("releases", FEATURE, "--releases-dir", str(releases))
    assert listed.returncode == 0, listed.stderr
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\W*(\d+)( \*)?\s*\W\s*(promote|rollback)", listed.stdout, flags=re.M)}
    assert rows == {"1": None, "2": " *"}
    assert study.id in listed.stdout and "fake/cheap" in listed.stdout and "fake/good" in listed.stdout

    # 4. rollback re-pins v1 as v3
    back = study.run("rollback", FEATURE, "--releases-dir", str(releases))
    assert back.returncode == 0, back.stderr
    assert f"{FEATURE}: v3 re-pins v1 (trial {selected} of {study.id}, fake/good) in {path}" in flat(back.stdout)
    data = json.loads(path.read_text())
    assert data["current"] == 3 and data["releases"][2]["action"] == "rollback" and data["releases"][2]["rolled_back_to"] == 1
    listed = study.run("releases", FEATURE, "--releases-dir", str(releases))
    assert re.search(r"^\W*3 \*\s*\W\s*rollback", listed.stdout, flags=re.M), listed.stdout
    actions = study.sql(f"select version, action, trial_id from v_releases where path = '{path}' order by version")
    assert [(r["version"], r["action"], r["trial_id"]) for r in actions] == [
        (1, "promote", selected), (2, "promote", dominated), (3, "rollback", selected)]


def test_models_status_lists_the_zoo_and_nothing_running(tmp_path):
    result = run(tmp_path / "home", "models", "status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {m.group(1): m.group(2, 3) for m in re.finditer(r"(local/[\w.-]+)\s*\W\s*(\w+)\s*\W\s*(\w+)", result.stdout)}
    assert rows == {"local/qwen2.5-0.5b": ("False", "False"), "local/smollm2-135m": ("False", "False"),
                    "local/gemma3-270m": ("False", "False")}


def test_migrate_off_a_terminal_prints_a_line_per_trial_before_the_report(study):
    """stdout is a pipe here: no progress bars (they would print nothing until the end), one line
    per trial as it finishes, every one before the report."""
    out = study.result.stdout
    trials = study.sql(f"select trial_id, role, split from trials where study_id = '{study.id}' order by trial_id")
    report_at = out.index(f"Study {study.id}:")
    assert out.startswith(f"study {study.id}: up to 3 search trials")
    for t in trials:
        found = re.search(rf"^\[ *\d+ s\] trial {t['trial_id']} {t['role']} {t['split']} .*: completed, quality [0-9.]+ ", out, flags=re.M)
        assert found and found.start() < report_at, (t, out[:report_at])
    assert len(re.findall(r"search trial \d of at most 3, search ETA \d+ s; spent \$[0-9.]+$", out[:report_at], flags=re.M)) == 3



def test_the_libraries_logs_go_to_a_file_not_over_the_output(tmp_path):
    """DSPy logs every answer it cannot parse while it compiles (pages of them on a model that
    answers plainly): they belong in the state dir's log, not in the user's output."""
    home = tmp_path / "home"
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/plain"], strategies={"few_shot": {"k": [2]}}, output_mode=["text"])
    env = {**_env(home), "OFFRAMP_PLUGINS": "tests.fake_plugin:install_plain"}
    result = subprocess.run([str(OFFRAMP), "migrate", str(feature), "--space", str(space), "--max-trials", "2", "--no-racing"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (home / "logs" / "libraries.log").read_text()
    assert "dspy.teleprompt.bootstrap" in log and "Failed to run or to evaluate example" in log
    assert "Bootstrapped 0 full traces" in log  # DSPy's own print, once per compile
    for stream in (result.stdout, result.stderr):
        assert "Failed to run or to evaluate example" not in stream and "Adapter ChatAdapter failed" not in stream
        assert "Bootstrapped" not in stream


def test_the_report_says_when_a_strategy_gets_answers_it_cannot_parse(tmp_path):
    """A model that answers plainly scores 0 under a strategy that asks for DSPy's field markers:
    the report names the trial, the share of unparsed answers, shows one answer and says what to try."""
    home = tmp_path / "home"
    feature = make_feature(tmp_path / "feature")
    space = make_space(tmp_path / "space.yaml", ["fake/plain"], strategies={"incumbent": {}, "zero_shot": {}}, output_mode=["text"])
    env = {**_env(home), "OFFRAMP_PLUGINS": "tests.fake_plugin:install_plain"}
    result = subprocess.run([str(OFFRAMP), "migrate", str(feature), "--space", str(space), "--max-trials", "2", "--no-racing"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [row] = sql(home, "select trial_id, parse_failure_rate from trials where strategy = 'zero_shot' and split = 'dev'", tmp_path)
    assert row["parse_failure_rate"] == 1.0
    found = re.search(rf"- trial {row['trial_id']} \(fake/plain, zero_shot, dev\): 100% of its answers could not "
                      r"be parsed, e\.g\. '(alpha|beta|gamma)'; it was read with the chat adapter: try `settings: adapter: "
                      r"\[plain\]` in the search space", flat(result.stdout))
    assert found, result.stdout[-3000:]
