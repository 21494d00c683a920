"""The local stack's programs: what supervisord runs for each member, with its environment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ops.deployment import REPO
from ops.local.deployment import app_env
from ops.local.host import PG_USER, pg_bindir, runs_as_root
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


@dataclass
class Program:
    """One supervisord [program:NAME] section."""

    name: str
    command: list[str]
    priority: int
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
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
        if self.user:
            lines.append(f"user={self.user}")
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
                    "REDIS_PASSWORD": creds["REDIS_PASSWORD"],
                    "REDIS_SENTINELS": ",".join(layout.sentinel_addrs),
                    "SENTINEL_PASSWORD": creds["SENTINEL_PASSWORD"],
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
                    "SENTINEL_PASSWORD": creds["SENTINEL_PASSWORD"],
                    "REDIS_MASTER_NAME": layout.master_name,
                    "REDIS_MASTER_HOST": master_host,
                    "REDIS_MASTER_PORT": master_port,
                    "SENTINEL_QUORUM": "2",
                    "REDIS_PASSWORD": creds["REDIS_PASSWORD"],
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
        "PATRONI_RESTAPI_PASSWORD": creds["PATRONI_RESTAPI_PASSWORD"],
        "PATRONI_ETCD3_HOSTS": layout.addr(layout.port("etcd-client")),
        "PATRONI_POSTGRESQL_LISTEN": pg,
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": pg,
        "PATRONI_POSTGRESQL_DATA_DIR": str(layout.pg_data(member)),
        "PATRONI_POSTGRESQL_BIN_DIR": str(pg_bindir()),
        "PATRONI_POSTGRESQL_PGPASS": str(layout.path("pg", f".pgpass-{member}")),
        "PATRONI_SUPERUSER_USERNAME": "postgres",
        "PATRONI_SUPERUSER_PASSWORD": creds["PG_SUPERUSER_PASSWORD"],
        "PATRONI_REPLICATION_USERNAME": "replicator",
        "PATRONI_REPLICATION_PASSWORD": creds["PG_REPLICATION_PASSWORD"],
        "PATRONI_REWIND_USERNAME": "rewind",
        "PATRONI_REWIND_PASSWORD": creds["PG_REWIND_PASSWORD"],
        "HOME": str(layout.path("pg")),
    }


def patroni_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    user = PG_USER if runs_as_root() else None
    env_user = {"USER": PG_USER, "LOGNAME": PG_USER} if user else {}
    return [
        Program(
            member,
            [venv_bin("patroni"), str(REPO / "patroni" / "patroni.yml")],
            priority=40,
            user=user,
            stopwaitsecs=40,
            env={**patroni_env(layout, creds, member), **env_user},
        )
        for member in PATRONI_MEMBERS
    ]


def haproxy_env(layout: Layout, creds: dict[str, str]) -> dict[str, str]:
    env = {
        "HAPROXY_ADMIN_SOCKET": str(layout.haproxy_socket),
        "HAPROXY_WEB_BIND": layout.addr(layout.port("web")),
        "HAPROXY_STATS_BIND": layout.addr(layout.port("stats")),
        "HAPROXY_PG_RW_BIND": layout.addr(layout.port("pg-rw")),
        "HAPROXY_PG_RO_BIND": layout.addr(layout.port("pg-ro")),
        "HAPROXY_STATS_USER": "admin",
        "HAPROXY_STATS_PASSWORD": creds["HAPROXY_STATS_PASSWORD"],
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


def app_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    """Two gunicorn instances per app and the workers; started after the schema exists."""
    base = app_env(layout, creds)
    programs = [
        Program(
            program,
            [venv_bin("gunicorn"), "-c", "python:app.gunicorn_conf", f"app.wsgi:{app}"],
            priority=70,
            autostart=False,
            stopwaitsecs=15,
            env={
                **base,
                "GUNICORN_BIND": layout.addr(port),
                "GUNICORN_WORKERS": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(layout.path("run", "prom", program)),
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
                # The worker signs no sessions: it does not get the web secret.
                **{k: v for k, v in base.items() if k != "SECRET_KEY"},
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


def monitoring_programs(layout: Layout, creds: dict[str, str]) -> list[Program]:
    """Prometheus and the exporters (Debian's binaries; see docs/OPERATIONS-monitoring.md)."""
    prom_dir = layout.path("prometheus")
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
        ),
        # Multi-target exporters: Prometheus names each Redis node / Sentinel in ?target=.
        Program(
            "redis-exporter",
            [
                "prometheus-redis-exporter",
                "-web.listen-address",
                layout.addr(layout.port("redis-exporter")),
                "-check-single-streams",
                "votes",
            ],
            priority=60,
            env={"REDIS_ADDR": "", "REDIS_PASSWORD": creds["REDIS_PASSWORD"]},
        ),
        Program(
            "sentinel-exporter",
            [
                "prometheus-redis-exporter",
                "-web.listen-address",
                layout.addr(layout.port("sentinel-exporter")),
            ],
            priority=60,
            env={"REDIS_ADDR": "", "REDIS_PASSWORD": creds["SENTINEL_PASSWORD"]},
        ),
    ]
    for i, member in enumerate(PATRONI_MEMBERS, start=1):
        progs.append(
            Program(
                f"postgres-exporter-{i}",
                [
                    "prometheus-postgres-exporter",
                    f"--web.listen-address={layout.addr(layout.port('postgres-exporter', member))}",
                ],
                priority=60,
                env={
                    "DATA_SOURCE_URI": layout.addr(layout.pg_port(member))
                    + "/postgres?sslmode=disable",
                    "DATA_SOURCE_USER": "postgres",
                    "DATA_SOURCE_PASS": creds["PG_SUPERUSER_PASSWORD"],
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
        *app_programs(layout, creds),
    ]
