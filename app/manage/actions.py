"""What an owner can do to polls, for the pages and the API alike: Postgres first, then Redis."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import abort

from app.auth import User
from app.resources import get_config, get_resources
from core.polls import Draft, Poll, is_poll_id, store
from core.polls import published as redis_polls
from core.replicated import NotReplicated, WaitPolicy

logger = logging.getLogger(__name__)

NO_SUCH_POLL = "No poll has this id (it may have been deleted)."
NOT_YOURS = "Only the account that made this poll can change it."
NOT_APPLIED = (
    "The poll is {state} in the database, but voters may not see it yet: Redis did not "
    "confirm it. Please try again (it also takes effect by itself within a minute)."
)


def _policy() -> WaitPolicy:
    return WaitPolicy.from_config(get_config())


def create(draft: Draft, user: User) -> tuple[Poll, bool]:
    """Store the new poll, then publish it; (the poll, whether voters can already see it).

    A poll Redis did not confirm exists all the same, and the worker's next sweep publishes
    it: making it again would only make a second poll.
    """
    resources = get_resources()
    poll = store.create(resources.rw, draft, user.id)
    try:
        redis_polls.publish(resources.redis, poll, _policy())
    except NotReplicated as exc:
        logger.warning("poll %s stored but not published: %s", poll.id, exc)
        return poll, False
    return poll, True


def _checked(action):
    """Run a store action; 404 for an unknown poll, 403 for someone else's."""
    try:
        return action()
    except store.PollNotFound:
        abort(404, NO_SUCH_POLL)
    except store.NotOwner:
        abort(403, NOT_YOURS)


def set_state(poll_id: str, user: User, state: str) -> Poll:
    """Close or reopen the user's poll and publish its new state; 503 if Redis did not confirm.

    Doing it again is harmless and publishes the state again.
    """
    if not is_poll_id(poll_id):
        abort(404, NO_SUCH_POLL)
    resources = get_resources()
    now = datetime.now(UTC)
    poll = _checked(lambda: store.set_state(resources.rw, poll_id, user.id, state, now))
    try:
        redis_polls.publish(resources.redis, poll, _policy())
    except NotReplicated as exc:
        logger.warning("poll %s %s but not published: %s", poll.id, state, exc)
        abort(503, NOT_APPLIED.format(state=state))
    return poll


def delete(poll_id: str, user: User) -> None:
    """Delete the user's poll with its votes, then replace its definition by a tombstone.

    If Redis does not confirm the tombstone the poll is deleted all the same: the worker's
    next sweep removes it from the list of open polls, and votes that still reach the stream
    are dead-lettered (its poll is unknown).
    """
    if not is_poll_id(poll_id):
        abort(404, NO_SUCH_POLL)
    resources = get_resources()
    _checked(lambda: store.remove(resources.rw, poll_id, user.id))
    try:
        redis_polls.unpublish(resources.redis, poll_id, _policy())
    except NotReplicated as exc:
        logger.warning("poll %s deleted but its tombstone not confirmed: %s", poll_id, exc)


def owned(poll_id: str, user: User) -> Poll:
    """The user's poll (for the confirmation page); 404 or 403 otherwise."""
    poll = store.get(get_resources().rw, poll_id) if is_poll_id(poll_id) else None
    if poll is None:
        abort(404, NO_SUCH_POLL)
    if poll.owner_id != user.id:
        abort(403, NOT_YOURS)
    return poll
