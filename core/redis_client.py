"""The Redis client: one Sentinel and one master client per process, never a fixed address."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    MasterDownError,
    ReadOnlyError,
    ResponseError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from core.config import Config


def master_is_moving(exc: ResponseError) -> bool:
    """A demoted master (READONLY), or one cut off from its replicas (NOREPLICAS, MASTERDOWN):
    Sentinel is replacing it, so the command is worth retrying on the new one."""
    return isinstance(exc, ReadOnlyError | MasterDownError) or str(exc).startswith(
        ("NOREPLICAS", "READONLY", "MASTERDOWN")
    )


class MasterConnection(SentinelManagedConnection):
    """A connection to the master that asks Sentinel again whenever it reconnects.

    redis-py 8.1 re-opens a dropped connection inside a command's retry loop straight to
    its old address (connect_check_health skips the Sentinel lookup; redis/redis-py#3874,
    #3560, open upstream), so after a switchover a client keeps hitting the demoted master
    (READONLY) or a dead one until its whole retry budget is spent. Here every connect looks
    the master up first and tries that address once; the command's retry loop does the
    rest. This overrides a private method (_connect_retry), so pyproject.toml pins redis-py
    to the release it was tested with.

    It also turns every reply of master_is_moving() into a ConnectionError, the one signal
    that every client (sessions, votes, the worker) retries through Sentinel instead of
    failing. Only this connection is dropped: closing other threads' connections under
    them corrupts their replies.
    """

    def _connect_retry(self) -> None:
        self.connect_check_health(check_health=self.connection_pool.check_connection)

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock:
            return
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=False)

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if self.connection_pool.is_master and master_is_moving(exc):
                self.disconnect()
                raise ConnectionError(str(exc)) from exc
            raise


def make_sentinel(config: Config) -> Sentinel:
    """A Sentinel that ignores an isolated sentinel's view when others exist."""
    return Sentinel(
        list(config.sentinels),
        min_other_sentinels=1 if len(config.sentinels) > 2 else 0,
        sentinel_kwargs={
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "username": config.sentinel_username,
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
        username=config.redis_username,
        password=config.redis_password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1.0,
        socket_keepalive=True,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[BusyLoadingError],
        connection_class=MasterConnection,
    )
