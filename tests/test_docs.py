"""The docs agree with the code: every CLI command (found by walking the typer app) has help and
is in the README; the README's "Layout" section lists every module of the package and nothing
that does not exist."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer.main

from offramp.flows.cli import app
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
OFFRAMP = Path(sys.executable).with_name("offramp")  # the console script, as a user runs it


# ------------------------------------------------------------------------------------------ commands
def _commands(group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(path, command) of every command under `group`, nested groups included. typer ships its own
    copy of click, so groups are recognised by what they do (list_commands), not by class."""
    found = []
    ctx = group.context_class(group, info_name="offramp")
    for name in group.list_commands(ctx):  # a nested typer lists its commands only when asked
        command = group.get_command(ctx, name)
        assert command is not None, f"`offramp {' '.join((*path, name))}` is listed but cannot be loaded"
        found.append(((*path, name), command))
        if hasattr(command, "list_commands"):  # a nested typer (`offramp models ...`)
            found.extend(_commands(command, (*path, name)))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _summary(command) -> str:
    """The first sentence of the command's docstring (a typer group's: its help)."""
    doc = inspect.getdoc(command.callback) if command.callback is not None else None
    text = " ".join((doc or command.help or "").split())
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]


def _plain(text: str) -> str:
    """Help output without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def test_the_walk_finds_nested_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"migrate", "models", "models up", "models down", "models status"} <= names
    assert len(names) >= 14


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_help_prints_its_docstring(path, command, tmp_path):
    summary = _summary(command)
    assert summary, f"`offramp {' '.join(path)}` has no docstring"
    env = {**os.environ, "OFFRAMP_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    result = subprocess.run([str(OFFRAMP), *path, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = _plain(result.stdout)
    assert f"Usage: offramp {' '.join(path)} " in out
    assert summary in out


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_is_in_the_readme(path):
    assert re.search(rf"\bofframp {re.escape(' '.join(path))}(?![\w-])", README), f"README.md never shows `offramp {' '.join(path)}`"


NOT_OFFRAMP_OPTIONS = {"--no-deps", "--json"}  # pip's and a bench script's, named in the README too


def test_every_option_the_readme_names_exists():
    """An option in a README code span (`--max-error-rate`) or on an `offramp ...` command line is
    an option of some offramp command (the root's included)."""
    root = typer.main.get_command(app)
    options = {o for p in root.params for o in (*p.opts, *p.secondary_opts)}
    options |= {o for _, command in COMMANDS for p in command.params for o in (*p.opts, *p.secondary_opts)}
    spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", README)
    lines = re.findall(r"^offramp (?:[^\n]*\\\n)*[^\n]*", README, flags=re.MULTILINE)
    named = {o for text in (*spans, *lines) for o in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)}
    assert not named - options - NOT_OFFRAMP_OPTIONS, "the README names options no command has"


def test_the_readme_usage_of_migrate_lists_its_limits():
    usage = re.search(r"^offramp migrate (?:[^\n]*\\\n)*[^\n]*", README, flags=re.MULTILINE).group(0)
    assert "--max-error-rate" in usage and "--timeout" in usage


# ------------------------------------------------------------------------------------------ layout
def _layout_section() -> str:
    section = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def _layout_entries() -> dict[str, str]:
    """folder -> its description, from lines `folder/   description` (continuations indented)."""
    entries: dict[str, str] = {}
    folder = None
    for line in _layout_section().splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            folder, _, rest = line.partition(" ")
            assert folder.endswith("/"), f"Layout line does not start with a folder: {line!r}"
            entries[folder] = rest
        else:
            assert folder is not None, f"Layout continuation line without a folder: {line!r}"
            entries[folder] += " " + line.strip()
    return entries


def _outside_parentheses(text: str) -> str:
    """The names listed; what is in parentheses describes them."""
    while True:
        stripped = re.sub(r"\([^()]*\)", " ", text)
        if stripped == text:
            return text
        text = stripped


LAYOUT = _layout_entries()
LISTED = sorted(
    {folder + name for folder, text in LAYOUT.items() for name in re.findall(r"[\w.-]+\.(?:py|yaml)\b|[\w.-]+/", _outside_parentheses(text))}
)


def _package_folders() -> list[str]:
    """The folders the package `offramp` installs from (pyproject.toml's package-dir)."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return sorted({folder for name, folder in package_dir.items() if name.count(".") <= 1})


def _module_files() -> list[str]:
    files = set()
    for folder in _package_folders():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".yaml") and path.name != "__init__.py" and "__pycache__" not in path.parts:
                files.add(path.relative_to(ROOT).as_posix())
    return sorted(files)


MODULE_FILES = _module_files()


def test_the_layout_parses():
    assert {"offramp/", "flows/", "tasks/gateway/", "search_spaces/", "warehouse/"} <= set(LAYOUT)
    assert len(LISTED) > 30 and len(MODULE_FILES) > 30
    assert "tasks/evidence/compare.py" in MODULE_FILES and "tasks/gateway/local_models.yaml" in MODULE_FILES


@pytest.mark.parametrize("path", MODULE_FILES)
def test_every_module_is_in_the_layout(path):
    assert path in LISTED, f"README.md's Layout section does not list {path}"


@pytest.mark.parametrize("path", LISTED)
def test_every_listed_file_exists(path):
    target = ROOT / path
    assert target.is_dir() if path.endswith("/") else target.is_file(), f"README.md's Layout lists {path}, which does not exist"


# ------------------------------------------------------------------------------------------ references
_PACKAGE_PATH = re.compile(r"`((?:offramp|flows|tasks|search_spaces|warehouse|features|bench|tests)/[\w./-]*\.(?:py|yaml|sql|json|md))`")
PATHS = sorted(set(_PACKAGE_PATH.findall(README)))
# `offramp.<sub>...` where <sub> is a module of the package (event names such as `offramp.model.deprecation` are not)
_SUBMODULES = {p.stem for p in (ROOT / "offramp").glob("*.py")} | {Path(f).name for f in _package_folders()}
MODULES = sorted({m for m in re.findall(r"\b(offramp(?:\.\w+)+)", README) if m.split(".")[1] in _SUBMODULES})


def test_the_references_are_found():
    assert "tasks/evidence/compare.py" in PATHS and "offramp.flows.migrate_feature.migrate_feature" in MODULES


@pytest.mark.parametrize("path", PATHS)
def test_every_path_the_readme_names_exists(path):
    assert (ROOT / path).is_file()


@pytest.mark.parametrize("dotted", MODULES)
def test_every_offramp_name_the_readme_names_resolves(dotted):
    """`offramp.flows.migrate_feature.migrate_feature`: a module, then attributes."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return
    pytest.fail(f"{dotted} is not importable")


def test_the_readme_python_snippets_import(tmp_path):
    """The import lines of every ```python block run in a fresh process, from an unrelated folder."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    imports = [line for block in blocks for line in block.splitlines() if re.match(r"(from \S+ )?import ", line)]
    assert "from offramp import load_release" in imports
    result = subprocess.run([sys.executable, "-c", "\n".join(imports)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


PACKAGES = ["offramp", "offramp.tasks.gateway", "offramp.tasks.feature", "offramp.tasks.search", "offramp.tasks.study",
            "offramp.tasks.evidence", "offramp.tasks.watch"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package):
    """Each subpackage's `__all__` is its public API (resolved lazily): every name must exist."""
    import importlib

    module = importlib.import_module(package)
    assert module.__all__
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []

