"""The Postgres schema shared by the apps and the worker (created by the Alembic migrations)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    func,
)

metadata = MetaData()

# One row per voter: their current (last) vote. The stream id orders votes the way they
# entered the Redis stream, so an older vote can never overwrite a newer one.
votes = Table(
    "votes",
    metadata,
    Column("voter_id", Text, primary_key=True),
    Column("option", Text, nullable=False),
    Column("stream_ms", BigInteger, nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("vote_id", Text, nullable=False),
    Column("voted_at", DateTime(timezone=True), nullable=False),
    # The option this row held before its last update; lets one upsert report the delta.
    Column("prev_option", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Per-option counts kept in the same transaction as `votes`, so results cost O(options).
tallies = Table(
    "tallies",
    metadata,
    Column("option", Text, primary_key=True),
    Column("count", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("count >= 0", name="tallies_count_not_negative"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
