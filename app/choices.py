"""A voter's current choice in a poll: the newer, by stream position, of the vote the vote
script last accepted from this voter (Redis `choices:<voter>`, core/polls/published.py) and the
worker's Postgres row (the same rule the worker applies: last vote wins by stream order).

Sessions from before the choices moved to Redis kept them in the session (`choices`); they
are still read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import session
from psycopg2 import OperationalError
from redis.exceptions import RedisError

from app.auth import CHOICES
from app.resources import get_resources
from core.db import Database
from core.polls import FIRST_POLL_ID
from core.polls.published import choices_key
from core.stream import MalformedVote, split_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """A voter's vote; `counted` once the worker has applied it to Postgres."""

    option: str
    vote_id: str
    # Where the vote entered the stream (ms, seq): what decides which vote is the last.
    position: tuple[int, int]
    counted: bool = False


def _by_poll(raw: object) -> dict:
    """A voter's votes by poll in an older session. A session from before polls holds one
    vote, which was in the first poll."""
    if not isinstance(raw, dict):
        return {}
    return {FIRST_POLL_ID: raw} if "option" in raw else raw


def _from_session(voter: str, poll: str) -> Choice | None:
    raw = _by_poll((session.get(CHOICES) or {}).get(voter)).get(poll)
    if not isinstance(raw, dict):
        return None
    try:
        return Choice(str(raw["option"]), str(raw["vote_id"]), split_id(str(raw["entry"])))
    except (KeyError, TypeError, MalformedVote):
        return None


def _from_redis(voter: str, poll: str) -> Choice | None:
    try:
        raw = get_resources().redis.hget(choices_key(voter), poll)
    except RedisError as exc:
        logger.warning("could not read the choices of %s from Redis: %r", voter, exc)
        return None
    try:
        entry, vote_id, option = raw.decode().split(" ")
        return Choice(option, vote_id, split_id(entry))
    except (AttributeError, UnicodeDecodeError, ValueError, MalformedVote):
        return None


def remembered_choice(voter: str, poll: str) -> Choice | None:
    """The last vote the vote app accepted from `voter` in `poll`, if any."""
    found = [c for c in (_from_redis(voter, poll), _from_session(voter, poll)) if c]
    return max(found, key=lambda c: c.position, default=None)


def recorded_choice(database: Database, voter: str, poll: str) -> Choice | None:
    """The voter's row in Postgres (one primary-key lookup), if the worker has written it."""
    with database.connect() as cursor:
        cursor.execute(
            "SELECT option, vote_id, stream_ms, stream_seq FROM votes"
            " WHERE poll_id = %s AND voter_id = %s",
            (poll, voter),
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Choice(row.option, row.vote_id, (row.stream_ms, row.stream_seq), counted=True)


def current_choice(voter: str, poll: str, *, look_up: bool) -> Choice | None:
    """The newer of the remembered choice (Redis, or an older session) and, when `look_up`,
    the Postgres row via a replica.

    An anonymous voter exists only in this browser's session, so the remembered choice is
    all there is; an account's vote may not be applied yet or come from another browser. If
    Postgres is unreachable the page still works from the remembered choice alone.
    """
    remembered = remembered_choice(voter, poll)
    if not look_up:
        return remembered
    try:
        recorded = recorded_choice(get_resources().ro, voter, poll)
    except OperationalError as exc:
        logger.warning("could not read the vote of %s from Postgres: %r", voter, exc)
        return remembered
    if recorded is None:
        return remembered
    if remembered is None or recorded.vote_id == remembered.vote_id:
        return recorded
    return recorded if recorded.position > remembered.position else remembered
