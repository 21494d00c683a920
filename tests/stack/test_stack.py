"""The local stack: healthy topology, Redis and Patroni failover, writes that survive them."""

from __future__ import annotations

import time

import psycopg2
import pytest

from ops.local.layout import HOST, PATRONI_MEMBERS, REDIS_NODES
from ops.wait import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def wait_until(predicate, what: str, timeout: float = 60.0, interval: float = 0.5):
    return wait_for(predicate, what, timeout, interval)


def healthy(status: dict) -> bool:
    redis_ok = (
        status["redis"]["master"]
        and len(status["redis"]["replica_details"]) == 2
        and all(r["state"] == "online" for r in status["redis"]["replica_details"])
    )
    members = status["postgres"]["members"]
    pg_ok = (
        sum(m["role"] == "leader" and m["state"] == "running" for m in members) == 1
        and sum(
            m["role"] in {"replica", "sync_standby"} and m["state"] == "streaming" for m in members
        )
        == 2
        and status["postgres"]["sync_standby"]
    )
    return bool(redis_ok and status["sentinel"]["quorum_ok"] and pg_ok)


def test_status_reports_the_whole_topology(stack):
    status = stack.status()
    assert status["redis"]["master"].startswith(f"{HOST}:")
    assert len(status["redis"]["replicas"]) == 2
    assert status["redis"]["master"] not in status["redis"]["replicas"]
    assert status["sentinel"]["quorum_ok"] is True
    assert status["postgres"]["leader"] in PATRONI_MEMBERS
    assert sorted([status["postgres"]["leader"], *status["postgres"]["replicas"]]) == sorted(
        PATRONI_MEMBERS
    )
    assert status["postgres"]["sync_standby"] in status["postgres"]["replicas"]
    assert {"web", "stats"} <= set(status["urls"])
    servers = {(b["proxy"], b["server"]): b["status"] for b in status["haproxy"]["backends"]}
    assert sum(s.startswith("UP") for (p, _), s in servers.items() if p == "postgres_rw") == 1
    assert sum(s.startswith("UP") for (p, _), s in servers.items() if p == "postgres_ro") == 2


def test_status_table_for_people(stack):
    out = stack.votectl("status").stdout
    assert "Redis master" in out and "quorum OK" in out and "leader patroni-" in out


def node_for(stack, addr: str) -> str:
    port = int(addr.rsplit(":", 1)[1])
    return next(n for n in REDIS_NODES if stack.layout.redis_port(n) == port)


def test_redis_master_stop_promotes_a_replica_and_the_old_master_rejoins(stack):
    wait_until(lambda: healthy(stack.status()), "a healthy stack")
    old_master = stack.status()["redis"]["master"]
    old_node = node_for(stack, old_master)
    stack.votectl("stop", old_node)
    new = wait_until(
        lambda: (m := stack.status()["redis"]["master"]) not in (None, old_master) and m,
        "a new Redis master",
        timeout=30,
    )
    assert new != old_master
    stack.votectl("start", old_node)
    status = wait_until(
        lambda: (
            (s := stack.status())
            and any(
                r["addr"] == old_master and r["state"] == "online"
                for r in s["redis"]["replica_details"]
            )
            and s
        ),
        "the old master back as a replica",
        timeout=60,
    )
    assert status["redis"]["master"] == new
    wait_until(lambda: healthy(stack.status()), "a healthy stack again")


def test_patroni_leader_stop_elects_a_new_leader_and_keeps_committed_writes(stack):
    wait_until(lambda: healthy(stack.status()), "a healthy stack")
    stack.sql("CREATE TABLE IF NOT EXISTS failover_probe (id text PRIMARY KEY)")
    marker = f"before-{time.time_ns()}"
    stack.sql("INSERT INTO failover_probe VALUES (%s)", marker)  # committed synchronously
    old_leader = stack.status()["postgres"]["leader"]
    stack.votectl("stop", old_leader)
    new_leader = wait_until(
        lambda: (ld := stack.status()["postgres"]["leader"]) not in (None, old_leader) and ld,
        "a new Patroni leader",
        timeout=60,
    )

    def rw_reaches_new_leader():
        try:
            rows = stack.sql("SELECT pg_is_in_recovery(), inet_server_port()")
        except psycopg2.OperationalError:
            return False
        return rows[0] == (False, stack.layout.pg_port(new_leader))

    wait_until(rw_reaches_new_leader, "HAProxy's read-write port to reach the new leader", 30)
    assert stack.sql("SELECT id FROM failover_probe WHERE id = %s", marker) == [(marker,)]
    stack.votectl("start", old_leader)
    wait_until(
        lambda: any(
            m["name"] == old_leader and m["state"] == "streaming"
            for m in stack.status()["postgres"]["members"]
        ),
        "the old leader streaming as a replica",
        timeout=90,
    )
    wait_until(lambda: healthy(stack.status()), "a healthy stack again")
