"""The ledger matches the bill, through SIGKILLs at random moments.

A fake OpenAI-compatible server (tests/fake_openai.py, in a thread of this process) bills every
answer it writes whole. `offramp migrate` runs in a subprocess and is killed with SIGKILL (its
whole process group: the ephemeral Prefect server too) at a random moment after its first paid
call, again and again; each next run ingests the killed run's journals (so does this test, the
warehouse's only writer once the process is dead). After every kill, and after a final run to the
end:
- recorded >= billed: every answer the provider billed is in the ledger, as an answer (its real
  cost) or as an intent with no answer (its worst case);
- recorded - billed <= the worst case of the intents left unresolved: the only excess is what
  killed requests might have cost;
- answers journaled <= requests billed <= answers journaled + unresolved intents: an answer the
  process received is journaled (fsync'd before use), and a billed answer it never received is an
  unresolved intent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from offramp.tasks.gateway import journal
from offramp.warehouse import Warehouse
from tests.conftest import ROOT
from tests.fake_openai import Endpoint, FakeOpenAI, Model, labeller
from tests.helpers import LABELS, make_feature

KILLS = 10
PRICES = {"old": (2e-6, 4e-6), "good": (3e-6, 6e-6), "cheap": (1e-6, 1e-6)}
EPS = 1e-9


def gold(feature: Path) -> dict[str, str]:
    import csv

    with (feature / "data.csv").open() as handle:
        return {row["text"]: row["label"] for row in csv.DictReader(handle)}


def write_space(path: Path) -> Path:
    space = {
        "name": "kill-space", "models": ["openai/good", "openai/cheap"],
        "strategies": {"incumbent": {}}, "settings": {"max_tokens": [8, 16], "temperature": [0.0, 0.25, 0.5, 0.75, 1.0], "output_mode": ["text"]},
        "prices": {f"openai/{m}": {"input_cost_per_token": i, "output_cost_per_token": o} for m, (i, o) in PRICES.items()},
    }
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


@pytest.fixture()
def served(tmp_path):
    feature = make_feature(tmp_path / "feature", n=60, incumbent="openai/old",
                           extra={"splits": {"seed": 3, "train": 10, "dev": 30, "test": 20}})
    answers = gold(feature)
    models = {
        name: Model(name, labeller(answers, accuracy, LABELS, name), latency_s=0.03, input_usd_per_token=i, output_usd_per_token=o)
        for (name, (i, o)), accuracy in zip(PRICES.items(), (0.5, 0.9, 0.7))
    }
    with FakeOpenAI([Endpoint("main", models, api_key="sk-kill-test")]) as fake:
        yield fake, feature, write_space(tmp_path / "space.yaml")


@pytest.fixture()
def prefect_api(tmp_path):
    """One Prefect server for every run (an ephemeral one per run would take most of the test's
    time to start); stopped by its PID."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    try:
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def start(home: Path, feature: Path, space: Path, url: str, api: str) -> subprocess.Popen:
    env = {**os.environ, "OFFRAMP_HOME": str(home), "PYTHONPATH": str(ROOT), "OPENAI_API_BASE": url,
           "OPENAI_API_KEY": "sk-kill-test", "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_API_URL": api}
    env.pop("OFFRAMP_WAREHOUSE", None)
    command = [str(Path(sys.executable).parent / "offramp"), "migrate", str(feature), "--space", str(space), "--max-trials", "16",
               "--concurrency", "4", "--parallel", "2", "--no-racing"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def paying(fake: FakeOpenAI, process: subprocess.Popen, timeout_s: float = 120) -> bool:
    """Wait until the run has been billed for something (it is paying), or has ended."""
    before = fake.count("billed")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if fake.count("billed") > before:
            return True
        time.sleep(0.02)
    return False


def check(fake: FakeOpenAI, home: Path) -> dict:
    """Ingest what the dead process left and compare the ledger with the bill."""
    wh = Warehouse(home / "warehouse.duckdb")
    for folder in (home / journal.LEDGER_DIR).glob("*"):
        journal.ingest(wh, home, folder.name)
    _, rows = wh.fetch("select coalesce(sum(spend_usd), 0), coalesce(sum(unresolved_usd), 0), coalesce(sum(n_answers), 0), "
                       "coalesce(sum(n_unresolved), 0) from v_ledger_spend")
    recorded, unresolved, answers, open_intents = rows[0]
    billed = fake.ledger()
    billed_usd, billed_requests = sum(r["usd"] for r in billed.values()), sum(r["requests"] for r in billed.values())
    assert recorded >= billed_usd - EPS, (recorded, billed_usd)
    assert recorded - billed_usd <= unresolved + EPS, (recorded, billed_usd, unresolved)
    assert answers <= billed_requests <= answers + open_intents, (answers, billed_requests, open_intents)
    return {"recorded": recorded, "billed": billed_usd, "unresolved": unresolved, "answers": answers,
            "billed_requests": billed_requests, "open_intents": open_intents}


def test_recorded_spend_matches_the_bill_through_sigkills(served, prefect_api, tmp_path):
    fake, feature, space = served
    url = fake.endpoints["main"].url
    home = tmp_path / "home"
    rng = random.Random(10)
    kills, finished, seen = 0, None, []
    started = time.monotonic()
    while kills < KILLS:
        process = start(home, feature, space, url, prefect_api)
        if paying(fake, process):
            time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is not None:  # the study finished before the kill
            finished = process.communicate()[0]
            break
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        seen.append(check(fake, home))
    if finished is None:
        process = start(home, feature, space, url, prefect_api)
        finished = process.communicate(timeout=300)[0]
        assert process.returncode == 0, finished[-3000:]
    final = check(fake, home)
    print(f"\n{kills} kills in {time.monotonic() - started:.0f} s; after each: "
          + "; ".join(f"{s['recorded']:.6f}>={s['billed']:.6f} (+{s['unresolved']:.6f} open)" for s in seen)
          + f"\nfinal: {final}")
    assert kills >= KILLS, f"the study finished after {kills} kills: too few paid moments to kill in"
    assert any(s["open_intents"] for s in seen), "no kill landed between a request and its answer"
    assert final["answers"] > 0
