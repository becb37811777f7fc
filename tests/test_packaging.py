"""offramp installed as a wheel, used from an application's folder that has its own `tasks.py`
and `flows.py`: nothing of the checkout is visible, only the wheel and offramp's dependencies.

The venv: `python -m venv --without-pip`, plus a .pth file naming this environment's
site-packages, so the dependencies installed there are importable. A directory added by a .pth
line does not get its own .pth files processed, so this environment's editable install of
offramp (a .pth file and its finder) stays out: the test checks that `import offramp` fails
before the wheel is installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT


@dataclass
class Install:
    wheel: Path
    venv: Path
    site: Path  # the new venv's site-packages
    app: Path  # the application's folder (its own tasks.py and flows.py)
    home: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def offramp(self) -> Path:
        return self.venv / "bin" / "offramp"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "OFFRAMP_HOME": str(self.home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PREFECT_API_URL", "OFFRAMP_WAREHOUSE", "OFFRAMP_PLUGINS", "OFFRAMP_RELEASES"):
            env.pop(name, None)
        return env

    def run(self, *command: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(c) for c in command], cwd=self.app, env=self.env(), capture_output=True, text=True, timeout=timeout)


def _copy_of_the_source(target: Path) -> Path:
    """The working tree without build leftovers (a stale build/ would leak old files into the wheel)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".offramp", ".pytest_cache",
                                    ".import_linter_cache", "releases")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Install:
    root = tmp_path_factory.mktemp("wheel")
    src = _copy_of_the_source(root / "src")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (root / "dist").glob("offramp-*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    app = root / "app"
    app.mkdir()
    (app / "tasks.py").write_text("def add(a, b):\n    return a + b\n")
    (app / "flows.py").write_text("WHO = 'the application'\n")
    setup = Install(wheel, venv, Path(), app, root / "home")
    site = Path(setup.run(setup.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    assert site.is_dir() and site.is_relative_to(venv)
    setup.site = site
    (site / "offramp-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    before = setup.run(setup.python, "-c", "import offramp")
    assert before.returncode == 1 and "No module named 'offramp'" in before.stderr, "the checkout's offramp is visible"
    deps = setup.run(setup.python, "-c", "import duckdb, optuna, prefect, typer, yaml")
    assert deps.returncode == 0, deps.stderr

    # pip of this environment, run by the new interpreter: it installs into the new venv (scripts included)
    installed = setup.run(setup.python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert setup.offramp.is_file() and setup.offramp.read_text().startswith(f"#!{setup.python}")
    return setup


def test_the_wheel_holds_every_file_of_the_package(install):
    """Every module and data file of the package folders ships (pyproject's package-dir and package-data)."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    expected = set()
    for name, folder in package_dir.items():
        if name.count(".") > 1:
            continue
        prefix = name.replace(".", "/")
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".yaml", ".sql", ".csv", ".json", ".md", ".txt"):
                expected.add(f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}")
    shipped = set(zipfile.ZipFile(install.wheel).namelist())
    assert "offramp/warehouse/migrations/0001_init.sql" in expected and "offramp/tasks/gateway/local_models.yaml" in expected
    assert sorted(expected - shipped) == []
    assert not [n for n in shipped if n.startswith(("tests/", "bench/", "tasks/", "flows/"))]  # only offramp/ at the top


def test_offramp_imports_next_to_an_applications_tasks_and_flows(install):
    script = "\n".join([
        "import tasks, flows",
        "from offramp import load_release",
        "from offramp.tasks.watch.releases import load_release as direct",
        "import offramp, offramp.tasks, offramp.flows.cli",
        "assert load_release is direct and tasks.add(2, 3) == 5 and flows.WHO == 'the application'",
        "import json; print(json.dumps({m.__name__: m.__file__ for m in (tasks, flows, offramp, offramp.tasks, offramp.flows.cli)}))",
    ])
    result = install.run(install.python, "-c", script)
    assert result.returncode == 0, result.stderr
    files = {name: Path(path) for name, path in json.loads(result.stdout).items()}
    assert files["tasks"] == install.app / "tasks.py" and files["flows"] == install.app / "flows.py"
    assert files["offramp"] == install.site / "offramp" / "__init__.py"
    assert files["offramp.tasks"] == install.site / "offramp" / "tasks" / "__init__.py"
    assert files["offramp.flows.cli"] == install.site / "offramp" / "flows" / "cli.py"


def test_the_cli_runs_from_the_wheel(install):
    result = install.run(install.offramp, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: offramp" in result.stdout and "migrate" in result.stdout and "models" in result.stdout
    status = install.run(install.offramp, "models", "status")  # reads tasks/gateway/local_models.yaml from the wheel
    assert status.returncode == 0, status.stderr
    assert all(f"local/{alias}" in status.stdout for alias in ("qwen2.5-0.5b", "smollm2-135m", "gemma3-270m"))


def test_the_bundled_feature_is_package_data(install):
    script = "\n".join([
        "import importlib.resources",
        "from offramp.tasks.feature.spec import load_feature",
        "spec = importlib.resources.files('offramp.features') / 'bank-support-routing' / 'feature.yaml'",
        "feature = load_feature(str(spec))",
        "print(spec); print(feature.spec.name, len(feature.examples))",
    ])
    result = install.run(install.python, "-c", script)
    assert result.returncode == 0, result.stderr
    path, summary = result.stdout.splitlines()
    assert Path(path) == install.site / "offramp" / "features" / "bank-support-routing" / "feature.yaml"
    name, n = summary.split()
    assert name == "bank-support-routing" and int(n) > 100


def _servers(home: Path) -> dict[str, int]:
    """alias -> pid of the model servers recorded under `home` (models/run/<alias>.json)."""
    pids = {}
    for state in (home / "models" / "run").glob("*.json"):
        pid = json.loads(state.read_text()).get("pid")
        if pid:
            pids[state.stem] = pid
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.integration
def test_the_demo_runs_end_to_end_from_the_wheel(install):
    """`offramp demo` from the installed wheel, on the real local models: it starts the llama.cpp
    servers itself, migrates the bundled feature and stops what it started."""
    try:
        result = install.run(install.offramp, "demo", "--max-examples", "6", "--max-trials", "3", timeout=1800)
    finally:
        left = {alias: pid for alias, pid in _servers(install.home).items() if _alive(pid)}
        for pid in left.values():  # this test's own servers, stopped by PID
            os.kill(pid, signal.SIGKILL)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert not left, f"the demo left model servers running: {left}"
    out = result.stdout.replace("\n", "")
    assert f"offramp demo: state in {install.home}" in out
    assert "models up: " in out and "stopped the model servers this demo started" in out
    studies = install.run(install.offramp, "sql", "select id, feature, status, incumbent_model from studies", "--format", "json")
    assert studies.returncode == 0, studies.stderr
    [study] = json.loads(studies.stdout)
    assert study["feature"] == "bank-support-routing" and study["incumbent_model"] == "local/smollm2-135m"
    assert study["status"] == "completed"
    assert f"Study {study['id']}: feature bank-support-routing" in out and "Decision:" in out
    assert (install.home / "reports" / f"{study['id']}.html").is_file()
    counts = json.loads(install.run(install.offramp, "sql", "select count(*) as n, count(distinct model) as models from calls "
                                    "where error is null", "--format", "json").stdout)[0]
    assert counts["n"] > 0 and counts["models"] >= 2  # real answers from the incumbent and at least one candidate
