"""One local stack as drills see it: members, roles, and whether it is whole and drained."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import redis

from ops import status as status_mod
from ops.deployment import Deployment
from ops.drill.reconcile import Row, Snapshot
from ops.local.deployment import local_deployment, stack_secrets
from ops.local.health import app_checks, infra_checks
from ops.local.layout import APP_DB, HOST, REDIS_NODES, SENTINELS, Layout
from ops.local.supervisor import Supervisor
from ops.wait import TRANSIENT, NotReady


def agreed_master(seen: dict[str, str | None]) -> str:
    """The master every Sentinel that answered names (NotReady while they disagree)."""
    masters = {m for m in seen.values() if m}
    if len(masters) != 1:
        raise NotReady(f"the Sentinels do not agree on a master: {sorted(masters)}")
    return masters.pop()


def role_holder(cluster: dict, role: str) -> str | None:
    """The member of a Patroni /cluster answer that holds `role`, if any."""
    return next((m["name"] for m in cluster.get("members", []) if m.get("role") == role), None)


@dataclass
class StackContext:
    """One local stack as the drill sees it: layout, passwords, supervisord, deployment."""

    layout: Layout
    creds: dict[str, str] = field(init=False)
    supervisor: Supervisor = field(init=False)
    deployment: Deployment = field(init=False)

    def __post_init__(self) -> None:
        self.creds = stack_secrets(self.layout)
        self.supervisor = Supervisor(self.layout)
        self.deployment = local_deployment(self.layout, self.creds)

    @cached_property
    def redis(self) -> redis.Redis:
        """A Sentinel-managed client of the current master (the same kind the apps use)."""
        return self.deployment.redis()

    @property
    def web_url(self) -> str:
        return self.deployment.web_url or ""

    def sentinel(self, name: str) -> redis.Redis:
        return self.deployment.sentinel_client(HOST, self.layout.sentinel_port(name), 0.5)

    def node(self, name: str, timeout: float = 1.0) -> redis.Redis:
        return self.deployment.node_client(HOST, self.layout.redis_port(name), timeout)

    def node_by_addr(self, addr: str) -> str:
        port = int(addr.rsplit(":", 1)[1])
        return next(n for n in REDIS_NODES if self.layout.redis_port(n) == port)

    def sentinel_masters(self) -> dict[str, str | None]:
        """Each Sentinel's idea of the master's node name (None if it does not answer)."""
        seen: dict[str, str | None] = {}
        for name in SENTINELS:
            try:
                with self.sentinel(name) as client:
                    host, port = client.sentinel_get_master_addr_by_name(self.layout.master_name)
                seen[name] = self.node_by_addr(f"{host}:{port}")
            except (redis.RedisError, TypeError, StopIteration):
                seen[name] = None
        return seen

    def redis_master(self) -> str:
        return agreed_master(self.sentinel_masters())

    def patroni_cluster(self) -> dict:
        return status_mod.patroni_cluster(self.deployment.patroni_urls, timeout=1.0)

    def patroni_role(self, role: str) -> str | None:
        return role_holder(self.patroni_cluster(), role)

    def patroni_port(self, member: str) -> int:
        return self.layout.pg_port(member)

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
        with ctx.sentinel(name) as client:
            replicas = client.sentinel_slaves(ctx.layout.master_name)
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
        *infra_checks(ctx.layout, ctx.deployment),
        *app_checks(ctx.layout, ctx.supervisor, ctx.deployment),
    ]:
        try:
            check.run()
        except (*TRANSIENT, NotReady, status_mod.NoPatroni) as exc:
            problems.append(f"{check.component}: {exc}")
    masters = []
    for node in REDIS_NODES:
        try:
            with ctx.node(node) as client:
                if client.info("replication")["role"] == "master":
                    masters.append(node)
        except redis.RedisError as exc:
            problems.append(f"{node}: {exc}")
    if len(masters) != 1:
        problems.append(f"Redis masters: {masters}")
    elif not sentinels_settled(ctx, masters[0]):
        problems.append("a Sentinel has not yet seen every replica report its role")
    view = status_mod.collect(ctx.deployment)
    for server in view["haproxy"].get("backends", []):
        if server["proxy"] in {"vote", "result", "login"} and not server["status"].startswith("UP"):
            problems.append(f"haproxy {server['proxy']}/{server['server']} {server['status']}")
    return problems


def read_snapshot(target: Deployment, ballots: list[tuple[str, str]]) -> Snapshot:
    """The drill voters' rows (one per (poll, voter) in `ballots`) and every poll's tallies
    beside its rows per option, in one snapshot of the leader."""
    conn = target.pg_connect(APP_DB)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT v.poll_id, v.voter_id, v.option, v.vote_id FROM votes AS v"
                " JOIN unnest(%s::text[], %s::text[]) AS b(poll_id, voter_id)"
                " USING (poll_id, voter_id)",
                ([p for p, _ in ballots], [v for _, v in ballots]),
            )
            rows = {(poll, voter): Row(option, vote_id) for poll, voter, option, vote_id in cur}
            cur.execute("SELECT poll_id, option, count FROM tallies")
            tallies = {(poll, option): count for poll, option, count in cur}
            cur.execute("SELECT poll_id, option, count(*) FROM votes GROUP BY poll_id, option")
            counts = {(poll, option): count for poll, option, count in cur}
    finally:
        conn.close()
    return Snapshot(rows, tallies, counts)
