"""Recording a vote safely: XADD to the vote stream, then WAIT until enough replicas hold it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.backoff import EqualJitterBackoff
from redis.client import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from core.config import Config
from core.stream import STREAM, Vote

logger = logging.getLogger(__name__)

# 50 ms, 100 ms, ... up to 1 s between attempts, each drawn from [delay/2, delay].
BACKOFF = EqualJitterBackoff(cap=1.0, base=0.05)


class VoteNotSaved(Exception):
    """The vote could not be confirmed on enough replicas within the write budget."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def _add_and_wait(client: Redis, vote: Vote, config: Config) -> tuple[str, int]:
    """XADD then WAIT on one connection; the entry's id and how many replicas hold it."""
    pipe = client.pipeline(transaction=False)
    pipe.xadd(STREAM, vote.fields())
    pipe.wait(config.wait_replicas, config.wait_timeout_ms)
    entry_id, replicas = pipe.execute()
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id, int(replicas)


def record_vote(
    client: Redis,
    vote: Vote,
    config: Config,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Write `vote` to the stream; return its stream id once `config.wait_replicas` replicas
    hold it.

    Retries (re-adding the same vote, which the worker applies idempotently) with backoff
    until `config.write_budget_s` is spent, then raises VoteNotSaved. A single attempt may
    itself last up to the client's own retry budget while Sentinel elects a new master (the
    client's connection turns a moving master's replies into ConnectionError).
    """
    deadline = clock() + config.write_budget_s
    attempt = 0
    while True:
        attempt += 1
        try:
            entry_id, replicas = _add_and_wait(client, vote, config)
            if replicas >= config.wait_replicas:
                return entry_id
            problem = f"{replicas} of {config.wait_replicas} replicas acknowledged"
        except ResponseError as exc:
            raise VoteNotSaved(f"refused by Redis ({exc})", attempts=attempt) from exc
        except (ConnectionError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        delay = BACKOFF.compute(attempt - 1)
        if clock() + delay > deadline:
            logger.warning(
                "vote %s not saved after %s attempts: %s", vote.vote_id, attempt, problem
            )
            raise VoteNotSaved(f"not confirmed by replicas ({problem})", attempts=attempt)
        logger.info("vote %s attempt %s: %s; retrying", vote.vote_id, attempt, problem)
        sleep(delay)
