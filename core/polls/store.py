"""Polls in Postgres, their source of truth: create, read, close/reopen and delete them.

Writes go through the read-write pool (HAProxy's leader port). Every change bumps the
poll's revision, which its Redis publication carries (core.polls.published).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from psycopg2 import IntegrityError

from core.db import Database
from core.polls.poll import CLOSED, OPEN, Draft, Poll, PollOption, new_poll_id

UNIQUE_VIOLATION = "23505"
# Fresh ids collide with a chance of 2^-72 per pair; a few tries make "never" certain.
ID_ATTEMPTS = 3
SWEEP_PAGE = 1000
# A `polls` row as poll_from_row reads it (table alias p).
POLL_COLUMNS = (
    "p.id, p.question, p.state, p.created_at, p.owner_id, p.closed_at, p.closes_at,"
    " p.revision, p.listed"
)


class PollNotFound(LookupError):
    """No poll has this id (never had, or it was deleted)."""


class NotOwner(PermissionError):
    """The poll belongs to another account (or to nobody: the first poll)."""


def poll_from_row(row: Any, options: Iterable[PollOption]) -> Poll:
    """A Poll from a `polls` row (POLL_COLUMNS, as a named tuple) and its options in order."""
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


def _polls_from(rows: Iterable[Any], option_rows: Iterable[Any]) -> list[Poll]:
    options: dict[str, list[PollOption]] = {}
    for row in option_rows:
        options.setdefault(row.poll_id, []).append(PollOption(row.key, row.label))
    return [poll_from_row(row, options.get(row.id, ())) for row in rows]


def _load(cursor, where: str, params: tuple = ()) -> list[Poll]:
    """The polls `SELECT POLL_COLUMNS FROM polls AS p <where>` finds, with their options."""
    cursor.execute(f"SELECT {POLL_COLUMNS} FROM polls AS p {where}", params)
    rows = cursor.fetchall()
    if not rows:
        return []
    cursor.execute(
        "SELECT poll_id, key, label FROM poll_options WHERE poll_id = ANY(%s)"
        " ORDER BY poll_id, position",
        ([r.id for r in rows],),
    )
    return _polls_from(rows, cursor.fetchall())


def get(database: Database, poll_id: str) -> Poll | None:
    """The poll with this id, or None."""
    with database.connect() as cursor:
        found = _load(cursor, "WHERE p.id = %s", (poll_id,))
    return found[0] if found else None


def owned_by(database: Database, owner_id: int, offset: int = 0, limit: int = 50) -> list[Poll]:
    """An account's polls, newest first."""
    with database.connect() as cursor:
        return _load(
            cursor,
            "WHERE p.owner_id = %s ORDER BY p.created_at DESC, p.id OFFSET %s LIMIT %s",
            (owner_id, offset, limit),
        )


def create(database: Database, draft: Draft, owner_id: int | None) -> Poll:
    """Insert a new poll with a fresh id and its options, in one transaction."""
    for attempt in range(1, ID_ATTEMPTS + 1):
        poll_id = new_poll_id()
        try:
            with database.begin() as cursor:
                cursor.execute(
                    "INSERT INTO polls AS p (id, question, owner_id, state, closes_at, listed)"
                    f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {POLL_COLUMNS}",
                    (poll_id, draft.question, owner_id, OPEN, draft.closes_at, draft.listed),
                )
                row = cursor.fetchone()
                cursor.executemany(
                    "INSERT INTO poll_options (poll_id, key, label, position)"
                    " VALUES (%s, %s, %s, %s)",
                    [(poll_id, o.key, o.label, n) for n, o in enumerate(draft.options, 1)],
                )
        except IntegrityError as exc:
            if exc.pgcode != UNIQUE_VIOLATION or attempt == ID_ATTEMPTS:
                raise
            continue
        return poll_from_row(row, draft.options)
    raise AssertionError("unreachable")


