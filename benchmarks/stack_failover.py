"""Benchmark the local stack itself: cold start, memory, and write unavailability on failover.

Starts a fresh data-layer stack (no apps) in a temporary state dir, then:
- Redis: a writer does XADD + WAIT 1 every 5 ms through Sentinel; the master is stopped
  (and, separately, SIGKILLed); we report the longest gap between acknowledged writes and
  how many acknowledged writes are missing on the new master;
- Postgres: a writer INSERTs (autocommit) every 5 ms through HAProxy's read-write port; the
  Patroni leader is stopped; same figures.
The baseline, measured in the same run, is the longest gap of the same writer over a quiet
window with no failure (the noise floor of this machine).

Usage: .venv/bin/python benchmarks/stack_failover.py [--base-port 23000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Config
from core.redis_client import master_client
from ops.local.deployment import app_env, local_deployment, stack_secrets
from ops.local.layout import REDIS_NODES, Layout
from ops.local.processes import memory_by_program
from ops.wait import WaitTimeout, wait_for

VOTECTL = str(Path(sys.executable).parent / "votectl")


class Writer(threading.Thread):
    """Writes one record every `interval` s, recording when each acknowledged write ended."""

    def __init__(self, write, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.write, self.interval = write, interval
        self.acked: list[tuple[float, int]] = []
        self.errors: dict[str, int] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self.stop_flag.is_set():
            seq += 1
            while not self.stop_flag.is_set():
                try:
                    self.write(seq)
                    self.acked.append((time.monotonic(), seq))
                    break
                except Exception as exc:
                    name = exc.__class__.__name__
                    self.errors[name] = self.errors.get(name, 0) + 1
                    time.sleep(0.01)
            time.sleep(self.interval)

    def max_gap(self, start: float, end: float) -> float:
        times = [t for t, _ in self.acked if start <= t <= end]
        return max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))


def votectl(layout: Layout, *args: str) -> str:
    cmd = [VOTECTL, "--state-dir", str(layout.state_dir), "--base-port", str(layout.base_port)]
    return subprocess.run([*cmd, *args], check=True, capture_output=True, text=True).stdout


def status(layout: Layout) -> dict:
    return json.loads(votectl(layout, "status", "--json"))


def wait(predicate, timeout: float = 90) -> None:
    try:
        wait_for(predicate, "the stack to heal", timeout, 0.5)
    except WaitTimeout as exc:
        raise SystemExit(str(exc)) from None


def healthy(layout: Layout) -> bool:
    s = status(layout)
    return (
        len(s["redis"]["replica_details"]) == 2
        and all(r["state"] == "online" for r in s["redis"]["replica_details"])
        and s["sentinel"]["quorum_ok"]
        and sum(m["state"] == "streaming" for m in s["postgres"]["members"]) == 2
    )


def memory(layout: Layout) -> dict[str, float]:
    """PSS in MiB per component: supervisord, its programs and their children, postmasters."""
    groups: dict[str, float] = {}
    for name, usage in memory_by_program(layout).items():
        kind = name.rsplit("-", 1)[0]
        groups[kind] = groups.get(kind, 0.0) + usage.pss
    return groups


def redis_round(layout: Layout, config: Config, how: str) -> dict:
    client = master_client(config, socket_timeout=0.5)
    stream = f"bench:{how}:{time.time_ns()}"

    def write(seq: int) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.xadd(stream, {"seq": seq})
        pipe.wait(1, 200)
        if pipe.execute()[1] < 1:
            raise RuntimeError("not replicated")

    writer = Writer(write)
    writer.start()
    time.sleep(3)
    quiet_end = time.monotonic()
    master = status(layout)["redis"]["master"]
    node = next(n for n in REDIS_NODES if master.endswith(f":{layout.redis_port(n)}"))
    failed_at = time.monotonic()
    votectl(layout, "stop" if how == "stop" else "kill", node)
    wait(lambda: status(layout)["redis"]["master"] not in (None, master), 30)
    time.sleep(3)
    writer.stop_flag.set()
    writer.join()
    acked = {seq for _, seq in writer.acked}
    stored = {int(fields[b"seq"]) for _, fields in client.xrange(stream)}
    votectl(layout, "start", node)
    wait(lambda: healthy(layout))
    return {
        "what": f"redis master {how}",
        "unavailable_s": writer.max_gap(failed_at - 0.1, time.monotonic()),
        "baseline_gap_s": writer.max_gap(0, quiet_end),
        "acked": len(acked),
        "lost": len(acked - stored),
        "errors": writer.errors,
    }


def postgres_round(layout: Layout, creds: dict[str, str]) -> dict:
    target = local_deployment(layout, creds)
    table = f"bench_{time.time_ns()}"
    state = {"conn": None}

    def connect():
        conn = target.pg_connect(timeout=1)
        conn.autocommit = True
        return conn

    setup = connect()
    setup.cursor().execute(f"CREATE TABLE {table} (seq int PRIMARY KEY)")
    setup.close()

    def write(seq: int) -> None:
        try:
            if state["conn"] is None:
                state["conn"] = connect()
            state["conn"].cursor().execute(
                f"INSERT INTO {table} VALUES (%s) ON CONFLICT DO NOTHING", (seq,)
            )
        except psycopg2.Error:
            if state["conn"] is not None:
                state["conn"].close()
            state["conn"] = None
            raise

    writer = Writer(write)
    writer.start()
    time.sleep(3)
    quiet_end = time.monotonic()
    leader = status(layout)["postgres"]["leader"]
    failed_at = time.monotonic()
    votectl(layout, "stop", leader)
    wait(lambda: status(layout)["postgres"]["leader"] not in (None, leader), 60)
    time.sleep(4)
    writer.stop_flag.set()
    writer.join()
    check = connect()
    cur = check.cursor()
    cur.execute(f"SELECT seq FROM {table}")
    stored = {row[0] for row in cur.fetchall()}
    check.close()
    acked = {seq for _, seq in writer.acked}
    votectl(layout, "start", leader)
    wait(lambda: healthy(layout), 120)
    return {
        "what": "patroni leader stop",
        "unavailable_s": writer.max_gap(failed_at - 0.1, time.monotonic()),
        "baseline_gap_s": writer.max_gap(0, quiet_end),
        "acked": len(acked),
        "lost": len(acked - stored),
        "errors": writer.errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-port", type=int, default=23000)
    parser.add_argument("--rounds", type=int, default=1, help="failovers of each kind")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="vote-bench-", dir="/tmp"))
    state.chmod(0o755)
    layout = Layout(state, args.base_port)
    results: dict = {"rounds": []}
    try:
        started = time.monotonic()
        votectl(layout, "up", "--no-apps")
        results["cold_start_s"] = time.monotonic() - started
        time.sleep(2)
        results["memory_mib"] = memory(layout)
        creds = stack_secrets(layout)
        config = Config.from_env(app_env(layout))
        for _ in range(args.rounds):
            results["rounds"].append(redis_round(layout, config, "stop"))
            results["rounds"].append(redis_round(layout, config, "kill"))
            results["rounds"].append(postgres_round(layout, creds))
    finally:
        votectl(layout, "down", "--purge")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    mem = results["memory_mib"]
    print(f"cold start (nothing -> all healthy): {results['cold_start_s']:.1f} s")
    print(
        f"memory (PSS): {sum(mem.values()):.0f} MiB total; "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(mem.items()))
    )
    print(f"{'failure':<22}{'unavailable s':>14}{'baseline gap s':>16}{'acked':>8}{'lost':>6}")
    for r in results["rounds"]:
        print(
            f"{r['what']:<22}{r['unavailable_s']:>14.2f}{r['baseline_gap_s']:>16.3f}"
            f"{r['acked']:>8}{r['lost']:>6}   errors seen: {r['errors']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
