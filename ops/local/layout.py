"""Where every piece of the local stack lives: ports (from one base port) and paths."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from core.config import DEFAULT_MASTER_NAME
from ops.deployment import DEFAULT_BASE_PORT

# Keep every port below Linux's ephemeral range (32768+): outgoing connections of other
# programs could otherwise grab a stack port between two runs.
MAX_PORT = 32767
HOST = "127.0.0.1"
# The apps' database and the role that owns it.
APP_DB = "votes"
APP_ROLE = "vote"

REDIS_NODES = ("redis-1", "redis-2", "redis-3")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
PATRONI_MEMBERS = ("patroni-1", "patroni-2", "patroni-3")
APP_NAMES = ("vote", "result", "login")
APP_INSTANCES = 2
WORKERS = ("worker-1", "worker-2")

# Offsets from the base port. Grouped by hundreds so a port tells what it is.
_OFFSETS = {
    "web": 80,
    "https": 443,
    "redis": 100,
    "sentinel": 200,
    "etcd-client": 301,
    "etcd-peer": 302,
    "stats": 404,
    "haproxy-metrics": 405,
    "pg-rw": 500,
    "pg-ro": 501,
    "postgres": 510,
    "patroni-api": 520,
    "vote": 600,
    "result": 610,
    "login": 620,
    "worker-metrics": 630,
    "backup-metrics": 640,
    # The web apps' metrics (each instance serves them on a port of its own, never on the
    # port HAProxy's web front routes to): 651, 652, ... in app_instances order.
    "app-metrics": 650,
    "prometheus": 909,
    # One redis_exporter for the Redis nodes and the Sentinels (921 was a second one's).
    "redis-exporter": 920,
    "postgres-exporter": 930,
}


class LayoutError(Exception):
    """The requested state dir or base port cannot work."""


def _index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


@dataclass(frozen=True)
class Layout:
    """Ports and paths of one local stack, derived from a state dir and a base port."""

    state_dir: Path
    base_port: int = DEFAULT_BASE_PORT
    master_name: str = DEFAULT_MASTER_NAME

    def __post_init__(self) -> None:
        highest = MAX_PORT - max(_OFFSETS.values()) - 9
        if not 1024 <= self.base_port <= highest:
            raise LayoutError(
                f"base port {self.base_port} is out of range: choose one between "
                f"1024 and {highest} (stack ports must stay below 32768)"
            )

    # ports ---------------------------------------------------------------------------------
    def port(self, kind: str, name: str | None = None) -> int:
        """The port of `kind` (e.g. "web"), or of member `name` for per-member kinds."""
        return self.base_port + _OFFSETS[kind] + (_index(name) if name else 0)

    def redis_port(self, node: str) -> int:
        return self.port("redis", node)

    def sentinel_port(self, sentinel: str) -> int:
        return self.port("sentinel", sentinel)

    def pg_port(self, member: str) -> int:
        return self.port("postgres", member)

    def api_port(self, member: str) -> int:
        return self.port("patroni-api", member)

    def app_port(self, app: str, index: int) -> int:
        return self.base_port + _OFFSETS[app] + index

    def addr(self, port: int) -> str:
        return f"{HOST}:{port}"

    @property
    def sentinel_addrs(self) -> list[str]:
        return [self.addr(self.sentinel_port(s)) for s in SENTINELS]

    def app_metrics_port(self, program: str) -> int:
        """Where the app instance `program` (e.g. "vote-1") serves its Prometheus metrics."""
        names = [name for name, _, _ in self.app_instances]
        return self.base_port + _OFFSETS["app-metrics"] + names.index(program) + 1

    @property
    def app_instances(self) -> list[tuple[str, str, int]]:
        """(program name, app name, port) of every gunicorn instance."""
        return [
            (f"{app}-{i}", app, self.app_port(app, i))
            for app in APP_NAMES
            for i in range(1, APP_INSTANCES + 1)
        ]

    def all_ports(self) -> dict[int, str]:
        """Every port the stack listens on, with the component that owns it."""
        ports = {
            self.port(k): k
            for k in (
                "web",
                "https",
                "stats",
                "haproxy-metrics",
                "pg-rw",
                "pg-ro",
                "etcd-client",
                "etcd-peer",
                "prometheus",
                "redis-exporter",
                "backup-metrics",
            )
        }
        for node in REDIS_NODES:
            ports[self.redis_port(node)] = node
        for sentinel in SENTINELS:
            ports[self.sentinel_port(sentinel)] = sentinel
        for member in PATRONI_MEMBERS:
            ports[self.pg_port(member)] = f"{member} (postgres)"
            ports[self.api_port(member)] = f"{member} (REST API)"
            ports[self.port("postgres-exporter", member)] = f"postgres-exporter-{_index(member)}"
        for number, (program, _, port) in enumerate(self.app_instances, start=1):
            ports[port] = program
            ports[self.base_port + _OFFSETS["app-metrics"] + number] = f"{program} (metrics)"
        for worker in WORKERS:
            ports[self.port("worker-metrics", worker)] = worker
        return ports

    # paths ---------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    @property
    def secrets_dir(self) -> Path:
        """Every password and the TLS certificate, one file each (ops/secrets.py)."""
        return self.path("secrets")

    @property
    def supervisor_conf(self) -> Path:
        return self.path("supervisord.conf")

    @property
    def supervisor_socket(self) -> Path:
        return self.path("run", "supervisor.sock")

    @property
    def haproxy_socket(self) -> Path:
        return self.path("run", "haproxy.sock")

    def log(self, program: str) -> Path:
        return self.path("logs", f"{program}.log")

    def pg_data(self, member: str) -> Path:
        return self.path("pg", member)

    # urls ----------------------------------------------------------------------------------
    def urls(self) -> dict[str, str]:
        web = f"https://{HOST}:{self.port('https')}"
        return {
            "web": f"{web}/",
            "results": f"{web}/result",
            "login": f"{web}/login",
            "stats": f"https://{HOST}:{self.port('stats')}/",
            "prometheus": f"http://{HOST}:{self.port('prometheus')}/",
        }


def venv_bin(name: str) -> str:
    """A program installed next to the running interpreter (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise LayoutError(f"{name} not found next to {sys.executable}: run ./dev bootstrap")
    return found
