"""Liveness (/healthz, no I/O) and readiness (/readyz: can this app do its job right now?)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify
from psycopg2 import Error as PostgresError
from redis.backoff import NoBackoff
from redis.client import Redis
from redis.exceptions import RedisError
from redis.retry import Retry

from app.resources import Resources, get_resources

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# What each app cannot work without. The vote app takes votes while Postgres fails over
# (the stream buffers them), and results are served while Redis fails over, so neither
# leaves HAProxy's rotation for a store it does not need.
REQUIRED = {
    "vote": ("redis",),
    "result": ("postgres",),
    "login": ("redis", "postgres"),
}
# Short, single-shot timeouts: HAProxy gives a check 2 s.
PROBE_TIMEOUT_S = 0.5


def check_redis(resources: Resources) -> None:
    """Ask Sentinel for the master, then PING it once, without the client's retry budget."""
    config = resources.config
    host, port = resources.sentinel.discover_master(config.redis_master_name)
    probe = Redis(
        host=host,
        port=port,
        username=config.redis_username,
        password=config.redis_password,
        socket_timeout=PROBE_TIMEOUT_S,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        probe.ping()
    finally:
        probe.close()


def check_postgres(resources: Resources) -> None:
    """SELECT 1 through the pool the app reads from (the leader for login, replicas otherwise)."""
    database = resources.rw if current_app.config["APP_NAME"] == "login" else resources.ro
    with database.connect() as cursor:
        cursor.execute("SELECT 1")


CHECKS: dict[str, Callable[[Resources], None]] = {
    "redis": check_redis,
    "postgres": check_postgres,
}


@bp.get("/healthz")
def healthz():
    """The process is alive and serving requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 when every store this app needs answers, else 503 naming what failed."""
    resources = get_resources()
    results: dict[str, str] = {}
    for name in REQUIRED[current_app.config["APP_NAME"]]:
        try:
            CHECKS[name](resources)
            results[name] = "ok"
        except (RedisError, PostgresError, OSError) as exc:
            logger.warning("readiness check %s failed: %r", name, exc)
            results[name] = f"failed: {type(exc).__name__}"
    ready = all(value == "ok" for value in results.values())
    body = {"status": "ready" if ready else "unavailable", "checks": results}
    return jsonify(body), 200 if ready else 503
