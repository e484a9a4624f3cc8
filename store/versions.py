"""Earlier versions of an exchange, kept when the person regenerates the last answer or edits and resends the last
question: every version (the question as sent, the answer, what the model remembers of the pair), one of them in use.

The `messages` rows always hold the version in use (so listing, search and export read one place); this table holds
each version in full, so switching back restores exactly what was sent and answered. A table of its own, with no
change to `messages`: migration 0002 of config/migrations/conversations creates it.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base


class _VersionRow(Base):
    __tablename__ = "answer_versions"
    __table_args__ = (UniqueConstraint("message_id", "n"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    message_id: Mapped[str] = mapped_column(String(36), index=True)  # the answer's message (same id in every version)
    n: Mapped[int] = mapped_column(Integer)  # 1, 2, … in the order they were written
    question: Mapped[str] = mapped_column(Text)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)  # the question was blocked by the content filter
    answer: Mapped[dict] = mapped_column(JSON)  # the answer as stored (memory/store.answer_record)
    feedback: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_tail: Mapped[str] = mapped_column(Text, default="[]")  # the question and answer as the model remembers them
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def add_version(db: Session, conversation_id: str, message_id: str, version: dict) -> None:
    """`version`: {"n", "question", "excluded", "answer", "feedback", "memory_tail", "active"}."""
    db.add(_VersionRow(conversation_id=conversation_id, message_id=message_id, created_at=datetime.now(timezone.utc),
                       **{k: version[k] for k in ("n", "question", "excluded", "answer", "feedback", "memory_tail",
                                                  "active")}))


def set_active(db: Session, message_id: str, n: int, feedback: int | None) -> None:
    """Version `n` is in use from now on; the one in use until now keeps the thumbs it had (`feedback`)."""
    db.execute(update(_VersionRow).where(_VersionRow.message_id == message_id, _VersionRow.active.is_(True))
               .values(active=False, feedback=feedback))
    db.execute(update(_VersionRow).where(_VersionRow.message_id == message_id, _VersionRow.n == n)
               .values(active=True))


def load_versions(db: Session, conversation_id: str) -> dict[str, list[dict]]:
    """Every answer's versions, oldest first, by the answer's message id (answers never redone have none)."""
    found: dict[str, list[dict]] = {}
    for row in db.scalars(select(_VersionRow).where(_VersionRow.conversation_id == conversation_id)
                          .order_by(_VersionRow.message_id, _VersionRow.n)):
        found.setdefault(row.message_id, []).append(
            {"n": row.n, "question": row.question, "excluded": row.excluded, "answer": row.answer,
             "feedback": row.feedback, "memory_tail": row.memory_tail, "active": row.active})
    return found


def delete_versions(db: Session, conversation_id: str) -> None:
    db.execute(delete(_VersionRow).where(_VersionRow.conversation_id == conversation_id))
