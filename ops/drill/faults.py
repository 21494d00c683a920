"""The failures a drill injects into the local stack, and how each one is undone."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import requests

from ops.drill import DrillError
from ops.drill.view import StackContext
from ops.local.layout import REDIS_NODES, SENTINELS, WORKERS
from ops.wait import wait_for

logger = logging.getLogger(__name__)

# How long a killed member that nothing restarts by itself stays down before the drill
# starts it again (a replica, a Sentinel: nothing fails over, so nothing to wait for).
DOWN_FOR_S = 2.0


# --- killing ---------------------------------------------------------------------------------


def sigkill(ctx: StackContext, member: str) -> None:
    """SIGKILL the member's main process through supervisord (what `votectl kill` does)."""
    ctx.supervisor.signal(member, "KILL")


def sigkill_tree(ctx: StackContext, member: str) -> None:
    """SIGKILL the member and every process under it at once (a gunicorn instance dies)."""
    main = psutil.Process(ctx.supervisor.info(member)["pid"])
    victims = [main, *main.children(recursive=True)]
    for proc in victims:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


def _postmaster(ctx: StackContext, member: str) -> psutil.Process | None:
    try:
        pid = int((ctx.layout.pg_data(member) / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None
    return proc if "postgres" in proc.name() else None


def hard_kill_patroni(ctx: StackContext, member: str) -> None:
    """SIGKILL Patroni and its postmaster and keep them down, like a machine that died.

    supervisord restarts a killed Patroni at once, and a Patroni that still holds the leader
    lock takes it back: no failover would happen. So Patroni is frozen first, its
    postmaster and backends are killed, and supervisord is told to stop it (the stop
    signal waits behind the freeze) before the SIGKILL lands: it stays STOPPED.
    """
    ctx.supervisor.signal(member, "STOP")
    postmaster = _postmaster(ctx, member)
    if postmaster is not None:
        victims = [postmaster, *postmaster.children(recursive=True)]
        for proc in victims:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
    ctx.supervisor.stop(member, wait=False)
    ctx.supervisor.signal(member, "KILL")
    wait_for(lambda: ctx.supervisor.state(member) == "STOPPED", f"{member} to be down", 15)


# --- faults ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One failure: `inject` breaks something; `recover` waits for the service to be back,
    restarts what was killed, and returns when the service was back (monotonic time)."""

    target: str
    victim: str
    inject: Callable[[], None]
    recover: Callable[[], float]


def _restart(ctx: StackContext, member: str) -> None:
    """`votectl start`: a member supervisord already restarted is left alone."""
    if ctx.supervisor.state(member) not in {"RUNNING", "STARTING"}:
        ctx.supervisor.start(member)
    wait_for(lambda: ctx.running(member), f"{member} to run again", 60)


def _redis_master(ctx: StackContext) -> Fault:
    victim = ctx.redis_master()

    def recover() -> float:
        wait_for(
            lambda: any(m not in (None, victim) for m in ctx.sentinel_masters().values()),
            "Sentinel to promote a replica",
            30,
        )
        back = time.monotonic()
        # Only once every Sentinel knows: a node restarted before that may be told it is
        # still the master and wipe its replicas (a restarted old master claims the master
        # role for about 10 s before Sentinel demotes it).
        wait_for(
            lambda: (
                len(set(ctx.sentinel_masters().values()) - {victim}) == 1
                and victim not in ctx.sentinel_masters().values()
            ),
            "every Sentinel to name the new master",
            30,
        )
        _restart(ctx, victim)
        return back

    return Fault("redis-master", victim, lambda: sigkill(ctx, victim), recover)


def _redis_replica(ctx: StackContext) -> Fault:
    master = ctx.redis_master()
    victim = next(n for n in REDIS_NODES if n != master)
    return Fault(
        "redis-replica", victim, lambda: sigkill(ctx, victim), _down_then_start(ctx, victim)
    )


def _down_then_start(ctx: StackContext, victim: str) -> Callable[[], float]:
    def recover() -> float:
        back = time.monotonic()  # nothing fails over: the service never stopped
        time.sleep(DOWN_FOR_S)
        _restart(ctx, victim)
        return back

    return recover


def _autorestarted(ctx: StackContext, victim: str, ready: Callable[[], bool]) -> Fault:
    """A member supervisord restarts by itself; the service is back once `ready()`."""

    def recover() -> float:
        # supervisord notices the exit within a moment; do not mistake the old process.
        time.sleep(0.2)
        _restart(ctx, victim)
        wait_for(ready, f"{victim} to be ready", 60)
        return time.monotonic()

    return Fault("", victim, lambda: sigkill(ctx, victim), recover)


def _url_ok(url: str, verify: bool | str = True) -> bool:
    try:
        return requests.get(url, timeout=1, verify=verify).status_code == 200
    except requests.RequestException:
        return False


def _sentinel(ctx: StackContext) -> Fault:
    victim = SENTINELS[0]

    def ready() -> bool:
        return ctx.sentinel_masters()[victim] is not None

    return _autorestarted(ctx, victim, ready)


def _worker(ctx: StackContext) -> Fault:
    return _autorestarted(ctx, WORKERS[0], lambda: True)


def _haproxy(ctx: StackContext) -> Fault:
    front = f"{ctx.web_url}/static/style.css"  # TLS, routing, an app; no data store
    return _autorestarted(ctx, "haproxy", lambda: _url_ok(front, ctx.deployment.web_verify))


def _app_instance(ctx: StackContext) -> Fault:
    program, _, port = next(i for i in ctx.layout.app_instances if i[1] == "vote")
    fault = _autorestarted(ctx, program, lambda: _url_ok(f"http://{ctx.layout.addr(port)}/readyz"))
    fault.inject = lambda: sigkill_tree(ctx, program)
    return fault


def _patroni_member(
    ctx: StackContext, target: str, roles: tuple[str, ...], replaced: str, what: str, timeout: float
) -> Fault:
    """Hard-kill the holder of the first of `roles`; recovered once another holds `replaced`."""
    victim = next((v for v in map(ctx.patroni_role, roles) if v), None)
    if victim is None:
        raise DrillError(f"Patroni has no {' or '.join(roles)}")

    def recover() -> float:
        wait_for(lambda: ctx.patroni_role(replaced) not in (None, victim), what, timeout)
        back = time.monotonic()
        _restart(ctx, victim)
        return back

    return Fault(target, victim, lambda: hard_kill_patroni(ctx, victim), recover)


def _patroni_leader(ctx: StackContext) -> Fault:
    return _patroni_member(
        ctx, "patroni-leader", ("leader",), "leader", "Patroni to elect a new leader", 90
    )


def _patroni_replica(ctx: StackContext) -> Fault:
    # The synchronous standby: losing it stalls commits until Patroni picks the other one.
    return _patroni_member(
        ctx,
        "patroni-replica",
        ("sync_standby", "replica"),
        "sync_standby",
        "Patroni to pick another synchronous standby",
        60,
    )


KILLS: dict[str, Callable[[StackContext], Fault]] = {
    "redis-master": _redis_master,
    "redis-replica": _redis_replica,
    "sentinel": _sentinel,
    "patroni-leader": _patroni_leader,
    "patroni-replica": _patroni_replica,
    "worker": _worker,
    "haproxy": _haproxy,
    "app-instance": _app_instance,
}


def make_fault(ctx: StackContext, target: str) -> Fault:
    """The fault for `target`, aimed at the member that currently plays that role."""
    fault = KILLS[target](ctx)
    fault.target = target
    return fault
