"""Casting a vote from a web request: the session's voter, the poll's answer, the metrics."""

from __future__ import annotations

import logging
from typing import NoReturn

from flask import abort

from app.auth import current_user, current_voter
from app.ballot_box import Recorded, VoteNotSaved, VoteRefused, record_vote
from app.metrics import count_vote
from app.resources import get_config, get_resources
from core.polls import OPTION_KEY, Poll, is_poll_id
from core.polls.published import read_poll
from core.stream import Vote

logger = logging.getLogger(__name__)

NOT_SAVED = "Your vote could not be saved safely, please try again."
LOGIN_TO_VOTE = "Please log in to vote."
NO_SUCH_POLL = "No poll has this id (it may have been deleted)."
CLOSED = "This poll is closed: it no longer takes votes."


def published_poll(poll_id: str) -> Poll:
    """The poll as Redis publishes it, or a 404."""
    poll = read_poll(get_resources().redis, poll_id) if is_poll_id(poll_id) else None
    if poll is None:
        abort(404, NO_SUCH_POLL)
    return poll


def login_missing() -> bool:
    """Voting needs an account here and the session has none (counted as a rejection)."""
    if get_config().require_login and current_user() is None:
        count_vote("rejected", "login_required")
        return True
    return False


def _unknown_option(poll_id: str, key: object) -> NoReturn:
    count_vote("rejected", "unknown_option")
    valid = ", ".join(o.key for o in published_poll(poll_id).options)
    shown = key[:40] + "..." if isinstance(key, str) and len(key) > 40 else key
    abort(400, f"Unknown option {shown!r}: choose one of {valid}.")


def cast(poll_id: str, key: object) -> tuple[Vote, Recorded]:
    """Record a vote for option `key` of the poll by the session's voter.

    400 for an unknown option, 404 for an unknown poll, 409 for a closed one, 503 unless
    replicas confirm it; the poll is checked by the same script that writes the vote and the
    voter's choice (app/choices.py), so the session does not change: once the voter has an
    id, a vote is one Redis round trip besides reading the session.
    """
    if not is_poll_id(poll_id):
        count_vote("rejected", "unknown_poll")
        abort(404, NO_SUCH_POLL)
    if not isinstance(key, str) or not OPTION_KEY.fullmatch(key):
        _unknown_option(poll_id, key)
    vote = Vote.new(poll_id, current_voter(), key)
    try:
        recorded = record_vote(get_resources().redis, vote, get_config())
    except (VoteNotSaved, VoteRefused) as exc:
        refuse(vote, exc)
    count_vote("accepted", "ok")
    return vote, recorded


def refuse(vote: Vote, exc: VoteNotSaved | VoteRefused) -> NoReturn:
    """Answer a vote the poll refused (400, 404, 409) or replicas did not confirm (503)."""
    if isinstance(exc, VoteNotSaved):
        count_vote("rejected", "not_saved")
        logger.warning("vote %s by %s not saved: %s", vote.vote_id, vote.voter, exc)
        abort(503, NOT_SAVED)
    if exc.reason == "unknown_option":
        _unknown_option(vote.poll, vote.option)
    count_vote("rejected", exc.reason)
    if exc.reason == "closed":
        abort(409, CLOSED)
    abort(404, NO_SUCH_POLL)
