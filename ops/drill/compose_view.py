"""A docker compose deployment as drills see it from the host: members, roles, wholeness.

The Sentinels and Patroni announce service names (redis1, patroni2...), which only Docker's
DNS resolves; from the host every name is translated to the container's address on the
project's network, read from `docker inspect` each time (addresses change on restarts).
The web front, the stats page and Postgres are reached on their published ports.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis import Redis

from ops import status as status_mod
from ops.deployment import Deployment
from ops.drill.docker_engine import Engine
from ops.drill.view import agreed_master, role_holder
from ops.wait import NotReady

REDIS_NODES = ("redis1", "redis2", "redis3")
SENTINELS = ("sentinel1", "sentinel2", "sentinel3")
PATRONI_MEMBERS = ("patroni1", "patroni2", "patroni3")
APPS = ("vote1", "vote2", "result1", "result2", "login1", "login2")
# Services that run once and exit, or only on request.
ONE_SHOT = frozenset({"secrets", "etcd-auth", "migrate", "votectl"})
SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"


@dataclass(frozen=True)
class ComposeDeployment(Deployment):
    """A Deployment whose member names are translated to container addresses."""

    hosts: dict[str, str] = field(default_factory=dict)

    def sentinel_client(self, host: str, port: int, timeout: float = 1.0) -> Redis:
        return super().sentinel_client(self.hosts.get(host, host), port, timeout)

    def node_client(self, host: str, port: int, timeout: float = 1.0) -> Redis:
        return super().node_client(self.hosts.get(host, host), port, timeout)


@dataclass
class Published:
    """Where the host reaches the project: its published ports on 127.0.0.1."""

    https: int
    stats: int
    pg_rw: int


class ComposeView:
    """One compose project: its containers, roles and published endpoints."""

    def __init__(self, engine: Engine, project: str, published: Published) -> None:
        self.engine = engine
        self.project = project
        self.published = published
        self.network = f"{project}_default"
        self._secrets: dict[str, str] = {}
        self._ca: Path | None = None

    # --- containers -------------------------------------------------------------------------

    def containers(self) -> dict[str, str]:
        """Container name by service, for this project."""
        return self.engine.containers(f"{PROJECT_LABEL}={self.project}", SERVICE_LABEL)

    def container(self, service: str) -> str:
        try:
            return self.containers()[service]
        except KeyError:
            raise NotReady(f"no container for service {service}") from None

    def addresses(self) -> dict[str, str]:
        """Each service's address on the project network (services cut off are left out)."""
        names = self.containers()
        hosts = {}
        for info in self.engine.inspect(*names.values()):
            service = info["Config"]["Labels"].get(SERVICE_LABEL)
            net = (info["NetworkSettings"]["Networks"] or {}).get(self.network)
            if service and net and net.get("IPAddress"):
                hosts[service] = net["IPAddress"]
        return hosts

    def secret(self, name: str) -> str:
        """A file of the secrets volume, read through the one-shot secrets container."""
        if name not in self._secrets:
            self._secrets[name] = self.engine.read_file(
                self.container("secrets"), f"/run/secrets/{name}"
            )
        return self._secrets[name]

    def ca_file(self) -> str:
        """The CA of the project's self-signed certificate, as a file HTTPS clients trust."""
        if self._ca is None:
            with tempfile.NamedTemporaryFile(
                "w", prefix="ha-vote-ca-", suffix=".crt", delete=False
            ) as handle:
                handle.write(self.secret("tls-ca.crt") + "\n")
            self._ca = Path(handle.name)
        return str(self._ca)

    def close(self) -> None:
        """Remove the CA file ca_file() wrote."""
        if self._ca is not None:
            self._ca.unlink(missing_ok=True)
            self._ca = None

    # --- the deployment ---------------------------------------------------------------------

    def deployment(self) -> ComposeDeployment:
        """The project as operators see it: the admin users, the web front over HTTPS."""
        hosts = self.addresses()
        superuser = self.secret("pg-superuser")
        web = f"https://127.0.0.1:{self.published.https}"
        return ComposeDeployment(
            sentinels=tuple((s, 26379) for s in SENTINELS),
            redis_username="admin",
            redis_password=self.secret("redis-admin"),
            sentinel_username="admin",
            sentinel_password=self.secret("sentinel-admin"),
            patroni_urls=tuple(f"http://{hosts[m]}:8008" for m in PATRONI_MEMBERS if m in hosts),
            haproxy_stats_url=f"https://127.0.0.1:{self.published.stats}/",
            haproxy_stats_auth=("admin", self.secret("haproxy-stats")),
            web_url=web,
            web_verify=self.ca_file(),
            superuser_url=(
                f"postgresql+psycopg2://postgres:{superuser}@127.0.0.1:{self.published.pg_rw}/postgres"
            ),
            urls={"web": web},
            hosts=hosts,
        )

    def sentinel_masters(self) -> dict[str, str | None]:
        """Each Sentinel's idea of the master (a service name; None if it does not answer)."""
        target = self.deployment()
        seen: dict[str, str | None] = {}
        for name in SENTINELS:
            try:
                with target.sentinel_client(name, 26379, 0.5) as client:
                    host, _port = client.sentinel_get_master_addr_by_name(target.master_name)
                seen[name] = host
            except (redis.RedisError, TypeError):
                seen[name] = None
        return seen

    def redis_master(self) -> str:
        return agreed_master(self.sentinel_masters())

    def master_client(self) -> Redis:
        return self.deployment().node_client(self.redis_master(), 6379, 2.0)

    def patroni_role(self, role: str) -> str | None:
        cluster = status_mod.patroni_cluster(self.deployment().patroni_urls, timeout=1.0)
        return role_holder(cluster, role)


