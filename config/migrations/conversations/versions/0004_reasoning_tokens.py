"""Reasoning tokens: the hidden reasoning of reasoning models (gpt-5.x, o-series), counted apart from visible output.

Azure bills them as output: they are part of `completion_tokens` already, and of the cost. A `reasoning_tokens`
column on `usage_records` (the usage ledger) and on `chain_stats` (the chains' sums), 0 for every row written before
(no model call then was known to reason). The usage reports' covering indexes are made again with the new column, so
the reports still read only the index (memory/usage_reports.py `REPORT_INDEXES`); on Postgres that rebuild reads the
whole table once, inside the migration.

Frozen DDL: write the columns out here, never import today's models (they change; this revision must not).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_reasoning_tokens"
down_revision = "0003_turns_in_flight"
branch_labels = None
depends_on = None

CUBE = ["month", "deployment", "day", "chain", "tenant", "oid", "prompt_tokens", "completion_tokens"]
PEOPLE = ["month", "oid", "tenant", "deployment", "chain", "prompt_tokens", "completion_tokens"]


def _report_indexes(reasoning: list[str]) -> None:
    op.drop_index("ix_usage_report_cube", table_name="usage_records")
    op.create_index("ix_usage_report_cube", "usage_records", [*CUBE, *reasoning, "cost_nanousd"], unique=False)
    op.drop_index("ix_usage_report_people", table_name="usage_records")
    op.create_index("ix_usage_report_people", "usage_records", [*PEOPLE, *reasoning, "cost_nanousd"], unique=False)


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("reasoning_tokens", sa.Integer(), server_default="0", nullable=False))
    op.add_column("chain_stats", sa.Column("reasoning_tokens", sa.BigInteger(), server_default="0", nullable=False))
    _report_indexes(["reasoning_tokens"])


def downgrade() -> None:
    _report_indexes([])  # first: SQLite drops no column an index holds
    op.drop_column("chain_stats", "reasoning_tokens")
    op.drop_column("usage_records", "reasoning_tokens")
