"""Shared fixtures: real Redis (master, replica, Sentinel) and a real Postgres for the fast tier."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core.db import Database
from core.migrate import upgrade
from core.polls import FIRST_POLL_ID, store
from core.polls.published import publish
from core.replicated import WaitPolicy
from ops.db import ensure_role_and_database
from ops.local.deployment import app_env as local_app_env
from ops.local.deployment import local_deployment, stack_secrets
from ops.local.layout import Layout
from tests.servers import PostgresServer, RedisCluster, postgres_server, redis_cluster

APP_ROLE = "vote"
APP_DB = "votes"


@pytest.fixture(scope="session")
def redis_servers() -> Iterator[RedisCluster]:
    with redis_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def database_url(pg_server: PostgresServer) -> str:
    """The app database, created through the same provisioning code the stack uses."""
    password = secrets.token_hex(12)
    ensure_role_and_database(pg_server.url(), APP_ROLE, password, APP_DB)
    url = pg_server.url(APP_DB, user=APP_ROLE, password=password)
    upgrade(url)
    return url


@pytest.fixture
def app_env(redis_servers: RedisCluster, database_url: str) -> dict[str, str]:
    """Environment for Config.from_env() pointing at the fast-tier servers."""
    return {
        "SECRET_KEY": secrets.token_hex(16),
        "REDIS_SENTINELS": f"127.0.0.1:{redis_servers.sentinel_port}",
        "REDIS_MASTER_NAME": redis_servers.master_name,
        "REDIS_PASSWORD": redis_servers.password,
        "SENTINEL_PASSWORD": redis_servers.password,
        "DATABASE_URL": database_url,
        "DATABASE_RO_URL": database_url,
        "POLL_QUESTION": "Cats or dogs?",
        "POLL_OPTIONS": "Cats,Dogs",
        # The apps are reached over plain HTTP here (HTTPS ends at HAProxy in deployments).
        "SESSION_COOKIE_SECURE": "false",
    }


@pytest.fixture
def clean_data(redis_servers: RedisCluster, database_url: str) -> Iterator[None]:
    """Empty Redis and the app tables before a test, so tests do not see each other's votes;
    only the first poll (migration 0002) is left, open and published as the worker would."""
    client = redis_servers.client()
    client.flushall()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE votes, tallies"))
        conn.execute(text("DELETE FROM polls WHERE id <> :first"), {"first": FIRST_POLL_ID})
        conn.execute(text("UPDATE polls SET state = 'open', closed_at = NULL, closes_at = NULL"))
        conn.execute(text("DELETE FROM accounts"))
        conn.execute(text("ALTER SEQUENCE accounts_id_seq RESTART"))
    engine.dispose()
    pg = Database(database_url, size=1)
    publish(client, store.get(pg, FIRST_POLL_ID), WaitPolicy(), force=True)
    pg.dispose()
    yield


@pytest.fixture
def pg(database_url: str) -> Iterator[Database]:
    """The app database through the pool the apps and workers use (core/db.py)."""
    database = Database(database_url)
    yield database
    database.dispose()


# --- the whole local stack (HA tier) -------------------------------------------------------

# Override when several suites share a machine (each stack needs ports base..base+1000).
STACK_BASE_PORT = int(os.environ.get("VOTE_TEST_BASE_PORT", "21000"))


class StackHandle:
    """The session's local stack: its layout, passwords, and the real votectl CLI."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.creds = stack_secrets(layout)
        self.env = local_app_env(layout)
        self.deployment = local_deployment(layout, self.creds)
        self.urls = {k: v.rstrip("/") for k, v in layout.urls().items()}
        # HTTPS clients trust the stack's self-signed certificate (its CA) and nothing else.
        self.verify = self.deployment.web_verify

    def votectl(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        cmd = [
            VOTECTL,
            "--state-dir",
            str(self.layout.state_dir),
            "--base-port",
            str(self.layout.base_port),
            *args,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def status(self) -> dict:
        return json.loads(self.votectl("status", "--json", check=False).stdout)

    def sql(self, statement: str, *params, database: str = "postgres", port_kind: str = "pg-rw"):
        """Run one statement as the superuser through HAProxy; rows if it returns any."""
        conn = self.deployment.pg_connect(database, port=self.layout.port(port_kind))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


VOTECTL = str(Path(sys.executable).parent / "votectl")


def make_state_dir(prefix: str) -> Path:
    """A state dir the postgres user can reach (pytest's tmp_path lives under a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    """The whole local stack with the apps, started once for the session through votectl."""
    layout = Layout(make_state_dir("vote-stack-"), STACK_BASE_PORT)
    handle = StackHandle(layout)
    try:
        handle.votectl(
            "up", *(["--no-apps"] if os.environ.get("VOTE_TEST_NO_APPS") else []), timeout=400
        )
        handle = StackHandle(layout)  # passwords exist now
        yield handle
    finally:
        subprocess.run(
            [
                VOTECTL,
                "--state-dir",
                str(layout.state_dir),
                "--base-port",
                str(layout.base_port),
                "down",
                "--purge",
            ],
            capture_output=True,
            timeout=180,
        )
