"""The Redis client: one Sentinel and one master client per process, never a fixed address."""

from __future__ import annotations

from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.config import Config
from redis import Redis


def make_sentinel(config: Config) -> Sentinel:
    """A Sentinel that ignores an isolated sentinel's view when others exist."""
    return Sentinel(
        list(config.sentinels),
        min_other_sentinels=1 if len(config.sentinels) > 2 else 0,
        sentinel_kwargs={
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "password": config.sentinel_password,
        },
    )


def master_client(
    config: Config,
    sentinel: Sentinel | None = None,
    *,
    socket_timeout: float = 2.0,
    retries: int = 12,
) -> Redis:
    """A client for the current master; it re-asks Sentinel after every connection error.

    The default retry budget (about 8 s of backoff) is longer than Sentinel's
    down-after-milliseconds plus an election, so a failover looks like a slow request.
    """
    sentinel = sentinel or make_sentinel(config)
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=retries)
    return sentinel.master_for(
        config.redis_master_name,
        password=config.redis_password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1.0,
        socket_keepalive=True,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[BusyLoadingError],
    )
