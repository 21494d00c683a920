"""Accounts in Postgres (through the leader): create one, and check a username and password."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.auth import User
from core.models import accounts

UNIQUE_VIOLATION = "23505"


class UsernameTaken(Exception):
    """Another account already has this username."""


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not a real password, only for constant-time answers")


def create_account(engine: Engine, username: str, password: str) -> User:
    """Insert a new account; raise UsernameTaken if the name exists (even on a lost race)."""
    password_hash = generate_password_hash(password)
    query = (
        insert(accounts)
        .values(username=username, password_hash=password_hash)
        .returning(accounts.c.id)
    )
    try:
        with engine.begin() as conn:
            account_id = conn.execute(query).scalar_one()
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) == UNIQUE_VIOLATION:
            raise UsernameTaken(username) from exc
        raise
    return User(int(account_id), username)


def username_taken(engine: Engine, username: str) -> bool:
    """Whether an account has this username (checked before the slow password hashing)."""
    with engine.connect() as conn:
        found = conn.execute(select(accounts.c.id).where(accounts.c.username == username))
        return found.first() is not None


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The account if the password matches, else None (as slowly for unknown usernames)."""
    query = select(accounts.c.id, accounts.c.username, accounts.c.password_hash).where(
        accounts.c.username == username
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        # Same work as for a real account, so response times do not reveal which names exist.
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(row.password_hash, password):
        return None
    return User(int(row.id), row.username)
