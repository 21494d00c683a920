"""The Postgres schema as SQLAlchemy tables: what the Alembic migrations build (checked by
tests/app/test_schema.py). The apps and the worker query it with plain SQL (core/db.py)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    true,
)

metadata = MetaData()

# One row per voter and poll: their current (last) vote. The stream id orders votes the way
# they entered the Redis stream, so an older vote can never overwrite a newer one.
# No foreign key to polls: checking one per row would cost the worker a lookup and a row lock
# per vote; it locks each poll of a batch once instead (worker/sink.py), and deleting a poll
# deletes its votes and tallies in the same transaction (core/polls/store.py).
votes = Table(
    "votes",
    metadata,
    Column("poll_id", Text, primary_key=True),
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
    Column("poll_id", Text, primary_key=True),
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

# Polls people create (and the first one, configured before polls were data: no owner).
polls = Table(
    "polls",
    metadata,
    Column("id", Text, primary_key=True),
    Column("question", Text, nullable=False),
    Column("owner_id", BigInteger, ForeignKey("accounts.id")),
    Column("state", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("closed_at", DateTime(timezone=True)),
    # Voting ends at this time even while `state` is still open.
    Column("closes_at", DateTime(timezone=True)),
    # Bumped by every change; Redis keeps the highest revision it was given.
    Column("revision", BigInteger, nullable=False, server_default="1"),
    # On the home page while open (else found only through its unguessable link).
    Column("listed", Boolean, nullable=False, server_default=true()),
    CheckConstraint("state IN ('open', 'closed')", name="polls_state_known"),
    Index("polls_owner_created", "owner_id", "created_at"),
)

# A poll's options in order; they never change once the poll exists.
poll_options = Table(
    "poll_options",
    metadata,
    Column("poll_id", Text, ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("label", Text, nullable=False),
    Column("position", SmallInteger, nullable=False),
    UniqueConstraint("poll_id", "position", name="poll_options_position_unique"),
)
