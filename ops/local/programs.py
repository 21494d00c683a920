"""The local stack's programs: what supervisord runs for each member, with its environment."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ops import secrets
from ops.deployment import REPO
from ops.local.deployment import app_env
from ops.local.host import pg_bindir
from ops.local.layout import (
    HOST,
    PATRONI_MEMBERS,
    REDIS_NODES,
    SENTINELS,
    WORKERS,
    Layout,
    venv_bin,
)

# Lower for a loopback stack than production (see README "Tuning failover"): a silent
# master is declared down after 1 s, so a crash costs about 2 s of Redis writes.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000


# The Go programs (etcd, Prometheus, the exporters) collect garbage when their heap has grown
# by half rather than doubled: ~20 MiB less for the idle stack (docs/BENCHMARKS.md, memory).
GO_MEMORY = {"GOGC": "50"}


@dataclass
class Program:
    """One supervisord [program:NAME] section."""

    name: str
    command: list[str]
    priority: int
    env: dict[str, str] = field(default_factory=dict)
    autostart: bool = True
    autorestart: bool = True
    stopwaitsecs: int = 10
    stopsignal: str = "TERM"

    def section(self, layout: Layout) -> str:
        env = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(self.env.items()))
        lines = [
            f"[program:{self.name}]",
            "command=" + " ".join(_quote(part) for part in self.command),
            f"priority={self.priority}",
            f"autostart={str(self.autostart).lower()}",
            f"autorestart={str(self.autorestart).lower()}",
            "startsecs=1",
            "startretries=5",
            f"stopsignal={self.stopsignal}",
            f"stopwaitsecs={self.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={layout.log(self.name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "redirect_stderr=true",
            f"directory={layout.state_dir}",
        ]
        if env:
            lines.append(f"environment={env}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("%", "%%").replace('"', '\\"')


def _quote(part: str) -> str:
    part = part.replace("%", "%%")
    return f'"{part}"' if re.search(r"\s", part) else part


def sentinel_file(layout: Layout, sentinel: str) -> Path:
    return layout.path("sentinel", sentinel, "sentinel.conf")


def current_redis_master(layout: Layout) -> str:
    """The master Sentinel last recorded (it rewrites its file), else redis-1 on a new stack."""
    for sentinel in SENTINELS:
        path = sentinel_file(layout, sentinel)
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if parts[:3] == ["sentinel", "monitor", layout.master_name] and len(parts) >= 5:
                    return f"{parts[3]}:{parts[4]}"
    return layout.addr(layout.redis_port(REDIS_NODES[0]))


def etcd_program(layout: Layout) -> Program:
    client = f"http://{layout.addr(layout.port('etcd-client'))}"
    peer = f"http://{layout.addr(layout.port('etcd-peer'))}"
    return Program(
        "etcd-1",
        [
            "etcd",
            "--name",
            "etcd-1",
            "--data-dir",
            str(layout.path("etcd")),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"etcd-1={peer}",
            "--initial-cluster-state",
            "new",
            "--auto-compaction-retention",
            "1",
        ],
        priority=10,
        env=dict(GO_MEMORY),
    )


def redis_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    initial_master = current_redis_master(layout)
    programs = []
    for node in REDIS_NODES:
        port = layout.redis_port(node)
        programs.append(
            Program(
                node,
                ["sh", str(REPO / "redis" / "start.sh")],
                priority=20,
                # Never restarted behind Sentinel's back: `votectl start` brings a node back as
                # a replica of the current master (redis/start.sh).
                autorestart=False,
                env={
                    "REDIS_CONF": str(REPO / "redis" / "redis.conf"),
                    "REDIS_PORT": str(port),
                    "REDIS_DIR": str(layout.path("redis", node)),
                    "REDIS_BIND": HOST,
                    "REDIS_ANNOUNCE_IP": HOST,
                    "REDIS_SECRETS_DIR": str(layout.secrets_dir),
                    "REDIS_SENTINELS": ",".join(layout.sentinel_addrs),
                    "REDIS_MASTER_NAME": layout.master_name,
                    "REDIS_INITIAL_MASTER": initial_master,
                },
            )
        )
    return programs


def sentinel_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    master_host, _, master_port = current_redis_master(layout).rpartition(":")
    programs = []
    for sentinel in SENTINELS:
        out = sentinel_file(layout, sentinel)
        programs.append(
            Program(
                sentinel,
                [
                    "sh",
                    str(REPO / "sentinel" / "render.sh"),
                    str(REPO / "sentinel" / "sentinel.conf"),
                    str(out),
                    "exec",
                ],
                priority=30,
                env={
                    "SENTINEL_PORT": str(layout.sentinel_port(sentinel)),
                    "SENTINEL_BIND": HOST,
                    "SENTINEL_DIR": str(out.parent),
                    "SENTINEL_ANNOUNCE_IP": HOST,
                    "SENTINEL_SECRETS_DIR": str(layout.secrets_dir),
                    "REDIS_MASTER_NAME": layout.master_name,
                    "REDIS_MASTER_HOST": master_host,
                    "REDIS_MASTER_PORT": master_port,
                    "SENTINEL_QUORUM": "2",
                    "SENTINEL_DOWN_AFTER_MS": str(SENTINEL_DOWN_AFTER_MS),
                    "SENTINEL_FAILOVER_TIMEOUT_MS": str(SENTINEL_FAILOVER_TIMEOUT_MS),
                },
            )
        )
    return programs


def patroni_env(layout: Layout, creds: dict[str, str], member: str) -> dict[str, str]:
    api = layout.addr(layout.api_port(member))
    pg = layout.addr(layout.pg_port(member))
    return {
        "PATRONI_NAME": member,
        "PATRONI_RESTAPI_LISTEN": api,
        "PATRONI_RESTAPI_CONNECT_ADDRESS": api,
        "PATRONI_RESTAPI_USERNAME": "patroni",
        "PATRONI_RESTAPI_PASSWORD": creds["patroni-restapi"],
        "PATRONI_ETCD3_HOSTS": layout.addr(layout.port("etcd-client")),
        "PATRONI_ETCD3_USERNAME": "patroni",
        "PATRONI_ETCD3_PASSWORD": creds["etcd-patroni"],
        "PATRONI_POSTGRESQL_LISTEN": pg,
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": pg,
        "PATRONI_POSTGRESQL_DATA_DIR": str(layout.pg_data(member)),
        "PATRONI_POSTGRESQL_BIN_DIR": str(pg_bindir()),
        "PATRONI_POSTGRESQL_PGPASS": str(layout.path("pg", f".pgpass-{member}")),
        "PATRONI_SUPERUSER_USERNAME": "postgres",
        "PATRONI_SUPERUSER_PASSWORD": creds["pg-superuser"],
        "PATRONI_REPLICATION_USERNAME": "replicator",
        "PATRONI_REPLICATION_PASSWORD": creds["pg-replication"],
        "PATRONI_REWIND_USERNAME": "rewind",
        "PATRONI_REWIND_PASSWORD": creds["pg-rewind"],
        "HOME": str(layout.path("pg")),
    }


def patroni_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    return [
        Program(
            member,
            [venv_bin("patroni"), str(REPO / "patroni" / "patroni.yml")],
            priority=40,
            # Started by `votectl up` once etcd's authentication is on (ops/etcd_auth.py).
            autostart=False,
            stopwaitsecs=40,
            env=patroni_env(layout, creds, member),
        )
        for member in PATRONI_MEMBERS
    ]


def haproxy_env(layout: Layout, creds: dict[str, str]) -> dict[str, str]:
    env = {
        "HAPROXY_ADMIN_SOCKET": str(layout.haproxy_socket),
        "HAPROXY_WEB_BIND": layout.addr(layout.port("web")),
        "HAPROXY_HTTPS_BIND": layout.addr(layout.port("https")),
        "HAPROXY_HTTPS_PORT": str(layout.port("https")),
        "HAPROXY_TLS_CERT": str(layout.secrets_dir / secrets.TLS_PEM),
        "HAPROXY_STATS_BIND": layout.addr(layout.port("stats")),
        "HAPROXY_METRICS_BIND": layout.addr(layout.port("haproxy-metrics")),
        "HAPROXY_PG_RW_BIND": layout.addr(layout.port("pg-rw")),
        "HAPROXY_PG_RO_BIND": layout.addr(layout.port("pg-ro")),
        "HAPROXY_STATS_USER": "admin",
        "HAPROXY_STATS_PASSWORD": creds["haproxy-stats"],
        # The local stack's front listens on loopback only, where its own drills and
        # benchmarks run: they are exempt from the per-client limits (127.0.0.2 is not).
        "HAPROXY_LIMITS_EXEMPT": f"{HOST}/32",
    }
    for program, app, port in layout.app_instances:
        env[f"{app.upper()}{program.rsplit('-', 1)[1]}_ADDR"] = layout.addr(port)
    for i, member in enumerate(PATRONI_MEMBERS, start=1):
        env[f"PG{i}_ADDR"] = layout.addr(layout.pg_port(member))
        env[f"PG{i}_API_PORT"] = str(layout.api_port(member))
    return env


def haproxy_program(layout: Layout, creds: dict[str, str]) -> Program:
    return Program(
        "haproxy",
        ["haproxy", "-db", "-f", str(REPO / "haproxy" / "haproxy.cfg")],
        priority=50,
        env=haproxy_env(layout, creds),
    )


def app_programs(layout: Layout) -> list[Program]:
    """Two instances per app (one process each) and the workers; started after the schema
    exists."""
    programs = [
        Program(
            program,
            [venv_bin("python"), "-m", "app.serve", app],
            priority=70,
            autostart=False,
            stopwaitsecs=25,
            env={
                **app_env(layout, app),
                "WEB_BIND": layout.addr(port),
                "METRICS_BIND": layout.addr(layout.app_metrics_port(program)),
            },
        )
        for program, app, port in layout.app_instances
    ]
    programs += [
        Program(
            worker,
            [venv_bin("python"), "-m", "worker"],
            priority=80,
            autostart=False,
            stopwaitsecs=15,
            env={
                **app_env(layout, "worker"),
                "WORKER_NAME": worker,
                "WORKER_METRICS_PORT": str(layout.port("worker-metrics", worker)),
            },
        )
        for worker in WORKERS
    ]
    # Scheduled backups (hourly, 24 kept) into the state dir: the same command operators run.
    programs.append(
        Program(
            "backup",
            [
                venv_bin("votectl"),
                "--state-dir",
                str(layout.state_dir),
                "--base-port",
                str(layout.base_port),
                "backup",
                "--every",
                "3600",
                "--keep",
                "24",
                "--metrics",
                layout.addr(layout.port("backup-metrics")),
            ],
            priority=90,
            autostart=False,
            stopwaitsecs=30,
        )
    )
    return programs


def _exporter_passwords(layout: Layout, creds: dict[str, str]) -> dict[str, str]:
    """redis://HOST:PORT -> password, for the Redis nodes and the Sentinels.

    One redis_exporter scrapes both: it logs in as one user (-redis.user) everywhere, so the
    exporter's Redis user and its Sentinel user must have the same name; the passwords differ
    and come from this map."""
    who = secrets.IDENTITIES["exporter"]
    if who.redis_user != who.sentinel_user:
        raise ValueError(
            f"one redis_exporter logs in as one user: Redis user {who.redis_user!r} and "
            f"Sentinel user {who.sentinel_user!r} must be the same"
        )
    nodes = [layout.addr(layout.redis_port(n)) for n in REDIS_NODES]
    passwords = {f"redis://{addr}": creds[who.redis_secret] for addr in nodes}
    passwords.update(
        {f"redis://{addr}": creds[who.sentinel_secret] for addr in layout.sentinel_addrs}
    )
    return passwords


def exporter_password_file(layout: Layout) -> Path:
    """The redis_exporter's password file."""
    return layout.path("run", "redis-exporter-passwords.json")


