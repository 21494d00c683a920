"""One local stack as drills see it: members, roles, and whether it is whole and drained."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import psycopg2
import redis

from app.config import Config
from app.redis import master_client
from app.stream import GROUP, STREAM
from ops import credentials, render
from ops import status as status_mod
from ops.health import Unhealthy, app_checks, infra_checks, patroni_cluster
from ops.layout import HOST, PATRONI_MEMBERS, REDIS_NODES, SENTINELS, Layout
from ops.reconcile import Row, Snapshot
from ops.supervisor import Supervisor

POLL_S = 0.1


class DrillError(Exception):
    """The drill could not run or the stack did not recover; the message says where."""


def wait_for(
    predicate: Callable[[], object], what: str, timeout: float, interval: float = POLL_S
) -> object:
    """Poll `predicate` until it returns something true; raise DrillError on timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # a member that is down answers with anything
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        time.sleep(interval)
    raise DrillError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class StackContext:
    """One local stack as the drill sees it: layout, passwords, supervisord, app settings."""

    layout: Layout
    creds: dict[str, str] = field(init=False)
    supervisor: Supervisor = field(init=False)
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        self.creds = credentials.load_or_create(self.layout.secrets_file)
        self.supervisor = Supervisor(self.layout)
        self.config = Config.from_env(render.app_env(self.layout, self.creds), web=False)

    @cached_property
    def redis(self) -> redis.Redis:
        """A Sentinel-managed client of the current master (the same kind the apps use)."""
        return master_client(self.config)

    @property
    def web_url(self) -> str:
        return f"http://{self.layout.addr(self.layout.port('web'))}"

    def status_target(self) -> status_mod.Target:
        """What `votectl status` looks at for the local stack."""
        return status_mod.Target(
            sentinels=[(HOST, self.layout.sentinel_port(s)) for s in SENTINELS],
            master_name=self.layout.master_name,
            redis_password=self.creds["REDIS_PASSWORD"],
            sentinel_password=self.creds["SENTINEL_PASSWORD"],
            patroni_urls=[
                f"http://{self.layout.addr(self.layout.api_port(m))}" for m in PATRONI_MEMBERS
            ],
            haproxy_stats_url=self.layout.urls()["stats"],
            haproxy_stats_auth=("admin", self.creds["HAPROXY_STATS_PASSWORD"]),
            urls=self.layout.urls(),
        )

    def sentinel(self, name: str) -> redis.Redis:
        return redis.Redis(
            HOST,
            self.layout.sentinel_port(name),
            password=self.creds["SENTINEL_PASSWORD"],
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            decode_responses=True,
        )

    def node(self, name: str, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            HOST,
            self.layout.redis_port(name),
            password=self.creds["REDIS_PASSWORD"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )

    def node_by_addr(self, addr: str) -> str:
        port = int(addr.rsplit(":", 1)[1])
        return next(n for n in REDIS_NODES if self.layout.redis_port(n) == port)

    def sentinel_masters(self) -> dict[str, str | None]:
        """Each Sentinel's idea of the master's node name (None if it does not answer)."""
        seen: dict[str, str | None] = {}
        for name in SENTINELS:
            client = self.sentinel(name)
            try:
                host, port = client.sentinel_get_master_addr_by_name(self.layout.master_name)
                seen[name] = self.node_by_addr(f"{host}:{port}")
            except (redis.RedisError, TypeError, StopIteration):
                seen[name] = None
            finally:
                client.close()
        return seen

    def redis_master(self) -> str:
        masters = {m for m in self.sentinel_masters().values() if m}
        if len(masters) != 1:
            raise DrillError(f"the Sentinels do not agree on a master: {sorted(masters)}")
        return masters.pop()

    def patroni_cluster(self) -> dict:
        try:
            return patroni_cluster(self.layout, timeout=1.0)
        except Unhealthy as exc:
            raise DrillError(str(exc)) from None

    def patroni_role(self, role: str) -> str | None:
        members = self.patroni_cluster().get("members", [])
        return next((m["name"] for m in members if m.get("role") == role), None)

    def running(self, member: str) -> bool:
        return self.supervisor.state(member) == "RUNNING"


def sentinels_settled(ctx: StackContext, master: str) -> bool:
    """Every Sentinel sees every replica as a healthy replica of `master`.

    A Sentinel that has not yet seen a former master report its replica role (it polls
    replicas every 10 s) "fixes" it back into a replica the moment it is promoted again,
    and the failover aborts: back-to-back switchovers must wait for this.
    """
    port = ctx.layout.redis_port(master)
    for name in SENTINELS:
        client = ctx.sentinel(name)
        try:
            replicas = client.sentinel_slaves(ctx.layout.master_name)
        finally:
            client.close()
        healthy = [
            r
            for r in replicas
            if r.get("role-reported") == "slave"
            and r.get("master-link-status") == "ok"
            and int(r.get("master-port", 0)) == port
            and not r.get("is_sdown")
        ]
        if len(healthy) < len(REDIS_NODES) - 1:
            return False
    return True


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