def _owned_row(cursor, poll_id: str, owner_id: int | None, *, for_delete: bool) -> Any:
    """The poll's row, locked; PollNotFound or NotOwner.

    A state change locks it FOR NO KEY UPDATE, which does not wait for the workers (they
    hold FOR KEY SHARE); a deletion FOR UPDATE, which does.
    """
    lock = "FOR UPDATE" if for_delete else "FOR NO KEY UPDATE"
    cursor.execute(f"SELECT {POLL_COLUMNS} FROM polls AS p WHERE p.id = %s {lock}", (poll_id,))
    row = cursor.fetchone()
    if row is None:
        raise PollNotFound(poll_id)
    if row.owner_id != owner_id:
        raise NotOwner(poll_id)
    return row


def set_state(
    database: Database, poll_id: str, owner_id: int | None, state: str, now: datetime
) -> Poll:
    """Close or reopen the owner's poll (owner None: a poll without owner, for ops tools);
    return it as it now is.

    Closing a closed poll changes nothing (its current state is returned, to publish again).
    Reopening clears the closing time, which would otherwise close it again at once.
    """
    if state not in (OPEN, CLOSED):
        raise ValueError(f"unknown state {state!r}")
    with database.begin() as cursor:
        current = poll_from_row(_owned_row(cursor, poll_id, owner_id, for_delete=False), ())
        if current.status(now) != state:
            change = (
                "closed_at = now()" if state == CLOSED else "closed_at = NULL, closes_at = NULL"
            )
            cursor.execute(
                f"UPDATE polls SET state = %s, {change}, revision = revision + 1 WHERE id = %s",
                (state, poll_id),
            )
        return _load(cursor, "WHERE p.id = %s", (poll_id,))[0]


def remove(database: Database, poll_id: str, owner_id: int) -> None:
    """Delete the owner's poll with its options, votes and tallies, in one transaction.

    The poll's row is locked first (FOR UPDATE): a worker applying a batch holds it FOR KEY
    SHARE, so this waits for that batch to commit and then deletes its votes too, and a
    batch that comes later finds the poll gone (worker/sink.py).
    """
    with database.begin() as cursor:
        _owned_row(cursor, poll_id, owner_id, for_delete=True)
        cursor.execute("DELETE FROM votes WHERE poll_id = %s", (poll_id,))
        cursor.execute("DELETE FROM tallies WHERE poll_id = %s", (poll_id,))
        cursor.execute("DELETE FROM polls WHERE id = %s", (poll_id,))


def option_keys_of(database: Database, poll_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """The option keys of each of these polls that exists (for the worker's catalog)."""
    found: dict[str, set[str]] = {}
    with database.connect() as cursor:
        cursor.execute(
            "SELECT poll_id, key FROM poll_options WHERE poll_id = ANY(%s)", (list(poll_ids),)
        )
        for poll_id, key in cursor.fetchall():
            found.setdefault(poll_id, set()).add(key)
    return {poll_id: frozenset(keys) for poll_id, keys in found.items()}


def every_poll(database: Database, page: int = SWEEP_PAGE) -> Iterator[list[Poll]]:
    """Every poll, `page` at a time in id order (each page is its own short read)."""
    after = ""
    while True:
        with database.connect() as cursor:
            found = _load(cursor, "WHERE p.id > %s ORDER BY p.id LIMIT %s", (after, page))
        if not found:
            return
        yield found
        after = found[-1].id


def vote_totals(database: Database, poll_ids: list[str]) -> dict[str, int]:
    """Votes counted so far in each of these polls (from `tallies`: O(options) each)."""
    if not poll_ids:
        return {}
    with database.connect() as cursor:
        cursor.execute(
            "SELECT poll_id, sum(count) FROM tallies WHERE poll_id = ANY(%s) GROUP BY poll_id",
            (list(poll_ids),),
        )
        return {poll_id: int(total) for poll_id, total in cursor.fetchall()}
