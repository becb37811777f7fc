"""Who uses a local model server, so a study stops the servers it started and no other.

A study `hold`s each local model it needs before it starts or reuses the server (a lease file
`<home>/models/run/leases/<alias>/<holder>` holding its pid); a server the study had to start is
`mark_started` (its pid recorded as started by a study). When the study ends (success, failure,
cancellation) it `release`s its leases: a server a study started is stopped once no live lease on it
is left, so two studies that share a server do not stop it under each other, and a server the user
started (`offramp models up`, `offramp demo`) is never stopped by a study. A lease whose process is
gone (a killed study) does not count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from filelock import FileLock

from offramp.tasks.gateway import local_models


def _run(home: Path) -> Path:
    return Path(home) / "models" / "run"


def _leases(alias: str, home: Path) -> Path:
    return _run(home) / "leases" / alias


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def hold(aliases: list[str], home: Path, holder: str) -> None:
    """Record that `holder` (this process) uses the servers of `aliases` (before starting them)."""
    for alias in aliases:
        _run(home).mkdir(parents=True, exist_ok=True)
        with FileLock(_run(home) / f"{alias}.lock"):
            folder = _leases(alias, home)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / holder).write_text(json.dumps({"pid": os.getpid()}))


def mark_started(aliases: list[str], home: Path) -> None:
    """The servers of `aliases` were started by a study (not by the user): a study may stop them."""
    for alias in aliases:
        state = local_models._read_state(alias, home)
        if state:
            (_run(home) / f"{alias}.started-by-study").write_text(json.dumps({"pid": state["pid"]}))


def holders(alias: str, home: Path) -> list[str]:
    """The live leases on `alias`'s server."""
    live = []
    folder = _leases(alias, home)
    for lease in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            pid = json.loads(lease.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
        if _pid_alive(pid):
            live.append(lease.name)
    return live


def release(home: Path, holder: str) -> list[str]:
    """Drop `holder`'s leases; stop each server a study started that no live lease holds any
    more. Returns the aliases stopped."""
    stopped = []
    root = _run(home) / "leases"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        alias, lease = folder.name, folder / holder
        if not lease.exists():
            continue
        with FileLock(_run(home) / f"{alias}.lock"):
            lease.unlink(missing_ok=True)
            marker = _run(home) / f"{alias}.started-by-study"
            state = local_models._read_state(alias, home)
            try:
                started_pid = json.loads(marker.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                started_pid = None
            if state is None or started_pid != state["pid"] or holders(alias, home):
                continue  # the user's server, or another study still uses it
            stopped += local_models.down([alias], home)
            marker.unlink(missing_ok=True)
    return stopped
