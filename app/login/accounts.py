"""Accounts in Postgres (through the leader): create one, and check a username and password."""

from __future__ import annotations

from functools import cache

from psycopg2 import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.auth import User
from core.db import Database

UNIQUE_VIOLATION = "23505"


class UsernameTaken(Exception):
    """Another account already has this username."""


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not a real password, only for constant-time answers")


def create_account(database: Database, username: str, password: str) -> User:
    """Insert a new account; raise UsernameTaken if the name exists (even on a lost race)."""
    password_hash = generate_password_hash(password)
    try:
        with database.begin() as cursor:
            cursor.execute(
                "INSERT INTO accounts (username, password_hash) VALUES (%s, %s) RETURNING id",
                (username, password_hash),
            )
            (account_id,) = cursor.fetchone()
    except IntegrityError as exc:
        if exc.pgcode == UNIQUE_VIOLATION:
            raise UsernameTaken(username) from exc
        raise
    return User(int(account_id), username)


def username_taken(database: Database, username: str) -> bool:
    """Whether an account has this username (checked before the slow password hashing)."""
    with database.connect() as cursor:
        cursor.execute("SELECT 1 FROM accounts WHERE username = %s", (username,))
        return cursor.fetchone() is not None


def authenticate(database: Database, username: str, password: str) -> User | None:
    """The account if the password matches, else None (as slowly for unknown usernames)."""
    with database.connect() as cursor:
        cursor.execute(
            "SELECT id, username, password_hash FROM accounts WHERE username = %s", (username,)
        )
        row = cursor.fetchone()
    if row is None:
        # Same work as for a real account, so response times do not reveal which names exist.
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(row.password_hash, password):
        return None
    return User(int(row.id), row.username)
