"""Real single-node servers for the fast test tier: Redis (+1 replica, 1 Sentinel) and Postgres."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from ops.local.host import pg_bindir
from ops.wait import wait_for

PG_USER = "postgres"


def free_port(start: int = 24000, end: int = 28000) -> int:
    """A free TCP port below the ephemeral range, so nothing outgoing grabs it meanwhile."""
    for _ in range(200):
        port = secrets.randbelow(end - start) + start
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


@dataclass
class RedisCluster:
    """A master, one replica and one Sentinel: the smallest setup where WAIT 1 can succeed."""

    master_port: int
    replica_port: int
    sentinel_port: int
    password: str
    master_name: str = "mymaster"

    def client(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or self.master_port, password=self.password)


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisCluster]:
    """Start redis master + replica + sentinel in a temp dir; stop them by PID afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="vote-redis-"))
    password = secrets.token_hex(12)
    cluster = RedisCluster(free_port(), free_port(), free_port(), password)
    procs: list[subprocess.Popen] = []
    common = [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        password,
        "--masterauth",
        password,
    ]
    try:
        for port, extra in [
            (cluster.master_port, []),
            (cluster.replica_port, ["--replicaof", "127.0.0.1", str(cluster.master_port)]),
        ]:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--dir", str(node_dir), *common, *extra],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            )
        sentinel_conf = workdir / "sentinel.conf"
        sentinel_conf.write_text(
            f"port {cluster.sentinel_port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {cluster.master_port} 1\n"
            f"sentinel auth-pass mymaster {password}\n"
            f"requirepass {password}\n"
        )
        procs.append(
            subprocess.Popen(
                ["redis-server", str(sentinel_conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
        wait_for(lambda: cluster.client().ping(), "redis master", 20)
        wait_for(
            lambda: (
                cluster.client().info("replication")["connected_slaves"] >= 1
                and cluster.client(cluster.replica_port).info("replication")["master_link_status"]
                == "up"
            ),
            "redis replica",
            20,
        )
        wait_for(
            lambda: redis.Redis(
                port=cluster.sentinel_port, password=password
            ).sentinel_get_master_addr_by_name("mymaster"),
            "sentinel",
            20,
        )
        yield cluster
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    return ["runuser", "-u", PG_USER, "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PostgresServer:
    port: int
    password: str
    user: str = "postgres"

    def url(
        self, database: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        return (
            f"postgresql+psycopg2://{user or self.user}:{password or self.password}"
            f"@127.0.0.1:{self.port}/{database}"
        )


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start on a free port in a temp dir; stopped (fast) afterwards."""
    bindir = pg_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="vote-pg-"))
    server = PostgresServer(port=free_port(), password=secrets.token_hex(12))
    datadir = workdir / "data"
    pwfile = workdir / "pw"
    pwfile.write_text(server.password)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        for path in (workdir, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    workdir.chmod(0o700)
    try:
        subprocess.run(
            _as_pg_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    server.user,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_pg_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(datadir),
                    "-l",
                    str(workdir / "log"),
                    "-w",
                    "start",
                    "-o",
                    f"-p {server.port} -c listen_addresses=127.0.0.1"
                    f" -c unix_socket_directories={workdir}"
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        subprocess.run(
            _as_pg_user(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
