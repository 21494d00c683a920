"""`votectl drill`: kill a part of the local stack under a voter load and prove nothing was lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.stream import drained
from ops.drill import DrillError
from ops.drill.faults import KILLS, Fault, make_fault
from ops.drill.load import Attempt, Load, LoadResult
from ops.drill.polls import close_polls, open_polls
from ops.drill.report import summarise
from ops.drill.switchover import (
    METHODS,
    SwitchoverError,
    postgres_switchover,
    redis_switchover,
)
from ops.drill.view import StackContext, read_snapshot, whole_problems
from ops.local.layout import WORKERS, Layout
from ops.local.supervisor import SupervisorError
from ops.wait import WaitTimeout, wait_for

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
    # Polls made for the drill (the first poll is voted in too).
    polls: int = 3


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
    polls = open_polls(ctx.deployment, options.polls)
    load = Load(
        ctx.web_url,
        polls,
        verify=ctx.deployment.web_verify,
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
        f"{target}: {options.rate:g} votes/s for {options.duration:g} s in {len(polls)} polls;"
        f" victim {fault.victim}"
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
    except (DrillError, SwitchoverError, WaitTimeout) as exc:
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
    except WaitTimeout as exc:
        whole_at = None
        problems.append(f"{exc}: {whole_problems(ctx)}")
    runner.join()
    if runner.error or runner.result is None:
        raise DrillError(f"the load failed: {runner.error!r}")
    try:
        drained_at = wait_for(
            lambda: drained(ctx.redis) and time.monotonic(), "the workers to drain the stream", 120
        )
    except WaitTimeout as exc:
        drained_at = None
        problems.append(str(exc))
    attempts = runner.result.attempts
    if before_reconcile:
        before_reconcile(ctx, attempts)
    ballots = sorted({(a.poll, a.server_voter) for a in attempts if a.server_voter})
    snapshot = read_snapshot(ctx.deployment, ballots)
    close_polls(ctx.deployment, list(polls))
    report = summarise(
        target,
        fault,
        runner.result,
        snapshot,
        rate=options.rate,
        duration=options.duration,
        quiet_expected=target in QUIET_TARGETS,
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
