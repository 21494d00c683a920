"""Votes, per-option tallies and accounts.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "votes",
        sa.Column("voter_id", sa.Text, primary_key=True),
        sa.Column("option", sa.Text, nullable=False),
        sa.Column("stream_ms", sa.BigInteger, nullable=False),
        sa.Column("stream_seq", sa.BigInteger, nullable=False),
        sa.Column("vote_id", sa.Text, nullable=False),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_option", sa.Text),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "tallies",
        sa.Column("option", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("count >= 0", name="tallies_count_not_negative"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("username", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("accounts")
    op.drop_table("tallies")
    op.drop_table("votes")
