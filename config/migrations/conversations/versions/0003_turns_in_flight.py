"""Turns in flight: each replica's heartbeat and its running turns, so that another replica can tell a person when the
one answering them died (memory/inflight.py). Two tables of their own, no change to existing ones.

Frozen DDL: write the columns out here, never import today's models (they change; this revision must not).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_turns_in_flight"
down_revision = "0002_answer_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_replicas_beat_at", "replicas", ["beat_at"], unique=False)
    op.create_table(
        "turns_in_flight",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("replica_id", sa.String(length=36), nullable=False),
        sa.Column("owner_oid", sa.String(length=64), nullable=False),
        sa.Column("owner_tenant", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_turns_in_flight_owner_oid", "turns_in_flight", ["owner_oid"], unique=False)
    op.create_index("ix_turns_in_flight_replica_id", "turns_in_flight", ["replica_id"], unique=False)


def downgrade() -> None:
    op.drop_table("turns_in_flight")
    op.drop_table("replicas")
