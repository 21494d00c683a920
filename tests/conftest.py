"""Shared fixtures: real Redis (master, replica, Sentinel) and a real Postgres for the fast tier."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from app.migrate import upgrade
from ops.db import ensure_role_and_database
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
    }


@pytest.fixture
def clean_data(redis_servers: RedisCluster, database_url: str) -> Iterator[None]:
    """Empty Redis and the app tables before a test, so tests do not see each other's votes."""
    redis_servers.client().flushall()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE votes, tallies, accounts RESTART IDENTITY"))
    engine.dispose()
    yield
