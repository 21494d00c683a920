"""Polls as data: polls and poll_options; votes and tallies keyed by poll.

The poll configured until now (POLL_QUESTION / POLL_OPTIONS in the environment of the process
running this migration; default "Cats or dogs?" / Cats,Dogs) becomes the poll with id
"first", without an owner, and every existing vote and tally becomes one of its. An option
that votes or tallies name but POLL_OPTIONS no longer lists is kept as an option of the first
poll (its key as label), so no counted vote disappears.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import logging

import sqlalchemy as sa
from alembic import op

from core.config import environment, parse_options

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")

# core.polls.FIRST_POLL_ID when this was written; a migration does not follow later code.
FIRST = "first"


def _create_tables() -> None:
    op.create_table(
        "polls",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("owner_id", sa.BigInteger, sa.ForeignKey("accounts.id")),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("closes_at", sa.DateTime(timezone=True)),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("listed", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.CheckConstraint("state IN ('open', 'closed')", name="polls_state_known"),
    )
    op.create_index("polls_owner_created", "polls", ["owner_id", "created_at"])
    op.create_table(
        "poll_options",
        sa.Column(
            "poll_id", sa.Text, sa.ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.UniqueConstraint("poll_id", "position", name="poll_options_position_unique"),
    )


def _seed_first_poll() -> None:
    env = environment()
    question = env.get("POLL_QUESTION", "Cats or dogs?")
    options = [(o.key, o.label) for o in parse_options(env.get("POLL_OPTIONS", "Cats,Dogs"))]
    conn = op.get_bind()
    stored = conn.execute(
        sa.text(
            "SELECT option FROM tallies WHERE count > 0 UNION SELECT DISTINCT option FROM votes"
        )
    ).scalars()
    known = {key for key, _ in options}
    for key in sorted(set(stored) - known):
        logger.warning(
            "option %r has votes but is not in POLL_OPTIONS: kept in the first poll", key
        )
        options.append((key, key))
    conn.execute(
        sa.text("INSERT INTO polls (id, question, state) VALUES (:id, :question, 'open')"),
        {"id": FIRST, "question": question},
    )
    conn.execute(
        sa.text(
            "INSERT INTO poll_options (poll_id, key, label, position)"
            " VALUES (:poll, :key, :label, :position)"
        ),
        [
            {"poll": FIRST, "key": key, "label": label, "position": position}
            for position, (key, label) in enumerate(options, 1)
        ],
    )
    # Rows of options nobody voted for that are not options of the poll: nothing to keep.
    conn.execute(
        sa.text("DELETE FROM tallies WHERE NOT (option = ANY(:keys))"),
        {"keys": [key for key, _ in options]},
    )


def _key_by_poll(table: str, other: str) -> None:
    # A constant default is stored once, not written into every row (PostgreSQL 11+), so this
    # takes no table rewrite however many votes exist; only the new primary key is built.
    op.add_column(table, sa.Column("poll_id", sa.Text, nullable=False, server_default=FIRST))
    op.alter_column(table, "poll_id", server_default=None)
    op.drop_constraint(f"{table}_pkey", table, type_="primary")
    op.create_primary_key(f"{table}_pkey", table, ["poll_id", other])


def upgrade() -> None:
    _create_tables()
    _seed_first_poll()
    _key_by_poll("votes", "voter_id")
    _key_by_poll("tallies", "option")


def downgrade() -> None:
    for table, other in (("votes", "voter_id"), ("tallies", "option")):
        op.execute(sa.text(f"DELETE FROM {table} WHERE poll_id <> '{FIRST}'"))
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.drop_column(table, "poll_id")
        op.create_primary_key(f"{table}_pkey", table, [other])
    op.drop_table("poll_options")
    op.drop_index("polls_owner_created", table_name="polls")
    op.drop_table("polls")
