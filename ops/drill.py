"""`votectl drill`: kill a part of the local stack under a voter load and prove nothing was lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2

from ops import render
from ops import status as status_mod
from ops.faults import KILLS, DrillError, Fault, StackContext, make_fault, wait_for
from ops.health import app_checks, infra_checks
from ops.layout import HOST, REDIS_NODES, WORKERS, Layout
from ops.load import Attempt, Load, LoadResult
from ops.reconcile import Row, Snapshot, failures, latency, longest_ack_gap, reconcile
from ops.supervisor import SupervisorError
from ops.switchover import METHODS, postgres_switchover, redis_switchover, sentinels_settled

logger = logging.getLogger(__name__)

SWITCHOVERS = ("switchover-redis", "switchover-postgres")
TARGETS = ("none", *KILLS, *SWITCHOVERS)
# `all`: cheap failures first, the slow Postgres leader loss and the switchovers last.
ALL = (
    "redis-replica",
    "sentinel",
    "worker",
    "app-instance",
    "redis-master",
    "patroni-replica",
    "patroni-leader",
    "haproxy",
    "switchover-redis",
    "switchover-postgres",
)
# Voters must not notice these (checked with --strict); HAProxy itself is the front door.
QUIET_TARGETS = frozenset(TARGETS) - {"haproxy"}
STREAM, GROUP = "votes", "workers"
# The window around the failure in which every vote is a new voter's only one.
FRESH_BEFORE_S, FRESH_AFTER_S = 2.0, 12.0

Hook = Callable[[StackContext, list[Attempt]], None]


@dataclass
class DrillOptions:
    """How hard and how long a drill pushes."""

    rate: float = 100.0
    duration: float = 20.0
    voters: int = 300
    method: str = "safe"
    seed: int | None = None
    whole_timeout: float = 180.0
    # Keep the workers stopped while the load runs: nothing then reads votes off a master
    # that is about to lose them (the worst case of a plain SENTINEL FAILOVER).
    stop_workers: bool = False
    drain_timeout: float = 120.0


# --- the stack's state ------------------------------------------------------------------------


def whole_problems(ctx: StackContext) -> list[str]:
    """What keeps the stack from being whole: every member running, healthy and in its place."""
    problems = [
        f"{name} is {info['statename']}"
        for name, info in ctx.supervisor.processes().items()
        if info["statename"] != "RUNNING"
    ]
    for check in [
        *infra_checks(ctx.layout, ctx.creds),
        *app_checks(ctx.layout, ctx.supervisor),
    ]:
        try:
            check.run()
        except Exception as exc:  # any failure means "not whole yet"
            problems.append(f"{check.component}: {exc}")
    masters = []
    for node in REDIS_NODES:
        try:
            if ctx.node(node).info("replication")["role"] == "master":
                masters.append(node)
        except Exception as exc:  # a node that is down answers with anything
            problems.append(f"{node}: {exc}")
    if len(masters) != 1:
        problems.append(f"Redis masters: {masters}")
    elif not sentinels_settled(ctx, masters[0]):
        problems.append("a Sentinel has not yet seen every replica report its role")
    view = status_mod.collect(ctx.status_target())
    for server in view["haproxy"].get("backends", []):
        if server["proxy"] in {"vote", "result", "login"} and not server["status"].startswith("UP"):
            problems.append(f"haproxy {server['proxy']}/{server['server']} {server['status']}")
    return problems


def drained(ctx: StackContext) -> bool:
    """Every vote in the stream has been delivered to the workers and acknowledged by them.

    "Delivered" compares the group's last-delivered id with the stream's last id rather than
    trusting XINFO's lag: Redis 7.0 keeps reporting a lag after a failover and trimming
    even when nothing is left to read.
    """
    client = ctx.redis
    with client.pipeline(transaction=True) as pipe:
        pipe.xinfo_groups(STREAM)
        pipe.xinfo_stream(STREAM)
        groups, stream = pipe.execute()
    group = next(g for g in groups if g["name"] in (GROUP, GROUP.encode()))
    return group["pending"] == 0 and group["last-delivered-id"] == stream["last-generated-id"]


def read_snapshot(ctx: StackContext, voters: list[str]) -> Snapshot:
    """The drill voters' rows and the tallies, in one snapshot of the leader."""
    conn = psycopg2.connect(
        host=HOST,
        port=ctx.layout.port("pg-rw"),
        user="postgres",
        password=ctx.creds["PG_SUPERUSER_PASSWORD"],
        dbname=render.APP_DB,
        connect_timeout=2,
    )
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT voter_id, option, vote_id FROM votes WHERE voter_id = ANY(%s)", (voters,)
            )
            rows = {voter: Row(option, vote_id) for voter, option, vote_id in cur.fetchall()}
            cur.execute("SELECT option, count FROM tallies")
            tallies = dict(cur.fetchall())
            cur.execute("SELECT option, count(*) FROM votes GROUP BY option")
            counts = dict(cur.fetchall())
    finally:
        conn.close()
    return Snapshot(rows, tallies, counts)


