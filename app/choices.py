"""A voter's current choice in a poll: the newer, by stream position, of this session's last
vote and the worker's Postgres row (the same rule the worker applies: last vote wins by stream
order)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import session
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.auth import CHOICES
from app.resources import get_resources
from core.models import votes
from core.polls import FIRST_POLL_ID
from core.stream import MalformedVote, Vote, split_id

logger = logging.getLogger(__name__)

# Votes a session remembers per voter (the newest): a session must not grow with every poll.
MAX_REMEMBERED = 50


@dataclass(frozen=True)
class Choice:
    """A voter's vote; `counted` once the worker has applied it to Postgres."""

    option: str
    vote_id: str
    # Where the vote entered the stream (ms, seq): what decides which vote is the last.
    position: tuple[int, int]
    counted: bool = False


def _by_poll(raw: object) -> dict:
    """A voter's remembered votes by poll. A session from before polls holds one vote, which
    was in the first poll."""
    if not isinstance(raw, dict):
        return {}
    return {FIRST_POLL_ID: raw} if "option" in raw else raw


def remember_vote(vote: Vote, entry_id: str) -> None:
    """Keep an accepted vote and its stream id in the session, to show it before the worker
    applies it."""
    choices = dict(session.get(CHOICES) or {})
    mine = _by_poll(choices.get(vote.voter)).copy()
    mine.pop(vote.poll, None)
    mine[vote.poll] = {"option": vote.option, "vote_id": vote.vote_id, "entry": entry_id}
    for oldest in list(mine)[: max(0, len(mine) - MAX_REMEMBERED)]:
        del mine[oldest]
    choices[vote.voter] = mine
    session[CHOICES] = choices


def remembered_choice(voter: str, poll: str) -> Choice | None:
    """The last vote this session sent for `voter` in `poll`, if any."""
    raw = _by_poll((session.get(CHOICES) or {}).get(voter)).get(poll)
    if not isinstance(raw, dict):
        return None
    try:
        return Choice(str(raw["option"]), str(raw["vote_id"]), split_id(str(raw["entry"])))
    except (KeyError, TypeError, MalformedVote):
        return None


def recorded_choice(engine: Engine, voter: str, poll: str) -> Choice | None:
    """The voter's row in Postgres (one primary-key lookup), if the worker has written it."""
    query = select(votes.c.option, votes.c.vote_id, votes.c.stream_ms, votes.c.stream_seq).where(
        votes.c.poll_id == poll, votes.c.voter_id == voter
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return Choice(row.option, row.vote_id, (row.stream_ms, row.stream_seq), counted=True)


def current_choice(voter: str, poll: str, *, look_up: bool) -> Choice | None:
    """The newer of the session's vote and (when `look_up`) the Postgres row via a replica.

    Anonymous voters exist only in this session, so there is nothing to look up for them;
    an account may have voted from another browser. If Postgres is unreachable the page
    still works from the session alone.
    """
    remembered = remembered_choice(voter, poll)
    if not look_up:
        return remembered
    try:
        recorded = recorded_choice(get_resources().ro, voter, poll)
    except (OperationalError, PoolTimeoutError) as exc:
        logger.warning("could not read the vote of %s from Postgres: %r", voter, exc)
        return remembered
    if recorded is None:
        return remembered
    if remembered is None or recorded.vote_id == remembered.vote_id:
        return recorded
    return recorded if recorded.position > remembered.position else remembered
