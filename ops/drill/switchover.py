"""Planned moves of the Redis master and the Patroni leader that lose no acknowledged write."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
import requests

from ops.drill.view import StackContext, sentinels_settled
from ops.local.health import leader_port
from ops.local.layout import HOST, REDIS_NODES, SENTINELS
from ops.wait import wait_for

logger = logging.getLogger(__name__)


class SwitchoverError(Exception):
    """A switchover was refused or could not be done; the message says why."""


# Writes stay paused on the old master at most this long, even if we die half-way.
PAUSE_MS = 5000
METHODS = ("safe", "sentinel-failover")


def _replication(client: redis.Redis) -> tuple[int, dict[str, int]]:
    """The master's offset and each online replica's acknowledged offset, by address."""
    info = client.info("replication")
    replicas = {
        f"{v['ip']}:{v['port']}": int(v["offset"])
        for k, v in info.items()
        if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
    }
    return int(info["master_repl_offset"]), replicas


def _caught_up(client: redis.Redis, want: int) -> bool:
    offset, replicas = _replication(client)
    return sum(o == offset for o in replicas.values()) >= want


def _demote(old: redis.Redis, new_host: str, new_port: int) -> None:
    """Make the old master a replica and drop its clients at once, as Sentinel itself does
    (but now, not after Sentinel's ~10 s delay): paused writes then fail and are retried
    against the new master instead of being acknowledged by a doomed one."""
    with old.pipeline(transaction=True) as pipe:
        pipe.execute_command("REPLICAOF", new_host, new_port)
        pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
        pipe.execute()


def redis_switchover(
    ctx: StackContext,
    *,
    method: str = "safe",
    timeout: float = 30,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """Move the Redis master to a replica.

    safe: pause writes on the master (CLIENT PAUSE WRITE), wait until the replicas hold
    everything, SENTINEL FAILOVER, demote the old master as soon as Sentinel names the new
    one, then unpause. sentinel-failover: a plain SENTINEL FAILOVER, for comparison (it can
    lose acknowledged writes: see docs/GUARANTEES.md).
    """
    if method not in METHODS:
        raise SwitchoverError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    old_node = ctx.redis_master()
    wait_for(
        lambda: sentinels_settled(ctx, old_node),
        "every Sentinel to see both replicas as replicas",
        20,
    )
    old = ctx.node(old_node, timeout=2)
    leader = ctx.sentinel(SENTINELS[0])
    started = time.monotonic()
    paused = method == "safe"
    try:
        if paused:
            old.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
            progress(f"writes paused on {old_node}")
            wait_for(
                lambda: _caught_up(old, len(REDIS_NODES) - 1),
                "the replicas to reach the master's offset",
                2,
            )
        leader.execute_command("SENTINEL FAILOVER", ctx.layout.master_name)
        new_node = wait_for(
            lambda: (m := ctx.sentinel_masters()[SENTINELS[0]]) not in (None, old_node) and m,
            "Sentinel to promote a replica",
            PAUSE_MS / 1000 - 0.5 if paused else timeout,
        )
        switched = time.monotonic()
        if paused:
            _demote(old, HOST, ctx.layout.redis_port(new_node))
            progress(f"{old_node} demoted to a replica of {new_node}")
    finally:
        if paused:
            try:
                old.execute_command("CLIENT", "UNPAUSE")
            except redis.RedisError as exc:
                logger.warning("could not unpause %s: %s", old_node, exc)
        old.close()
        leader.close()
    result = {
        "method": method,
        "old_master": old_node,
        "new_master": new_node,
        "switch_s": round(switched - started, 3),
    }
    progress(f"Sentinel promoted {new_node} after {result['switch_s']} s")
    return result


def postgres_switchover(
    ctx: StackContext,
    candidate: str | None = None,
    *,
    timeout: float = 60,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """Hand the leader lock to `candidate` (default: the synchronous standby) through
    Patroni's REST API, then wait until HAProxy's read-write port reaches it."""
    leader = ctx.patroni_role("leader")
    candidate = candidate or ctx.patroni_role("sync_standby")
    if leader is None or candidate is None or candidate == leader:
        raise SwitchoverError(f"cannot switch over from {leader} to {candidate}")
    started = time.monotonic()
    reply = requests.post(
        f"http://{ctx.layout.addr(ctx.layout.api_port(leader))}/switchover",
        json={"leader": leader, "candidate": candidate},
        auth=("patroni", ctx.creds["patroni-restapi"]),
        timeout=timeout,
    )
    if reply.status_code != 200:
        raise SwitchoverError(f"Patroni refused the switchover ({reply.status_code}): {reply.text}")
    progress(f"Patroni: {reply.text.strip()}")
    port = ctx.layout.pg_port(candidate)
    wait_for(
        lambda: leader_port(ctx.deployment, timeout=1) == port,
        f"HAProxy's read-write port to reach {candidate}",
        30,
    )
    switched = time.monotonic()
    return {
        "old_leader": leader,
        "new_leader": candidate,
        "switch_s": round(switched - started, 3),
    }
