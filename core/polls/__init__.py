"""Polls: one home for the concept. `poll` (what a poll is, its rules and ids), `store`
(Postgres, the source of truth), `published` (the copy in Redis the vote path reads), `sync`
(Postgres to Redis)."""

from core.polls.poll import (
    CLOSED,
    FIRST_POLL_ID,
    MAX_OPTIONS,
    MIN_OPTIONS,
    OPEN,
    OPTION_KEY,
    POLL_ID,
    Draft,
    InvalidPoll,
    Poll,
    PollOption,
    is_poll_id,
    make_draft,
    new_poll_id,
)

__all__ = [
    "CLOSED",
    "FIRST_POLL_ID",
    "MAX_OPTIONS",
    "MIN_OPTIONS",
    "OPEN",
    "OPTION_KEY",
    "POLL_ID",
    "Draft",
    "InvalidPoll",
    "Poll",
    "PollOption",
    "is_poll_id",
    "make_draft",
    "new_poll_id",
]
