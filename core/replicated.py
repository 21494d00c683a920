"""Writes that count only once replicas hold them: a Lua script, then WAIT, on one connection.

Votes and poll publications are written this way. The script runs with EVALSHA, queued in
the same pipeline as WAIT, so a write costs one round trip; a master that does not know the
script yet (a new master after a failover, a restart, SCRIPT FLUSH) answers NOSCRIPT, and the
script is loaded and the write sent again. redis-py's own Script objects are not used in the
pipeline: they ask SCRIPT EXISTS before every pipeline, a second round trip per write.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from redis.backoff import EqualJitterBackoff
from redis.client import Redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from core.config import Config

logger = logging.getLogger(__name__)

# 50 ms, 100 ms, ... up to 1 s between attempts, each drawn from [delay/2, delay].
BACKOFF = EqualJitterBackoff(cap=1.0, base=0.05)


@dataclass(frozen=True)
class LuaScript:
    """A Lua script and its SHA1 (what EVALSHA names it by), computed once."""

    source: str

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


@dataclass(frozen=True)
class WaitPolicy:
    """How many replicas must hold a write, how long one WAIT may take, and the total budget."""

    replicas: int = 1
    timeout_ms: int = 200
    budget_s: float = 8.0

    @classmethod
    def from_config(cls, config: Config) -> WaitPolicy:
        return cls(config.wait_replicas, config.wait_timeout_ms, config.write_budget_s)


class NotReplicated(Exception):
    """The write could not be confirmed on enough replicas within the budget."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


Call = tuple[LuaScript, Sequence[str], Sequence[str]]


def _run_once(client: Redis, calls: Sequence[Call], policy: WaitPolicy) -> tuple[list, int]:
    """EVALSHA each call, then WAIT, in one pipeline: the replies and the replicas that hold
    them."""
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    pipe.wait(policy.replicas, policy.timeout_ms)
    *replies, replicas = pipe.execute(raise_on_error=False)
    for reply in [*replies, replicas]:
        if isinstance(reply, Exception):
            raise reply
    return replies, int(replicas)


def run_replicated(
    client: Redis,
    script: LuaScript,
    keys: Sequence[str],
    args: Sequence[str],
    policy: WaitPolicy,
    *,
    wrote: Callable[[object], bool] = lambda _reply: True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> object:
    """Run `script`; return its reply once `policy.replicas` replicas hold what it wrote.

    A reply for which `wrote(reply)` is false wrote nothing (a refusal) and is returned at
    once. Otherwise see run_replicated_many.
    """
    [reply] = run_replicated_many(
        client, [(script, keys, args)], policy, wrote=wrote, sleep=sleep, clock=clock
    )
    return reply


def run_replicated_many(
    client: Redis,
    calls: Sequence[Call],
    policy: WaitPolicy,
    *,
    wrote: Callable[[object], bool] = lambda _reply: True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list:
    """Run every call in one pipeline; return the replies once replicas hold the writes.

    When a reply says it wrote something (`wrote`) and too few replicas acknowledged, every
    call is sent again after a jittered backoff until the budget is spent, then NotReplicated
    is raised: so every script must be safe to repeat. A single attempt may itself last up
    to the client's own retry budget while Sentinel elects a new master (the client's
    connection turns a moving master's replies into ConnectionError). Any other error reply
    (a bug, out of memory) fails at once.
    """
    deadline = clock() + policy.budget_s
    attempt = 0
    loaded = False
    while True:
        attempt += 1
        try:
            replies, replicas = _run_once(client, calls, policy)
            if replicas >= policy.replicas or not any(wrote(r) for r in replies):
                return replies
            problem = f"{replicas} of {policy.replicas} replicas acknowledged"
        except NoScriptError:
            problem = "the master does not know the script yet"
            if not loaded:
                for source in dict.fromkeys(script.source for script, _, _ in calls):
                    client.script_load(source)
                loaded = True
                continue
            loaded = False  # loaded on a master that has since been replaced: load again
        except ResponseError as exc:
            raise NotReplicated(f"refused by Redis ({exc})", attempts=attempt) from exc
        except (ConnectionError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        delay = BACKOFF.compute(attempt - 1)
        if clock() + delay > deadline:
            logger.warning("write not replicated after %s attempts: %s", attempt, problem)
            raise NotReplicated(f"not confirmed by replicas ({problem})", attempts=attempt)
        logger.info("write attempt %s: %s; retrying", attempt, problem)
        sleep(delay)
