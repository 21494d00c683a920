"""Readiness checks of the local stack: real protocol checks, not just open ports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import redis
import requests

from ops.layout import HOST, PATRONI_MEMBERS, REDIS_NODES, SENTINELS, WORKERS, Layout
from ops.supervisor import Supervisor


class Unhealthy(Exception):
    """A component is not healthy; the message says what is wrong."""


@dataclass
class Check:
    """A named readiness check and the programs whose logs explain a failure."""

    component: str
    programs: tuple[str, ...]
    run: Callable[[], None]


def _etcd(layout: Layout) -> None:
    reply = requests.get(f"http://{layout.addr(layout.port('etcd-client'))}/health", timeout=2)
    if reply.json().get("health") != "true":
        raise Unhealthy(f"etcd reports {reply.text.strip()}")


def sentinel_client(layout: Layout, creds: dict[str, str], sentinel: str) -> redis.Redis:
    return redis.Redis(
        HOST,
        layout.sentinel_port(sentinel),
        password=creds["SENTINEL_PASSWORD"],
        socket_timeout=1,
        socket_connect_timeout=1,
        decode_responses=True,
    )


def _redis(layout: Layout, creds: dict[str, str]) -> None:
    for node in REDIS_NODES:
        client = redis.Redis(
            HOST,
            layout.redis_port(node),
            password=creds["REDIS_PASSWORD"],
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        info = client.info("replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            raise Unhealthy(f"{node} is a replica whose link to its master is down")


def _sentinels(layout: Layout, creds: dict[str, str]) -> None:
    # Sentinel learns replicas from INFO every 10 s: wait until every Sentinel sees both
    # replicas and both other Sentinels, or a failover fired now could fail (G15).
    for sentinel in SENTINELS:
        client = sentinel_client(layout, creds, sentinel)
        master = client.sentinel_master(layout.master_name)
        if master.get("flags") != "master" and not master.get("is_master"):
            raise Unhealthy(f"{sentinel} sees the master as {master.get('flags')}")
        replicas = [
            r
            for r in client.sentinel_slaves(layout.master_name)
            if not r.get("is_sdown") and not r.get("is_odown")
        ]
        if len(replicas) < len(REDIS_NODES) - 1:
            raise Unhealthy(f"{sentinel} sees {len(replicas)} healthy replicas, want 2")
        if int(master.get("num-other-sentinels", 0)) < len(SENTINELS) - 1:
            raise Unhealthy(f"{sentinel} sees {master.get('num-other-sentinels')} other sentinels")
        client.execute_command("SENTINEL CKQUORUM", layout.master_name)


def patroni_cluster(layout: Layout, timeout: float = 2.0) -> dict:
    """Patroni's /cluster view from the first member that answers."""
    errors = []
    for member in PATRONI_MEMBERS:
        try:
            reply = requests.get(
                f"http://{layout.addr(layout.api_port(member))}/cluster", timeout=timeout
            )
            return reply.json()
        except (requests.RequestException, ValueError) as exc:
            errors.append(f"{member}: {exc.__class__.__name__}")
    raise Unhealthy("no Patroni member answers (" + "; ".join(errors) + ")")


def _patroni(layout: Layout) -> None:
    members = patroni_cluster(layout).get("members", [])
    roles = sorted((m.get("role"), m.get("state")) for m in members)
    leaders = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
    streaming = [
        m
        for m in members
        if m.get("role") in {"replica", "sync_standby"} and m.get("state") == "streaming"
    ]
    sync = [m for m in streaming if m.get("role") == "sync_standby"]
    if len(leaders) != 1 or len(streaming) != len(PATRONI_MEMBERS) - 1 or not sync:
        raise Unhealthy(f"patroni members (role, state): {roles}")


def _haproxy_pg(layout: Layout, creds: dict[str, str]) -> None:
    for port_kind, want_recovery in (("pg-rw", False), ("pg-ro", True)):
        conn = psycopg2.connect(
            host=HOST,
            port=layout.port(port_kind),
            user="postgres",
            password=creds["PG_SUPERUSER_PASSWORD"],
            dbname="postgres",
            connect_timeout=2,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                in_recovery = cur.fetchone()[0]
        finally:
            conn.close()
        if in_recovery != want_recovery:
            raise Unhealthy(
                f"haproxy {port_kind} reaches a server with pg_is_in_recovery={in_recovery}"
            )


def _apps(layout: Layout) -> None:
    for program, _, port in layout.app_instances:
        reply = requests.get(f"http://{layout.addr(port)}/readyz", timeout=3)
        if reply.status_code != 200:
            raise Unhealthy(f"{program} /readyz answered {reply.status_code}: {reply.text[:200]}")
    reply = requests.get(f"http://{layout.addr(layout.port('web'))}/healthz", timeout=3)
    if reply.status_code != 200:
        raise Unhealthy(f"the web front answered {reply.status_code}")


def _workers(supervisor: Supervisor) -> None:
    for worker in WORKERS:
        state = supervisor.state(worker)
        if state != "RUNNING":
            raise Unhealthy(f"{worker} is {state}")


def infra_checks(layout: Layout, creds: dict[str, str]) -> list[Check]:
    return [
        Check("etcd", ("etcd-1",), lambda: _etcd(layout)),
        Check("redis", REDIS_NODES, lambda: _redis(layout, creds)),
        Check("sentinel", SENTINELS, lambda: _sentinels(layout, creds)),
        Check("patroni", PATRONI_MEMBERS, lambda: _patroni(layout)),
        Check("haproxy", ("haproxy",), lambda: _haproxy_pg(layout, creds)),
    ]


def app_checks(layout: Layout, supervisor: Supervisor) -> list[Check]:
    return [
        Check("apps", tuple(p for p, _, _ in layout.app_instances), lambda: _apps(layout)),
        Check("workers", WORKERS, lambda: _workers(supervisor)),
    ]


def wait_healthy(
    layout: Layout,
    checks: list[Check],
    timeout: float,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Run each check until it passes; on timeout name the component and its logs."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    for check in checks:
        last = "not checked yet"
        while True:
            try:
                check.run()
                break
            except Exception as exc:
                last = str(exc) or exc.__class__.__name__
            if time.monotonic() > deadline:
                logs = ", ".join(str(layout.log(p)) for p in check.programs)
                raise Unhealthy(
                    f"{check.component} is not healthy after {timeout:.0f}s: {last} (logs: {logs})"
                )
            time.sleep(0.25)
        progress(f"{check.component} healthy after {time.monotonic() - started:.1f}s")
