"""Baseline: the conversation database as release 1b3ba3f made it with `create_all`, search index included.

Every object is created only where it is missing, as `create_all` did: an empty database gets all of it, a database
made before migrations existed (by 1b3ba3f or an earlier release, which may lack newer tables, the usage report
indexes or the search index) gets what it lacks, and its search index is filled from the stored messages.

Frozen DDL: written out from the models and memory/search.py of 1b3ba3f; never import today's models here.
"""
from __future__ import annotations

import hashlib
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)
INDEXED_CHARACTERS = 100_000  # of one message, as memory/search.py indexes it


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_oid", sa.String(length=64), nullable=False),
        sa.Column("owner_tenant", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("memory", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    _index("ix_conversations_owner_oid", "conversations", ["owner_oid"])
    _index("ix_conversations_updated_at", "conversations", ["updated_at"])

    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("notice", sa.Text(), nullable=True),
        sa.Column("deployment", sa.String(length=64), nullable=True),
        sa.Column("chain", sa.String(length=80), nullable=True),
        sa.Column("usage", sa.JSON(), nullable=True),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=True),
        sa.Column("feedback", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    _index("ix_messages_conversation_id", "messages", ["conversation_id"])

    for table, column in (("message_steps", "steps"), ("message_sources", "sources")):
        op.create_table(
            table,
            sa.Column("message_id", sa.String(length=36), nullable=False),
            sa.Column("conversation_id", sa.String(length=36), nullable=False),
            sa.Column(column, sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint("message_id"),
            if_not_exists=True)
        _index(f"ix_{table}_conversation_id", table, ["conversation_id"])

    op.create_table(
        "conversation_documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("embedding_deployment", sa.String(length=64), nullable=True),
        sa.Column("embedding_tokens", sa.Integer(), nullable=False),
        sa.Column("embedding_cost", sa.String(length=32), nullable=False),
        sa.Column("passage_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    _index("ix_conversation_documents_conversation_id", "conversation_documents", ["conversation_id"])

    op.create_table(
        "document_passages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["document_id"], ["conversation_documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    _index("ix_document_passages_conversation_id", "document_passages", ["conversation_id"])
    _index("ix_document_passages_document_id", "document_passages", ["document_id"])

    op.create_table(
        "comparisons",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("owner_oid", sa.String(length=64), nullable=False),
        sa.Column("owner_tenant", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("question_sha256", sa.String(length=64), nullable=False),
        sa.Column("chain_a", sa.String(length=80), nullable=False),
        sa.Column("deployment_a", sa.String(length=64), nullable=False),
        sa.Column("chain_b", sa.String(length=80), nullable=False),
        sa.Column("deployment_b", sa.String(length=64), nullable=False),
        sa.Column("answer_a", sa.JSON(), nullable=True),
        sa.Column("answer_b", sa.JSON(), nullable=True),
        sa.Column("vote", sa.String(length=16), nullable=True),
        sa.Column("voter_oid", sa.String(length=64), nullable=True),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    _index("ix_comparisons_conversation_id", "comparisons", ["conversation_id"])
    _index("ix_comparisons_vote", "comparisons", ["vote"])

    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("chain", sa.String(length=80), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    # The covering indexes arrived after the table (89d65e1): databases of the release before have the table only.
    _index("ix_usage_owner_month", "usage_records", ["oid", "tenant", "month"])
    _index("ix_usage_report_cube", "usage_records", ["month", "deployment", "day", "chain", "tenant", "oid",
                                                      "prompt_tokens", "completion_tokens", "cost_nanousd"])
    _index("ix_usage_report_people", "usage_records", ["month", "oid", "tenant", "deployment", "chain",
                                                        "prompt_tokens", "completion_tokens", "cost_nanousd"])

    op.create_table(
        "usage_months",
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("spent_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("reserved_nanousd", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("oid", "tenant", "month"),
        if_not_exists=True)
    op.create_table(
        "usage_reservations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True)
    _index("ix_usage_reservations_oid", "usage_reservations", ["oid"])
    op.create_table(
        "usage_minutes",
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("oid", "tenant", "minute"),
        if_not_exists=True)
    op.create_table(
        "budget_overrides",
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("monthly_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("oid", "tenant"),
        if_not_exists=True)

    op.create_table(
        "chain_stats",
        sa.Column("chain", sa.String(length=80), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=False),
        sa.Column("ttft_ms", sa.BigInteger(), nullable=False),
        sa.Column("ttft_calls", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("thumbs_up", sa.Integer(), nullable=False),
        sa.Column("thumbs_down", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
        if_not_exists=True)

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_search()
    elif dialect == "postgresql":
        _postgres_search()
    # Any other database searches with LIKE over the messages (memory/search.py): no index to make.


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone (it would drop every conversation): restore a backup instead")


def _index(name: str, table: str, columns: list[str], **kw) -> None:
    op.create_index(name, table, columns, unique=False, if_not_exists=True, **kw)


# -- the search index (memory/search.py at 1b3ba3f) --------------------------------------------------------------------

_SQLITE_DDL = [
    """CREATE TABLE IF NOT EXISTS search_documents (
        id INTEGER PRIMARY KEY,
        message_id VARCHAR(36) NOT NULL UNIQUE,
        conversation_id VARCHAR(36) NOT NULL,
        owner_oid VARCHAR(64) NOT NULL,
        owner_tenant VARCHAR(64) NOT NULL,
        owner_key VARCHAR(32) NOT NULL,
        title TEXT NOT NULL,
        content TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ix_search_documents_conversation ON search_documents (conversation_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS conversation_search USING fts5(
        title, content, owner_key, content='search_documents', content_rowid='id', tokenize='porter unicode61')""",
    """CREATE TRIGGER IF NOT EXISTS search_documents_insert AFTER INSERT ON search_documents BEGIN
        INSERT INTO conversation_search (rowid, title, content, owner_key)
        VALUES (new.id, new.title, new.content, new.owner_key);
    END""",
    """CREATE TRIGGER IF NOT EXISTS search_documents_delete AFTER DELETE ON search_documents BEGIN
        INSERT INTO conversation_search (conversation_search, rowid, title, content, owner_key)
        VALUES ('delete', old.id, old.title, old.content, old.owner_key);
    END""",
    """CREATE TRIGGER IF NOT EXISTS search_documents_update AFTER UPDATE ON search_documents BEGIN
        INSERT INTO conversation_search (conversation_search, rowid, title, content, owner_key)
        VALUES ('delete', old.id, old.title, old.content, old.owner_key);
        INSERT INTO conversation_search (rowid, title, content, owner_key)
        VALUES (new.id, new.title, new.content, new.owner_key);
    END""",
]

_SQLITE_BACKFILL = f"""
    INSERT INTO search_documents (message_id, conversation_id, owner_oid, owner_tenant, owner_key, title, content)
    SELECT m.id, m.conversation_id, c.owner_oid, c.owner_tenant, search_owner_key(c.owner_oid, c.owner_tenant),
           c.title, substr(m.content, 1, {INDEXED_CHARACTERS})
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE m.content <> '' AND NOT EXISTS (SELECT 1 FROM search_documents)
    ORDER BY c.updated_at, m.seq"""


def _owner_key(owner_oid: str, owner_tenant: str) -> str:
    """memory/search.owner_key: one FTS5 token per person (the rows written later by the store carry the same)."""
    digest = hashlib.sha256(f"{owner_oid}\n{owner_tenant}".encode()).digest()
    return "o" + str(int.from_bytes(digest[:12], "big"))


def _sqlite_search() -> None:
    bind = op.get_bind()
    try:  # a SQLite built without FTS5 searches with LIKE (memory/search.py finds no index)
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
        bind.exec_driver_sql("DROP TABLE temp.fts5_probe")
    except sa.exc.OperationalError as exc:
        if "fts5" not in str(exc).lower():
            raise
        log.warning("this SQLite has no FTS5: conversation search uses LIKE")
        return
    for statement in _SQLITE_DDL:
        bind.exec_driver_sql(statement)
    bind.connection.driver_connection.create_function("search_owner_key", 2, _owner_key, deterministic=True)
    bind.exec_driver_sql(_SQLITE_BACKFILL)  # a database from before search: every stored message, once


def _postgres_search() -> None:
    op.create_table(
        "message_search",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("owner_oid", sa.String(length=64), nullable=False),
        sa.Column("owner_tenant", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("document", postgresql.TSVECTOR(), sa.Computed(
            "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('english', content), 'B')", persisted=True), nullable=True),
        sa.PrimaryKeyConstraint("message_id"),
        if_not_exists=True)
    _index("ix_message_search_conversation_id", "message_search", ["conversation_id"])
    _index("ix_message_search_document", "message_search", ["document"], postgresql_using="gin",
           postgresql_with={"fastupdate": "off"})
    _index("ix_message_search_owner_position", "message_search", ["owner_oid", "owner_tenant", "position"])

    bind = op.get_bind()
    needs_filling = bind.exec_driver_sql("SELECT NOT EXISTS (SELECT 1 FROM message_search) "
                                         "AND EXISTS (SELECT 1 FROM messages WHERE content <> '')").scalar()
    if not needs_filling:
        return
    # A database from before search. Many rows at once: through the GIN pending list, merged in one pass at the end.
    bind.exec_driver_sql("ALTER INDEX ix_message_search_document SET (fastupdate = on)")
    bind.exec_driver_sql(f"""
        INSERT INTO message_search (message_id, conversation_id, owner_oid, owner_tenant, title, content)
        SELECT m.id, m.conversation_id, c.owner_oid, c.owner_tenant, c.title, left(m.content, {INDEXED_CHARACTERS})
        FROM messages m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.content <> ''
        ORDER BY c.updated_at, m.seq""")
    bind.exec_driver_sql("SELECT gin_clean_pending_list('ix_message_search_document'::regclass)")
    bind.exec_driver_sql("ALTER INDEX ix_message_search_document SET (fastupdate = off)")
    bind.exec_driver_sql("ANALYZE message_search")  # the planner's word statistics, at once rather than at autovacuum