# --- one drill --------------------------------------------------------------------------------


def _switchover(ctx: StackContext, target: str, method: str, progress) -> Fault:
    info: dict = {}
    if target == "switchover-redis":
        victim = ctx.redis_master()

        def inject() -> None:
            info.update(redis_switchover(ctx, method=method, progress=progress))

    else:
        victim = ctx.patroni_role("leader") or "?"

        def inject() -> None:
            info.update(postgres_switchover(ctx, progress=progress))

    fault = Fault(target, victim, inject, time.monotonic)
    fault.info = info  # type: ignore[attr-defined]
    return fault


def _fault(ctx: StackContext, target: str, options: DrillOptions, progress) -> Fault:
    if target == "none":
        return Fault("none", "-", lambda: None, time.monotonic)
    if target in SWITCHOVERS:
        return _switchover(ctx, target, options.method, progress)
    return make_fault(ctx, target)


class _Runner(threading.Thread):
    def __init__(self, load: Load) -> None:
        super().__init__(name="drill-load", daemon=True)
        self.load = load
        self.result: LoadResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.load.run()
        except BaseException as exc:  # reported by the drill
            self.error = exc


def run_drill(
    layout: Layout,
    target: str,
    options: DrillOptions | None = None,
    *,
    progress: Callable[[str], None] = lambda _: None,
    before_reconcile: Hook | None = None,
) -> dict:
    """Run one drill and return its report (see `summarise`)."""
    options = options or DrillOptions()
    if target not in TARGETS:
        raise DrillError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}, all")
    if options.method not in METHODS:
        raise DrillError(f"unknown method {options.method!r}: one of {', '.join(METHODS)}")
    ctx = StackContext(layout)
    if not ctx.supervisor.is_running():
        raise DrillError(f"no stack is running in {layout.state_dir} (start it: votectl up)")
    wait_for(lambda: not whole_problems(ctx), "a whole, healthy stack before the drill", 60)
    fault = _fault(ctx, target, options, progress)
    middle = options.duration / 2
    load = Load(
        ctx.web_url,
        sorted(ctx.config.option_keys),
        rate=options.rate,
        duration=options.duration,
        voters=options.voters,
        # Every vote from shortly before the failure until FRESH_AFTER_S after it is a new
        # voter's last, so the reconciliation sees each of them.
        fresh_windows=[(middle - FRESH_BEFORE_S, middle + FRESH_AFTER_S)],
        seed=options.seed,
    )
    load.prepare()
    runner = _Runner(load)
    progress(
        f"{target}: {options.rate:g} votes/s for {options.duration:g} s; victim {fault.victim}"
    )
    if options.stop_workers:
        for worker in WORKERS:
            ctx.supervisor.stop(worker)
    runner.start()
    time.sleep(middle)
    problems: list[str] = []
    killed = time.monotonic()
    recovered = killed
    try:
        fault.inject()
        progress(f"{target}: failure injected ({fault.victim})")
        recovered = fault.recover()
    except DrillError as exc:
        problems.append(str(exc))
        _restart_quietly(ctx, fault.victim)
    if options.stop_workers:
        runner.join()
        for worker in WORKERS:
            ctx.supervisor.start(worker)
    # Under the load still running: how long the stack takes to heal must not depend on it.
    try:
        whole_at = wait_for(
            lambda: not whole_problems(ctx) and time.monotonic(),
            "the stack to be whole again",
            options.whole_timeout,
            interval=0.5,
        )
    except DrillError as exc:
        whole_at = None
        problems.append(f"{exc}: {whole_problems(ctx)}")
    runner.join()
    if runner.error or runner.result is None:
        raise DrillError(f"the load failed: {runner.error!r}")
    try:
        drained_at = wait_for(
            lambda: drained(ctx) and time.monotonic(), "the workers to drain the stream", 120
        )
    except DrillError as exc:
        drained_at = None
        problems.append(str(exc))
    attempts = runner.result.attempts
    if before_reconcile:
        before_reconcile(ctx, attempts)
    voters = sorted({a.server_voter for a in attempts if a.server_voter})
    snapshot = read_snapshot(ctx, voters)
    report = summarise(
        target,
        fault,
        runner.result,
        snapshot,
        options,
        killed=killed,
        recovered=recovered,
        whole_at=whole_at,
        drained_at=drained_at,
    )
    report["problems"] = problems
    report["ok"] = report["ok"] and not problems
    progress(f"{target}: {'OK' if report['ok'] else 'FAILED'}")
    return report


