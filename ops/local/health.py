"""Readiness checks of the local stack: real protocol checks, not just open ports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from ops.deployment import Deployment
from ops.local.layout import HOST, PATRONI_MEMBERS, REDIS_NODES, SENTINELS, WORKERS, Layout
from ops.local.supervisor import Supervisor
from ops.status import NoPatroni, patroni_cluster
from ops.wait import NotReady, WaitTimeout, wait_for


class Unhealthy(NotReady):
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


def _redis(layout: Layout, target: Deployment) -> None:
    for node in REDIS_NODES:
        with target.node_client(HOST, layout.redis_port(node)) as client:
            info = client.info("replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            raise Unhealthy(f"{node} is a replica whose link to its master is down")


def _sentinels(layout: Layout, target: Deployment) -> None:
    # Sentinel learns replicas from INFO every 10 s: wait until every Sentinel sees both
    # replicas and both other Sentinels, or a failover fired now could fail.
    for sentinel in SENTINELS:
        with target.sentinel_client(HOST, layout.sentinel_port(sentinel)) as client:
            _sentinel_sees_all(layout, client, sentinel)


def _sentinel_sees_all(layout: Layout, client, sentinel: str) -> None:
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


def _patroni(target: Deployment) -> None:
    try:
        members = patroni_cluster(target.patroni_urls).get("members", [])
    except NoPatroni as exc:
        raise Unhealthy(str(exc)) from None
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


def leader_port(target: Deployment, port: int | None = None, timeout: int = 2) -> int | None:
    """The Postgres port behind HAProxy's read-write port (or `port`), if it is a primary."""
    conn = target.pg_connect(port=port, timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            in_recovery, server_port = cur.fetchone()
    finally:
        conn.close()
    return None if in_recovery else server_port


def _haproxy_pg(layout: Layout, target: Deployment) -> None:
    for port_kind, want_recovery in (("pg-rw", False), ("pg-ro", True)):
        in_recovery = leader_port(target, layout.port(port_kind)) is None
        if in_recovery != want_recovery:
            raise Unhealthy(
                f"haproxy {port_kind} reaches a server with pg_is_in_recovery={in_recovery}"
            )


def _apps(layout: Layout, target: Deployment) -> None:
    for program, _, port in layout.app_instances:
        reply = requests.get(f"http://{layout.addr(port)}/readyz", timeout=3)
        if reply.status_code != 200:
            raise Unhealthy(f"{program} /readyz answered {reply.status_code}: {reply.text[:200]}")
    # Through the web front (TLS, routing, an app instance), on a path that needs no store.
    reply = requests.get(f"{target.web_url}/static/style.css", timeout=3, verify=target.web_verify)
    if reply.status_code != 200:
        raise Unhealthy(f"the web front answered {reply.status_code}")


def _workers(supervisor: Supervisor) -> None:
    for worker in WORKERS:
        state = supervisor.state(worker)
        if state != "RUNNING":
            raise Unhealthy(f"{worker} is {state}")


def infra_checks(layout: Layout, target: Deployment) -> list[Check]:
    return [
        Check("etcd", ("etcd-1",), lambda: _etcd(layout)),
        Check("redis", REDIS_NODES, lambda: _redis(layout, target)),
        Check("sentinel", SENTINELS, lambda: _sentinels(layout, target)),
        Check("patroni", PATRONI_MEMBERS, lambda: _patroni(target)),
        Check("haproxy", ("haproxy",), lambda: _haproxy_pg(layout, target)),
    ]


def app_checks(layout: Layout, supervisor: Supervisor, target: Deployment) -> list[Check]:
    return [
        Check("apps", tuple(p for p, _, _ in layout.app_instances), lambda: _apps(layout, target)),
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
        try:
            wait_for(
                lambda check=check: check.run() or True,
                f"{check.component} to be healthy",
                max(0.0, deadline - time.monotonic()),
                interval=0.25,
            )
        except WaitTimeout as exc:
            logs = ", ".join(str(layout.log(p)) for p in check.programs)
            raise Unhealthy(f"{exc} (logs: {logs})") from None
        progress(f"{check.component} healthy after {time.monotonic() - started:.1f}s")
