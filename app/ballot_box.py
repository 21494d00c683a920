"""Recording a vote safely: check the poll and XADD in one script, then WAIT for replicas."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.client import Redis

from core.config import Config
from core.polls.published import CAST, choices_key, definition_key
from core.replicated import NotReplicated, WaitPolicy, run_replicated
from core.stream import STREAM, Vote

logger = logging.getLogger(__name__)


class VoteNotSaved(Exception):
    """The vote could not be confirmed on enough replicas within the write budget."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class VoteRefused(Exception):
    """The poll does not take this vote: `reason` is unknown_poll, closed or unknown_option."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Recorded:
    """A vote replicas hold: its stream id and the label of the option voted for."""

    entry_id: str
    label: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_vote(
    client: Redis,
    vote: Vote,
    config: Config,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Recorded:
    """Write `vote` to the stream if its poll takes it; return once `config.wait_replicas`
    replicas hold it.

    The poll's published definition is checked in the same script that adds the entry and
    records it as the voter's choice in the poll (core/polls/published.py: CAST), so a vote
    never enters the stream after its poll's close, and WAIT covers the choice too. Raises
    VoteRefused when the poll is unknown, closed or lacks the option, and
    VoteNotSaved when replicas did not confirm it within `config.write_budget_s` (retries
    add the same vote again, which the worker applies idempotently).
    """
    keep_s = int(config.session_lifetime.total_seconds())
    args = [vote.option, vote.poll, vote.vote_id, str(keep_s)]
    for name, value in vote.fields().items():
        args += [name, value]
    try:
        reply = run_replicated(
            client,
            CAST,
            [definition_key(vote.poll), STREAM, choices_key(vote.voter)],
            args,
            WaitPolicy.from_config(config),
            wrote=lambda r: r[0] == 1,
            sleep=sleep,
            clock=clock,
        )
    except NotReplicated as exc:
        logger.warning("vote %s not saved: %s", vote.vote_id, exc)
        raise VoteNotSaved(str(exc), exc.attempts) from exc
    if reply[0] != 1:
        raise VoteRefused(_text(reply[1]))
    return Recorded(_text(reply[1]), _text(reply[2]))
