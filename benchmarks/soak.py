"""Soak: minutes of voters through HAProxy while the Redis master and the Patroni leader die.

A continuous load (default 10 minutes at 300 votes/s) runs through the web front; every
`--every` seconds each target in `--targets` is SIGKILLed once (evenly spaced, the same
kills as `votectl drill`) and brought back. At the end the workers drain the stream and
every voter's last acknowledged vote is reconciled with Postgres. Printed: per failover
the figures of `votectl drill` (acked, lost, failed, seconds without an acknowledgement,
latency around it, time until the service and the whole stack were back), the run's
totals beside the latency outside failover windows (this run's own baseline), and the
memory (RSS/PSS) of each stack component at the start and at the end.

Usage: .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 300] [--every 120]
       [--state-dir DIR --base-port N (a running stack, else a fresh one)] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.stream import drained
from ops.drill import DrillError
from ops.drill.faults import make_fault
from ops.drill.load import Attempt, Load
from ops.drill.reconcile import failures, latency, longest_ack_gap, reconcile
from ops.drill.switchover import SwitchoverError
from ops.drill.view import StackContext, read_snapshot, whole_problems
from ops.local.layout import Layout
from ops.local.processes import memory_by_program
from ops.voter import poll_options
from ops.wait import WaitTimeout, wait_for

VOTECTL = str(Path(sys.executable).parent / "votectl")
# Every vote in [kill - BEFORE, kill + AFTER] is a new voter's only one (see ops/drill/load.py).
BEFORE_S, AFTER_S = 2.0, 12.0
MIB = 1 << 20


def votectl(layout: Layout, *args: str) -> None:
    cmd = [VOTECTL, "--state-dir", str(layout.state_dir), "--base-port", str(layout.base_port)]
    subprocess.run([*cmd, *args], check=True, capture_output=True, text=True, timeout=600)


def memory(ctx: StackContext) -> dict[str, dict[str, float]]:
    """RSS and PSS (MiB) per program with its children; Patroni members include Postgres."""
    return {name: vars(usage) for name, usage in memory_by_program(ctx.layout).items()}


def kill_plan(minutes: float, every: float, targets: list[str]) -> list[tuple[float, str]]:
    """(seconds from the start, target): each target once per `every`, evenly spaced."""
    step = every / len(targets)
    plan, at, i = [], step / 2, 0
    while at < minutes * 60 - AFTER_S:
        plan.append((at, targets[i % len(targets)]))
        at, i = at + step, i + 1
    return plan


def run_failovers(
    ctx: StackContext, load: Load, plan, started: float, stop: threading.Event
) -> list[dict]:
    events = []
    for index, (at, target) in enumerate(plan):
        if index:
            load.prepare_window(index, parallel=4)  # the first one is ready before the start
        delay = started + at - time.monotonic()
        if stop.wait(max(0.0, delay)):
            break
        fault = make_fault(ctx, target)
        killed = time.monotonic()
        event = {"target": target, "victim": fault.victim, "at_s": round(killed - started, 1)}
        try:
            fault.inject()
            event["back"] = fault.recover()
            event["whole"] = wait_for(
                lambda: not whole_problems(ctx) and time.monotonic(), "a whole stack", 180, 0.5
            )
        except (DrillError, SwitchoverError, WaitTimeout) as exc:
            event["problem"] = str(exc)
        event["killed"] = killed
        print(f"  {event['at_s']:>6.1f}s {target} ({fault.victim}) done", file=sys.stderr)
        events.append(event)
    return events


def figures(event: dict, attempts: list[Attempt], lost: list[dict], end: float) -> dict:
    killed = event["killed"]
    back = event.get("back", killed)
    window = [a for a in attempts if killed - BEFORE_S <= a.started <= killed + AFTER_S]
    lat = latency(attempts, killed - 1, back + 1)
    gap = longest_ack_gap(attempts, killed - 1, min(end, killed + AFTER_S))
    return {
        "target": event["target"],
        "victim": event["victim"],
        "at_s": event["at_s"],
        "acked": sum(a.acked for a in window),
        "lost": sum(killed - BEFORE_S <= x["acknowledged"]["at"] <= killed + AFTER_S for x in lost),
        "failed": sum(failures(window).values()),
        "unavailable_s": round(gap["seconds"], 3),
        "p50_ms": round((lat["p50"] or 0) * 1000),
        "p99_ms": round((lat["p99"] or 0) * 1000),
        "max_ms": round((lat["max"] or 0) * 1000),
        "back_s": round(back - killed, 1),
        "whole_s": round(event["whole"] - killed, 1) if event.get("whole") else None,
        "problem": event.get("problem"),
    }


def soak(ctx: StackContext, minutes: float, rate: float, every: float, targets: list[str]):
    plan = kill_plan(minutes, every, targets)
    load = Load(
        ctx.web_url,
        poll_options(ctx.web_url, ctx.deployment.web_verify),
        verify=ctx.deployment.web_verify,
        rate=rate,
        duration=minutes * 60,
        voters=max(300, int(rate * 3)),
        fresh_windows=[(at - BEFORE_S, at + AFTER_S) for at, _ in plan],
    )
    print(f"  {len(load.voters)} voters, {len(plan)} failovers", file=sys.stderr)
    load.prepare(windows=False)
    if plan:
        load.prepare_window(0)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(load=load.run()), daemon=True)
    stop = threading.Event()
    started = time.monotonic()
    runner.start()
    try:
        events = run_failovers(ctx, load, plan, started, stop)
    finally:
        stop.set()
        runner.join()
    wait_for(lambda: drained(ctx.redis), "the workers to drain the stream", 300, 0.5)
    attempts = result["load"].attempts
    voters = sorted({a.server_voter for a in attempts if a.server_voter})
    rec = reconcile(attempts, read_snapshot(ctx.deployment, voters))
    end = result["load"].ended
    per_failover = [figures(e, attempts, rec.lost, end) for e in events]
    windows = [(e["killed"] - 1, e.get("whole", e["killed"] + AFTER_S) + 1) for e in events]
    quiet = [a for a in attempts if not any(s <= a.started <= t for s, t in windows)]
    return {
        "minutes": minutes,
        "rate": rate,
        "attempts": len(attempts),
        "acked": sum(a.acked for a in attempts),
        "achieved_rate": round(len(attempts) / (end - result["load"].started), 1),
        "skipped_ticks": result["load"].skipped,
        "lost": len(rec.lost),
        "lost_examples": rec.lost[:5],
        "ambiguous": rec.ambiguous,
        "double_counted": rec.double_counted,
        "tally_mismatches": rec.tally_mismatches,
        "failures": failures(attempts),
        "latency_quiet": {k: v for k, v in latency(quiet, 0, float("inf")).items()},
        "failovers": per_failover,
    }


def print_report(report: dict) -> None:
    quiet = report["latency_quiet"]
    print(
        f"{report['minutes']:g} min at {report['rate']:g} votes/s (achieved "
        f"{report['achieved_rate']}/s): {report['attempts']} votes, {report['acked']} acknowledged"
        f", lost {report['lost']}, counted twice {report['double_counted']}, tally mismatches "
        f"{len(report['tally_mismatches'])}, failed requests {report['failures'] or 0}"
    )
    print(
        f"baseline (outside failover windows): p50 {quiet['p50'] * 1000:.0f} ms, "
        f"p99 {quiet['p99'] * 1000:.0f} ms, max {quiet['max'] * 1000:.0f} ms"
    )
    head = (
        f"{'at s':>6} {'target':<15} {'victim':<10} {'acked':>6} {'lost':>4} {'failed':>6} "
        f"{'unavail s':>9} {'p50 ms':>6} {'p99 ms':>6} {'max ms':>6} {'back s':>6} {'whole s':>7}"
    )
    print(head)
    for f in report["failovers"]:
        print(
            f"{f['at_s']:>6.1f} {f['target']:<15} {f['victim']:<10} {f['acked']:>6} "
            f"{f['lost']:>4} {f['failed']:>6} {f['unavailable_s']:>9.2f} {f['p50_ms']:>6} "
            f"{f['p99_ms']:>6} {f['max_ms']:>6} {f['back_s']:>6} {f['whole_s'] or '-':>7}"
            + (f"  {f['problem']}" if f["problem"] else "")
        )
    print(f"{'memory MiB':<22} {'RSS start':>9} {'RSS end':>8} {'PSS start':>9} {'PSS end':>8}")
    start, end = report["memory_start"], report["memory_end"]
    for name in sorted(set(start) | set(end)):
        s, e = start.get(name, {}), end.get(name, {})
        print(
            f"{name:<22} {s.get('rss', 0):>9.0f} {e.get('rss', 0):>8.0f} "
            f"{s.get('pss', 0):>9.0f} {e.get('pss', 0):>8.0f}"
        )
    total = {k: sum(m.get(k, 0) for m in start.values()) for k in ("rss", "pss")}
    total_end = {k: sum(m.get(k, 0) for m in end.values()) for k in ("rss", "pss")}
    print(
        f"{'total':<22} {total['rss']:>9.0f} {total_end['rss']:>8.0f} "
        f"{total['pss']:>9.0f} {total_end['pss']:>8.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=300, help="votes per second")
    parser.add_argument("--every", type=float, default=120, help="seconds per round of kills")
    parser.add_argument("--targets", default="redis-master,patroni-leader")
    parser.add_argument("--state-dir", default=None, help="a running stack (else a fresh one)")
    parser.add_argument("--base-port", type=int, default=27000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fresh = args.state_dir is None
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="vote-soak-", dir="/tmp"))
    state.chmod(0o755)
    layout = Layout(state.resolve(), args.base_port)
    try:
        if fresh:
            print(f"  starting a stack in {state}", file=sys.stderr)
            votectl(layout, "up")
        ctx = StackContext(layout)
        wait_for(lambda: not whole_problems(ctx), "a whole stack", 120, 0.5)
        memory_start = memory(ctx)
        report = soak(ctx, args.minutes, args.rate, args.every, args.targets.split(","))
        report["memory_start"], report["memory_end"] = memory_start, memory(ctx)
    finally:
        if fresh:
            votectl(layout, "down", "--purge")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    ok = not report["lost"] and not report["double_counted"] and not report["tally_mismatches"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
