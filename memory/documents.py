"""Documents attached to a conversation and their passages, in the conversation database (SQLite or Postgres).

The file itself is stored content-addressed under the data directory (like images); the database keeps what a turn
needs: which documents a conversation has, whether each goes to the model whole or by retrieval, and its passages
with their page or section label and, for retrieved documents, their embedding vectors (float32 bytes).
Rows are written in the turn's own transaction (memory/store.py), except the passages of a long document, written
right after it in short transactions of their own; all are deleted with the conversation.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

import numpy as np
from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base

Mode = Literal["whole", "retrieved"]



@dataclass
class Passage:
    """A piece of a document small enough to cite: where it is (page/section) and its text."""

    seq: int
    label: str
    text: str
    tokens: int
    vector: np.ndarray | None = None  # unit-length float32, for retrieved documents


@dataclass
class AttachedDocument:
    """One document in a conversation. `passages` is empty when only the description was loaded."""

    name: str
    kind: str
    ref: str  # stored:<sha256>.<ext>
    mode: Mode
    tokens: int  # the whole text, as the chat model counts it
    pages: int | None = None
    embedding_deployment: str | None = None
    embedding_tokens: int = 0
    embedding_cost: Decimal = Decimal(0)
    passage_count: int = 0
    message_id: str | None = None  # the person's message it came with
    passages: list[Passage] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def describe(self) -> str:
        """One line for the page: what it is and how the model reads it."""
        size = f"{self.pages} page{'s' if self.pages != 1 else ''}" if self.pages else f"{self.tokens:,} tokens"
        if self.mode == "whole":
            return f"{self.name} · {size} · sent whole with each question ({self.tokens:,} tokens)"
        return (f"{self.name} · {size} · {self.passage_count} passages indexed with {self.embedding_deployment} "
                f"({self.embedding_tokens:,} tokens, ${self.embedding_cost:.6f}); the best passages go with each question")


class _DocumentRow(Base):
    __tablename__ = "conversation_documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))
    tokens: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    embedding_deployment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    embedding_tokens: Mapped[int] = mapped_column(Integer, default=0)
    embedding_cost: Mapped[str] = mapped_column(String(32), default="0")
    passage_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _PassageRow(Base):
    __tablename__ = "document_passages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("conversation_documents.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


INLINE_PASSAGES = 200  # a document with more passages has them written after the turn, in short transactions
PASSAGE_BATCH = 200


def add_documents(db: Session, conversation_id: str, documents: list[AttachedDocument],
                  now: datetime) -> list[AttachedDocument]:
    """Inside the turn's transaction: the documents, and the passages of the short ones (all or, on rollback, none).
    Returns the long documents, whose passages the caller writes after the turn (`passage_batches`): a large index
    written inside the turn's transaction would hold the database's write lock, and every other person's turn would
    wait for it."""
    later = []
    for document in documents:
        db.add(_DocumentRow(
            id=document.id, conversation_id=conversation_id, message_id=document.message_id, name=document.name[:255],
            kind=document.kind, ref=document.ref, mode=document.mode, tokens=document.tokens, pages=document.pages,
            embedding_deployment=document.embedding_deployment, embedding_tokens=document.embedding_tokens,
            embedding_cost=str(document.embedding_cost), passage_count=len(document.passages), created_at=now))
        db.flush()  # the parent row first: Postgres checks the passages' foreign key
        if len(document.passages) > INLINE_PASSAGES:
            later.append(document)
        else:
            db.add_all(_passage_rows(conversation_id, document, document.passages))
    return later


def passage_batches(conversation_id: str, document: AttachedDocument):
    """The document's passage rows in batches of PASSAGE_BATCH, one short transaction each."""
    for start in range(0, len(document.passages), PASSAGE_BATCH):
        yield _passage_rows(conversation_id, document, document.passages[start:start + PASSAGE_BATCH])


def _passage_rows(conversation_id: str, document: AttachedDocument, passages) -> list[_PassageRow]:
    return [_PassageRow(document_id=document.id, conversation_id=conversation_id, seq=p.seq, label=p.label[:300],
                        text=p.text, tokens=p.tokens,
                        vector=None if p.vector is None else np.asarray(p.vector, dtype="<f4").tobytes())
            for p in passages]


def load_documents(db: Session, conversation_id: str) -> list[AttachedDocument]:
    """The conversation's documents, described (no passages), in the order they were attached."""
    rows = db.scalars(select(_DocumentRow).where(_DocumentRow.conversation_id == conversation_id)
                      .order_by(_DocumentRow.created_at, _DocumentRow.id)).all()
    return [_document(row) for row in rows]


def load_passages(db: Session, conversation_id: str, documents: list[AttachedDocument]) -> None:
    """Fill each document's passages (with vectors) from the database."""
    by_id = {d.id: d for d in documents}
    for document in documents:
        document.passages = []
    rows = db.scalars(select(_PassageRow).where(_PassageRow.conversation_id == conversation_id,
                                                _PassageRow.document_id.in_(list(by_id)))
                      .order_by(_PassageRow.document_id, _PassageRow.seq)).all()
    for row in rows:
        vector = None if row.vector is None else np.frombuffer(row.vector, dtype="<f4")
        by_id[row.document_id].passages.append(Passage(row.seq, row.label, row.text, row.tokens, vector))


def delete_documents(db: Session, conversation_id: str) -> set[str]:
    """Remove a conversation's documents and passages; returns their file references (for cleanup)."""
    refs = set(db.scalars(select(_DocumentRow.ref).where(_DocumentRow.conversation_id == conversation_id)))
    db.execute(delete(_PassageRow).where(_PassageRow.conversation_id == conversation_id))
    db.execute(delete(_DocumentRow).where(_DocumentRow.conversation_id == conversation_id))
    return refs


def ref_in_use(db: Session, ref: str) -> bool:
    return db.scalar(select(_DocumentRow.id).where(_DocumentRow.ref == ref).limit(1)) is not None


def _document(row: _DocumentRow) -> AttachedDocument:
    return AttachedDocument(
        name=row.name, kind=row.kind, ref=row.ref, mode=row.mode, tokens=row.tokens, pages=row.pages,
        embedding_deployment=row.embedding_deployment, embedding_tokens=row.embedding_tokens,
        embedding_cost=Decimal(row.embedding_cost or "0"), passage_count=row.passage_count,
        message_id=row.message_id, id=row.id)
