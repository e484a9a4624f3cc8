"""Baseline: the sign-in sessions database as release 1b3ba3f made it with `create_all`.

Every object is created only where it is missing, as `create_all` did, so a database made before migrations existed is
adopted as it is. Frozen DDL: written out from auth/sessions.py of 1b3ba3f; never import today's models here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("username", sa.String(length=256), nullable=False),
        sa.Column("roles", sa.String(length=2000), nullable=False),
        sa.Column("token_cache", sa.LargeBinary(), nullable=False),
        sa.Column("draft", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_hash"),
        if_not_exists=True)
    op.create_index("ix_auth_sessions_expires_at", "auth_sessions", ["expires_at"], unique=False, if_not_exists=True)
    op.create_index("ix_auth_sessions_oid", "auth_sessions", ["oid"], unique=False, if_not_exists=True)
    op.create_table(
        "auth_used_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash"),
        if_not_exists=True)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone (it would end every sign-in): restore a backup instead")
