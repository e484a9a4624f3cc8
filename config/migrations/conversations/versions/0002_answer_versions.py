"""Answer versions: the exchanges a person regenerated or edited and resent, each kept in full (memory/versions.py).

A table of its own, with no change to `messages`. Created only where it is missing: databases made by the unreleased
code that introduced it (62cd9e7, before migrations) have it already.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_answer_versions"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("feedback", sa.Integer(), nullable=True),
        sa.Column("memory_tail", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "n"),
        if_not_exists=True)
    op.create_index("ix_answer_versions_conversation_id", "answer_versions", ["conversation_id"], unique=False,
                    if_not_exists=True)
    op.create_index("ix_answer_versions_message_id", "answer_versions", ["message_id"], unique=False,
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_answer_versions_message_id", table_name="answer_versions")
    op.drop_index("ix_answer_versions_conversation_id", table_name="answer_versions")
    op.drop_table("answer_versions")
