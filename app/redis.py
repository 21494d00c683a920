"""The Redis client: one Sentinel and one master client per process, never a fixed address."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import BusyLoadingError
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.config import Config


def make_sentinel(config: Config) -> Sentinel:
    """A Sentinel that ignores an isolated sentinel's view when others exist."""
    return Sentinel(
        list(config.sentinels),
        min_other_sentinels=1 if len(config.sentinels) > 2 else 0,
        sentinel_kwargs={
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "password": config.sentinel_password,
            # discover_master already moves on to the next Sentinel; retrying a dead one
            # (redis-py 8 retries 10 times by default) only adds seconds to every lookup.
            "retry": Retry(NoBackoff(), 0),
        },
    )


def master_client(
    config: Config,
    sentinel: Sentinel | None = None,
    *,
    socket_timeout: float = 2.0,
    retries: int = 40,
) -> Redis:
    """A client for the current master; it re-asks Sentinel after every connection error.

    The retry budget (up to 40 tries, backoff capped at 0.25 s: roughly 5-10 s) is longer
    than Sentinel's down-after-milliseconds plus an election, so a failover looks like a
    slow request; the low cap finds the new master within 0.25 s of the switch.
    """
    sentinel = sentinel or make_sentinel(config)
    retry = Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.25), retries=retries)
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
