"""`python -m worker` as a process: config errors, SIGTERM, and SIGKILL with a survivor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.stream import GROUP, STREAM
from tests.worker.conftest import assert_exact, drained, rows, running, wait_until
from worker.daemon import VoteWorker

ROOT = Path(__file__).resolve().parents[2]


def start(env: dict[str, str], **overrides: object) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], **env, "WORKER_BLOCK_MS": "200"}
    env.update({f"WORKER_{k.upper()}": str(v) for k, v in overrides.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def pending_of(client, consumer: str) -> int:
    summary = client.xpending(STREAM, GROUP)
    return next((c["pending"] for c in summary["consumers"] if c["name"] == consumer.encode()), 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": ""}, "worker: DATABASE_URL is not set"),
        ({"WORKER_BATCH": "0"}, "worker: WORKER_BATCH: must be at least 1"),
        ({"WORKER_BLOCK_MS": "soon"}, "worker: WORKER_BLOCK_MS: expected a number, got 'soon'"),
        ({"DATABASE_URL": "not a url"}, "worker: DATABASE_URL: expected postgresql://"),
    ],
)
def test_a_config_error_exits_2_with_one_line(app_env, change, message):
    env = {"PATH": os.environ["PATH"], **app_env, **change}
    done = subprocess.run(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_sigterm_stops_quickly_and_nothing_acked_is_uncommitted(app_env, ledger, rclient, db):
    ledger.fill([(f"anon:{i}", "cats" if i % 3 else "dogs") for i in range(30_000)])
    proc = start(app_env, batch=200)
    wait_until(lambda: rows(db), "the first batch", timeout=20)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert time.monotonic() - sent < 3
    assert "stopped" in out
    assert not drained(rclient)  # it was stopped mid-stream
    group = rclient.xinfo_groups(STREAM)[0]
    pending = {p["message_id"] for p in rclient.xpending_range(STREAM, GROUP, "-", "+", 10_000)}
    delivered = [e for e in rclient.xrange(STREAM, max=group["last-delivered-id"])]
    acked = {e[1][b"vote_id"].decode() for e in delivered if e[0] not in pending}
    # Every voter voted once, so each acknowledged entry must be a committed row.
    stored = {vote_id for _, vote_id in rows(db).values()}
    assert acked and acked <= stored


def test_a_killed_workers_pending_entries_are_reclaimed_by_the_other(
    app_env, worker_config, ledger, rclient, db
):
    ledger.fill([(f"anon:{i % 2000}", ("cats", "dogs")[i % 7 % 2]) for i in range(8000)])
    victim = start(app_env, name="victim", batch=100)
    try:
        wait_until(lambda: rows(db), "the victim's first batch", timeout=20)
        for _ in range(50):  # freeze it while it holds a batch, so the kill leaves one
            victim.send_signal(signal.SIGSTOP)
            if pending_of(rclient, "victim"):
                break
            victim.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        victim.kill()
        victim.wait(10)
    finally:
        victim.kill()
        victim.communicate()
    left = pending_of(rclient, "victim")
    assert left > 0
    survivor = VoteWorker.from_config(
        worker_config(name="survivor", claim_idle_ms=300, claim_interval_ms=100, batch=500)
    )
    with running(survivor):
        wait_until(lambda: drained(rclient), "the survivor to drain everything", timeout=30)
    claimed = survivor.metrics.registry.get_sample_value(
        "vote_worker_redelivered_total", {"source": "claimed"}
    )
    assert claimed == left
    assert_exact(db, ledger)