def _restart_quietly(ctx: StackContext, member: str) -> None:
    """Recovery went wrong: still try to leave the victim running, as the drill found it."""
    try:
        if ctx.supervisor.state(member) not in {"RUNNING", "STARTING"}:
            ctx.supervisor.start(member)
    except SupervisorError as exc:
        logger.warning("could not restart %s: %s", member, exc)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarise(
    target: str,
    fault: Fault,
    result: LoadResult,
    snapshot: Snapshot,
    options: DrillOptions,
    *,
    killed: float,
    recovered: float,
    whole_at: float | None,
    drained_at: float | None,
) -> dict:
    """The drill's figures as a JSON-able dict."""
    attempts = result.attempts
    rec = reconcile(attempts, snapshot)
    gap = longest_ack_gap(attempts, killed - 1, result.ended)
    window = latency(attempts, killed - 1, recovered + 1)
    before = latency(attempts, result.started, killed - 1)
    failed = failures(attempts)
    report = {
        "target": target,
        "victim": fault.victim,
        "rate": options.rate,
        "duration": options.duration,
        "attempts": len(attempts),
        "acked": sum(a.acked for a in attempts),
        "failed": sum(failed.values()),
        "failures": failed,
        "skipped_ticks": result.skipped,
        "voters": rec.voters,
        "lost": len(rec.lost),
        "lost_examples": rec.lost[:10],
        "ambiguous": rec.ambiguous,
        "double_counted": rec.double_counted,
        "tally_mismatches": rec.tally_mismatches,
        "identity_changes": rec.identity_changes,
        "unavailable_s": _round(gap["seconds"]),
        "unavailable_from_kill_s": _round(gap["from"] - killed),
        "latency_window": {k: _round(v) for k, v in window.items()},
        "latency_before": {k: _round(v) for k, v in before.items()},
        "recovered_after_s": _round(recovered - killed),
        "time_to_whole_s": _round(whole_at - killed) if whole_at else None,
        "drained_after_s": _round(drained_at - killed) if drained_at else None,
        "ok": rec.ok and whole_at is not None and drained_at is not None,
        "quiet_expected": target in QUIET_TARGETS,
    }
    if getattr(fault, "info", None):
        report["switchover"] = fault.info
    return report


def strict_ok(report: dict) -> bool:
    """Nothing lost, and no voter saw a failure where none is expected."""
    return report["ok"] and (report["failed"] == 0 or not report["quiet_expected"])


# --- output -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(reports: list[dict]) -> str:
    """One line per drill, then what went wrong."""
    head = (
        f"{'target':<20} {'victim':<11} {'acked':>6} {'lost':>4} {'2x':>3} {'tally':>5} "
        f"{'failed':>6} {'unavail s':>9} {'p50 ms':>6} {'p99 ms':>6} {'max ms':>6} "
        f"{'back s':>6} {'whole s':>7}  result"
    )
    lines = [head, "-" * len(head)]
    for r in reports:
        w = r["latency_window"]
        lines.append(
            f"{r['target']:<20} {r['victim']:<11} {r['acked']:>6} {r['lost']:>4} "
            f"{r['double_counted']:>3} {len(r['tally_mismatches']):>5} {r['failed']:>6} "
            f"{_s(r['unavailable_s']):>9} {_ms(w['p50']):>6} {_ms(w['p99']):>6} "
            f"{_ms(w['max']):>6} {_s(r['recovered_after_s']):>6} {_s(r['time_to_whole_s']):>7}"
            f"  {'OK' if strict_ok(r) else ('ok*' if r['ok'] else 'FAILED')}"
        )
    notes = []
    for r in reports:
        if r["failures"]:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(r["failures"].items()))
            notes.append(f"{r['target']}: failed requests seen by voters: {detail}")
        for lost in r["lost_examples"][:3]:
            notes.append(f"{r['target']}: LOST {lost}")
        for mismatch in r["tally_mismatches"]:
            notes.append(f"{r['target']}: tally mismatch {mismatch}")
        if r.get("switchover"):
            notes.append(f"{r['target']}: {r['switchover']}")
        notes.extend(f"{r['target']}: {p}" for p in r["problems"])
    legend = (
        "acked: votes acknowledged; lost: acknowledged votes missing from Postgres; 2x: votes "
        "counted twice; tally: options whose tally differs from its rows; unavail: longest gap "
        "between acknowledgements from 1 s before the kill; p50/p99/max: request latency from "
        "1 s before the kill to 1 s after recovery; back: kill -> service back; whole: kill -> "
        "every member back in place; ok*: nothing lost but voters saw failures"
    )
    return "\n".join([*lines, "", *notes, *([""] if notes else []), legend])
