"""Recording a vote safely: XADD to the vote stream, then WAIT until enough replicas hold it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from redis.client import Redis
from redis.exceptions import (
    ConnectionError,
    MasterDownError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
)

from app.config import Config
from app.stream import STREAM, Vote

logger = logging.getLogger(__name__)


def master_is_moving(exc: ResponseError) -> bool:
    """A demoted master (READONLY), or one cut off from its replicas (NOREPLICAS, MASTERDOWN)."""
    if isinstance(exc, ReadOnlyError | MasterDownError):
        return True
    # A pipeline prefixes the server's message with "Command # n (...) of pipeline caused error: ".
    message = str(exc).rpartition("caused error: ")[2]
    return message.startswith(("NOREPLICAS", "READONLY", "MASTERDOWN"))


class VoteNotSaved(Exception):
    """The vote could not be confirmed on enough replicas within the write budget."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def _add_and_wait(client: Redis, vote: Vote, config: Config) -> int:
    """XADD then WAIT on one connection; return how many replicas acknowledged the entry."""
    pipe = client.pipeline(transaction=False)
    pipe.xadd(STREAM, vote.fields())
    pipe.wait(config.wait_replicas, config.wait_timeout_ms)
    _entry_id, replicas = pipe.execute()
    return int(replicas)


def _backoff(attempt: int) -> float:
    """Exponential backoff from 50 ms up to 1 s, with equal jitter so retries spread out."""
    delay = min(0.05 * 2 ** (attempt - 1), 1.0)
    return delay / 2 + random.uniform(0, delay / 2)


def record_vote(
    client: Redis,
    vote: Vote,
    config: Config,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Write `vote` to the stream and return once `config.wait_replicas` replicas hold it.

    Retries (re-adding the same vote, which the worker applies idempotently) with backoff
    until `config.write_budget_s` is spent, then raises VoteNotSaved. A single attempt may
    itself last up to the client's own retry budget while Sentinel elects a new master.
    """
    deadline = clock() + config.write_budget_s
    attempt = 0
    while True:
        attempt += 1
        try:
            replicas = _add_and_wait(client, vote, config)
            if replicas >= config.wait_replicas:
                return
            problem = f"{replicas} of {config.wait_replicas} replicas acknowledged"
        except ResponseError as exc:
            if not master_is_moving(exc):
                raise VoteNotSaved(f"refused by Redis ({exc})", attempts=attempt) from exc
            # Sentinel is moving the master: drop the idle connections so the next ones ask
            # it. Never in-use ones: closing another thread's socket under it mixes replies.
            client.connection_pool.disconnect(inuse_connections=False)
            problem = str(exc)
        except (ConnectionError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        delay = _backoff(attempt)
        if clock() + delay > deadline:
            logger.warning(
                "vote %s not saved after %s attempts: %s", vote.vote_id, attempt, problem
            )
            raise VoteNotSaved(f"not confirmed by replicas ({problem})", attempts=attempt)
        logger.info("vote %s attempt %s: %s; retrying", vote.vote_id, attempt, problem)
        sleep(delay)