def write_exporter_passwords(layout: Layout, creds: dict[str, str]) -> None:
    """A password for each node and Sentinel the exporter may scrape, and no other: a caller
    naming another target in ?target= gets no password sent there."""
    exporter_password_file(layout).write_text(json.dumps(_exporter_passwords(layout, creds)))


# postgres_exporter 0.11.1 runs its two "collector" package collectors (pg_database_size_bytes,
# pg_stat_bgwriter_*) on a connection pool of their own: a second idle backend per member
# (~3 MiB PSS each). Nothing reads their metrics (docs/OPERATIONS-monitoring.md), so they are
# off and each exporter holds one backend.
POSTGRES_EXPORTER_FLAGS = ("--no-collector.database", "--no-collector.bgwriter")


def monitoring_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    """Prometheus and the exporters (Debian's binaries; see docs/OPERATIONS-monitoring.md)."""
    prom_dir = layout.path("prometheus")
    monitor = secrets.IDENTITIES["exporter"]
    progs = [
        Program(
            "prometheus",
            [
                "prometheus",
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address={layout.addr(layout.port('prometheus'))}",
            ],
            priority=60,
            env=dict(GO_MEMORY),
        ),
        # One multi-target exporter for the Redis nodes and the Sentinels (a second process
        # cost ~7 MiB PSS): Prometheus names each in ?target=; passwords only for the targets
        # in its file (write_exporter_passwords), the Sentinels' differ from the nodes'.
        Program(
            "redis-exporter",
            [
                "prometheus-redis-exporter",
                "-web.listen-address",
                layout.addr(layout.port("redis-exporter")),
                "-redis.user",
                monitor.redis_user,
                "-redis.password-file",
                str(exporter_password_file(layout)),
            ],
            priority=60,
            env={"REDIS_ADDR": "", **GO_MEMORY},
        ),
    ]
    for i, member in enumerate(PATRONI_MEMBERS, start=1):
        progs.append(
            Program(
                f"postgres-exporter-{i}",
                [
                    "prometheus-postgres-exporter",
                    f"--web.listen-address={layout.addr(layout.port('postgres-exporter', member))}",
                    *POSTGRES_EXPORTER_FLAGS,
                ],
                priority=60,
                env={
                    "DATA_SOURCE_URI": layout.addr(layout.pg_port(member))
                    + "/postgres?sslmode=disable",
                    "DATA_SOURCE_USER": monitor.pg_role,
                    "DATA_SOURCE_PASS_FILE": str(layout.secrets_dir / monitor.pg_secret),
                    **GO_MEMORY,
                },
            )
        )
    return progs


def programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    """Every program of the stack, in start order."""
    return [
        etcd_program(layout),
        *redis_programs(layout, creds),
        *sentinel_programs(layout, creds),
        *patroni_programs(layout, creds),
        haproxy_program(layout, creds),
        *monitoring_programs(layout, creds),
        *app_programs(layout),
    ]
