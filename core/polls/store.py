"""Polls in Postgres, their source of truth: create, read, close/reopen and delete them.

Writes go through the read-write engine (HAProxy's leader port). Every change bumps the
poll's revision, which its Redis publication carries (core.polls.published).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.models import poll_options, polls, tallies, votes
from core.polls.poll import CLOSED, OPEN, Draft, Poll, PollOption, new_poll_id

UNIQUE_VIOLATION = "23505"
# Fresh ids collide with a chance of 2^-72 per pair; a few tries make "never" certain.
ID_ATTEMPTS = 3
SWEEP_PAGE = 1000


class PollNotFound(LookupError):
    """No poll has this id (never had, or it was deleted)."""


class NotOwner(PermissionError):
    """The poll belongs to another account (or to nobody: the first poll)."""


def poll_from_row(row: Row, options: Iterable[PollOption]) -> Poll:
    """A Poll from a `polls` row and its options in order."""
    return Poll(
        id=row.id,
        question=row.question,
        options=tuple(options),
        state=row.state,
        created_at=row.created_at,
        owner_id=row.owner_id,
        closed_at=row.closed_at,
        closes_at=row.closes_at,
        revision=row.revision,
        listed=row.listed,
    )


def _polls_from(rows: Iterable[Row], option_rows: Iterable[Row]) -> list[Poll]:
    options: dict[str, list[PollOption]] = {}
    for row in option_rows:
        options.setdefault(row.poll_id, []).append(PollOption(row.key, row.label))
    return [poll_from_row(row, options.get(row.id, ())) for row in rows]


def _options_of(conn: Connection, ids: list[str]) -> list[Row]:
    query = (
        select(poll_options.c.poll_id, poll_options.c.key, poll_options.c.label)
        .where(poll_options.c.poll_id.in_(ids))
        .order_by(poll_options.c.poll_id, poll_options.c.position)
    )
    return list(conn.execute(query))


def _load(conn: Connection, query) -> list[Poll]:
    rows = list(conn.execute(query))
    return _polls_from(rows, _options_of(conn, [r.id for r in rows]) if rows else [])


def get(engine: Engine, poll_id: str) -> Poll | None:
    """The poll with this id, or None."""
    with engine.connect() as conn:
        found = _load(conn, select(polls).where(polls.c.id == poll_id))
    return found[0] if found else None


def owned_by(engine: Engine, owner_id: int, offset: int = 0, limit: int = 50) -> list[Poll]:
    """An account's polls, newest first."""
    query = (
        select(polls)
        .where(polls.c.owner_id == owner_id)
        .order_by(polls.c.created_at.desc(), polls.c.id)
        .offset(offset)
        .limit(limit)
    )
    with engine.connect() as conn:
        return _load(conn, query)


def create(engine: Engine, draft: Draft, owner_id: int | None) -> Poll:
    """Insert a new poll with a fresh id and its options, in one transaction."""
    for attempt in range(1, ID_ATTEMPTS + 1):
        poll_id = new_poll_id()
        try:
            with engine.begin() as conn:
                row = conn.execute(
                    insert(polls)
                    .values(
                        id=poll_id,
                        question=draft.question,
                        owner_id=owner_id,
                        state=OPEN,
                        closes_at=draft.closes_at,
                        listed=draft.listed,
                    )
                    .returning(polls)
                ).one()
                conn.execute(
                    insert(poll_options),
                    [
                        {"poll_id": poll_id, "key": o.key, "label": o.label, "position": n}
                        for n, o in enumerate(draft.options, 1)
                    ],
                )
        except IntegrityError as exc:
            if getattr(exc.orig, "pgcode", None) != UNIQUE_VIOLATION or attempt == ID_ATTEMPTS:
                raise
            continue
        return poll_from_row(row, draft.options)
    raise AssertionError("unreachable")


def _owned_row(conn: Connection, poll_id: str, owner_id: int | None, *, for_delete: bool) -> Row:
    """The poll's row, locked; PollNotFound or NotOwner.

    A state change locks it FOR NO KEY UPDATE, which does not wait for the workers (they
    hold FOR KEY SHARE); a deletion FOR UPDATE, which does. (SQLAlchemy's `key_share`
    alone renders FOR NO KEY UPDATE.)
    """
    query = select(polls).where(polls.c.id == poll_id).with_for_update(key_share=not for_delete)
    row = conn.execute(query).first()
    if row is None:
        raise PollNotFound(poll_id)
    if row.owner_id != owner_id:
        raise NotOwner(poll_id)
    return row


def set_state(
    engine: Engine, poll_id: str, owner_id: int | None, state: str, now: datetime
) -> Poll:
    """Close or reopen the owner's poll (owner None: a poll without owner, for ops tools);
    return it as it now is.

    Closing a closed poll changes nothing (its current state is returned, to publish again).
    Reopening clears the closing time, which would otherwise close it again at once.
    """
    if state not in (OPEN, CLOSED):
        raise ValueError(f"unknown state {state!r}")
    with engine.begin() as conn:
        current = poll_from_row(_owned_row(conn, poll_id, owner_id, for_delete=False), ())
        if current.status(now) != state:
            values = (
                {"state": CLOSED, "closed_at": func.now()}
                if state == CLOSED
                else {"state": OPEN, "closed_at": None, "closes_at": None}
            )
            conn.execute(
                update(polls)
                .where(polls.c.id == poll_id)
                .values(**values, revision=polls.c.revision + 1)
            )
        return _load(conn, select(polls).where(polls.c.id == poll_id))[0]


def remove(engine: Engine, poll_id: str, owner_id: int) -> None:
    """Delete the owner's poll with its options, votes and tallies, in one transaction.

    The poll's row is locked first (FOR UPDATE): a worker applying a batch holds it FOR KEY
    SHARE, so this waits for that batch to commit and then deletes its votes too, and a
    batch that comes later finds the poll gone (worker/sink.py).
    """
    with engine.begin() as conn:
        _owned_row(conn, poll_id, owner_id, for_delete=True)
        conn.execute(delete(votes).where(votes.c.poll_id == poll_id))
        conn.execute(delete(tallies).where(tallies.c.poll_id == poll_id))
        conn.execute(delete(polls).where(polls.c.id == poll_id))


def option_keys_of(engine: Engine, poll_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """The option keys of each of these polls that exists (for the worker's catalog)."""
    query = select(poll_options.c.poll_id, poll_options.c.key).where(
        poll_options.c.poll_id.in_(list(poll_ids))
    )
    found: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for poll_id, key in conn.execute(query):
            found.setdefault(poll_id, set()).add(key)
    return {poll_id: frozenset(keys) for poll_id, keys in found.items()}


def every_poll(engine: Engine, page: int = SWEEP_PAGE) -> Iterator[list[Poll]]:
    """Every poll, `page` at a time in id order (each page is its own short read)."""
    after = ""
    while True:
        query = select(polls).where(polls.c.id > after).order_by(polls.c.id).limit(page)
        with engine.connect() as conn:
            found = _load(conn, query)
        if not found:
            return
        yield found
        after = found[-1].id


def vote_totals(engine: Engine, poll_ids: list[str]) -> dict[str, int]:
    """Votes counted so far in each of these polls (from `tallies`: O(options) each)."""
    if not poll_ids:
        return {}
    query = (
        select(tallies.c.poll_id, func.sum(tallies.c.count))
        .where(tallies.c.poll_id.in_(poll_ids))
        .group_by(tallies.c.poll_id)
    )
    with engine.connect() as conn:
        return {poll_id: int(total) for poll_id, total in conn.execute(query)}
