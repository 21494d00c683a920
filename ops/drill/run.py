"""`votectl drill`: kill a part of the local stack under a voter load and prove nothing was lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ops.drill import DrillError
from ops.drill.execute import DrillOptions, System, execute
from ops.drill.faults import KILLS, Fault, make_fault
from ops.drill.load import Attempt
from ops.drill.switchover import (
    METHODS,
    postgres_switchover,
    redis_switchover,
)
from ops.drill.view import StackContext, whole_problems
from ops.local.layout import WORKERS, Layout
from ops.local.supervisor import SupervisorError
from ops.wait import wait_for

logger = logging.getLogger(__name__)

__all__ = ["ALL", "TARGETS", "DrillOptions", "run_drill"]

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

Hook = Callable[[StackContext, list[Attempt]], None]


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


def _system(ctx: StackContext, options: DrillOptions) -> System:
    """The local stack as a drill sees it (supervisord restarts, stops and starts members)."""

    def set_workers(start: bool) -> Callable[[], None]:
        def apply() -> None:
            if options.stop_workers:
                for worker in WORKERS:
                    (ctx.supervisor.start if start else ctx.supervisor.stop)(worker)

        return apply

    return System(
        deployment=ctx.deployment,
        web_url=ctx.web_url,
        whole_problems=lambda: whole_problems(ctx),
        master=lambda: ctx.redis,
        restart_quietly=lambda victim: _restart_quietly(ctx, victim),
        before_load=set_workers(False),
        after_recovery=set_workers(True),
    )


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
    system = _system(ctx, options)
    # The fault is aimed at whoever plays the role once the stack is whole.
    wait_for(lambda: not whole_problems(ctx), "a whole, healthy stack before the drill", 60)
    fault = _fault(ctx, target, options, progress)
    hook = (lambda attempts: before_reconcile(ctx, attempts)) if before_reconcile else None
    return execute(system, fault, options, progress=progress, before_reconcile=hook)


def _restart_quietly(ctx: StackContext, member: str) -> None:
    """Recovery went wrong: still try to leave the victim running, as the drill found it."""
    try:
        if ctx.supervisor.state(member) not in {"RUNNING", "STARTING"}:
            ctx.supervisor.start(member)
    except SupervisorError as exc:
        logger.warning("could not restart %s: %s", member, exc)
