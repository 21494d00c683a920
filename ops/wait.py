"""Waiting for a distributed system to reach a state: the one polling loop of votectl."""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Callable
from typing import TypeVar

import psycopg2
import requests
from redis.exceptions import RedisError

T = TypeVar("T")

# What a member that is down, starting or failing over answers with: worth asking again.
# Anything else (a TypeError, a KeyError...) is a bug and is raised at once.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    RedisError,
    psycopg2.Error,
    requests.RequestException,
    xmlrpc.client.Fault,
)


class NotReady(Exception):
    """A state is not reached yet; raised by checks, retried by wait_for."""


class WaitTimeout(Exception):
    """The state was not reached in time; the message says what and the last answer."""


def wait_for(
    predicate: Callable[[], T],
    what: str,
    timeout: float,
    interval: float = 0.1,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call `predicate` until it returns something true, and return that.

    Transient errors (TRANSIENT, NotReady) count as "not yet"; after `timeout` seconds
    WaitTimeout names `what` and the last answer or error.
    """
    deadline = clock() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
        except (*TRANSIENT, NotReady) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        if clock() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        sleep(interval)