# --- wholeness ------------------------------------------------------------------------------


def _container_problems(view: ComposeView) -> list[str]:
    problems = []
    for info in view.engine.inspect(*view.containers().values()):
        service = info["Config"]["Labels"].get(SERVICE_LABEL, "?")
        if service in ONE_SHOT:
            continue
        state = info["State"]
        health = (state.get("Health") or {}).get("Status")
        if not state.get("Running"):
            problems.append(f"{service} is {state.get('Status')}")
        elif health not in (None, "healthy"):
            problems.append(f"{service} is {health}")
        if view.network not in (info["NetworkSettings"]["Networks"] or {}):
            problems.append(f"{service} is cut off from {view.network}")
    return problems


def _redis_problems(view: ComposeView, target: ComposeDeployment, status: dict) -> list[str]:
    problems = []
    masters = []
    for node in REDIS_NODES:
        try:
            with target.node_client(node, 6379) as client:
                if client.info("replication")["role"] == "master":
                    masters.append(node)
        except redis.RedisError as exc:
            problems.append(f"{node}: {exc}")
    if len(masters) != 1:
        return [*problems, f"Redis masters: {masters}"]
    if not status["sentinel"]["quorum_ok"]:
        problems.append(f"Sentinels: {status['sentinel']['sentinels']}")
    for name in SENTINELS:
        try:
            with target.sentinel_client(name, 26379) as client:
                replicas = client.sentinel_slaves(target.master_name)
        except redis.RedisError as exc:
            problems.append(f"{name}: {exc}")
            continue
        # A Sentinel must have seen every replica report its role (see ops.drill.view).
        healthy = [
            r
            for r in replicas
            if r.get("role-reported") == "slave"
            and r.get("master-link-status") == "ok"
            and r.get("master-host") == masters[0]
            and not r.get("is_sdown")
        ]
        if len(healthy) < len(REDIS_NODES) - 1:
            problems.append(f"{name} sees {len(healthy)} healthy replicas of {masters[0]}")
    return problems


def _postgres_problems(status: dict) -> list[str]:
    pg = status["postgres"]
    if pg.get("error"):
        return [f"Patroni: {pg['error']}"]
    problems = []
    if not pg["leader"] or not pg["sync_standby"]:
        problems.append(f"Patroni: leader {pg['leader']}, sync standby {pg['sync_standby']}")
    settled = [m for m in pg["members"] if m["state"] in {"running", "streaming"}]
    if len(settled) != len(PATRONI_MEMBERS):
        problems.append(f"Patroni members: {[(m['name'], m['state']) for m in pg['members']]}")
    return problems


def _haproxy_problems(status: dict) -> list[str]:
    servers = status["haproxy"].get("backends", [])
    if not servers:
        return [f"HAProxy: {status['haproxy'].get('error', 'no servers')}"]
    problems = [
        f"haproxy {s['proxy']}/{s['server']} {s['status']}"
        for s in servers
        if s["proxy"] in {"vote", "result", "login"} and not s["status"].startswith("UP")
    ]
    leaders = [s for s in servers if s["proxy"] == "postgres_rw" and s["status"].startswith("UP")]
    if len(leaders) != 1:
        problems.append(f"haproxy routes writes to {len(leaders)} members")
    return problems


def whole_problems(view: ComposeView) -> list[str]:
    """What keeps the project from being whole: every container running, healthy and on its
    network, one Redis master that every Sentinel knows with both replicas, a Patroni leader
    with a synchronous standby and a streaming replica, HAProxy routing to every instance."""
    problems = _container_problems(view)
    if problems:
        return problems
    target = view.deployment()
    status = status_mod.collect(target)
    return [
        *_redis_problems(view, target, status),
        *_postgres_problems(status),
        *_haproxy_problems(status),
    ]
