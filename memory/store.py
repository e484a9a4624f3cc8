"""Persistent conversations per person (Entra oid + tenant) in SQL: SQLite by default, Postgres via APP_DATABASE_URL.

Every query is filtered by the owner, so an id from someone else's conversation behaves exactly like an id that does
not exist. A turn (the person's message, the answer with its usage, chain and deployment, and the memory state) is
written in one transaction, only once the answer has ended (complete, stopped, filtered or failed); the full-text search
index (store/search.py) changes in the same transactions as the turns, renames and deletes it reflects.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, cast, delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from config.migrations import upgrade
from memory.conversation import Conversation, Turn, Usage, Version
from memory.documents import (
    AttachedDocument,
    add_documents,
    delete_documents,
    load_documents,
    load_passages,
    passage_batches,
    ref_in_use,
)
from memory.summary import dumps, loads
from store.base import Base
from store.comparisons import (
    Comparison,
    add_comparison,
    comparisons_of,
    erase_answers,
    load_comparison,
    set_vote,
    voted,
)
from store.files import FileStore, references_in, to_data_urls, to_references
from store.search import SearchHit, parse_query, search_index
from store.versions import add_version, delete_versions, load_versions, set_active

TITLE_LENGTH = 60
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    oid: str
    tenant_id: str


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: datetime



class _ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_oid: Mapped[str] = mapped_column(String(64), index=True)
    owner_tenant: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    memory: Mapped[str] = mapped_column(Text, default="[]")  # the messages the model sees next (summary + recent)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)  # deployment, chain, response controls
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class _MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    notice: Mapped[str | None] = mapped_column(Text, nullable=True)
    deployment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain: Mapped[str | None] = mapped_column(String(80), nullable=True)
    usage: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    attachments: Mapped[list | None] = mapped_column(JSON, nullable=True)  # image references, never image data
    feedback: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _StepsRow(Base):
    """What ran before an answer (tool calls, drafts, summaries), one row per answer that had any. A table of its own,
    with no change to `messages`."""

    __tablename__ = "message_steps"

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    steps: Mapped[list] = mapped_column(JSON)


class _SourcesRow(Base):
    """The document passages an answer cited ([1], [2], …), one row per answer that cited any."""

    __tablename__ = "message_sources"

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    sources: Mapped[list] = mapped_column(JSON)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def auto_title(text: str) -> str:
    """The first words of the first message, cut on a word boundary."""
    words = " ".join(text.split())
    if len(words) <= TITLE_LENGTH:
        return words or "New conversation"
    return words[:TITLE_LENGTH].rsplit(" ", 1)[0] + "…"


class ConversationStore:
    def __init__(self, engine: Engine, files: FileStore | None = None) -> None:
        self._engine = engine
        self.files = files
        upgrade(engine, "conversations")  # the schema (config/migrations), one process at a time
        self._search = search_index(engine)  # full-text search (the migrations made it and filled it)

    def _dump_memory(self, conversation: Conversation) -> str:
        return self._dump(conversation.memory)

    def _dump(self, messages: list) -> str:
        return dumps(to_references(messages, self.files) if self.files else messages)

    def _load(self, text: str) -> list:
        messages = loads(text)
        return to_data_urls(messages, self.files) if self.files else messages

    def _owned(self, owner: Owner):
        return (_ConversationRow.owner_oid == owner.oid) & (_ConversationRow.owner_tenant == owner.tenant_id)

    def list(self, owner: Owner, *, limit: int | None = None, search: str | None = None) -> list[ConversationSummary]:
        """The person's conversations, most recently updated first; at most `limit`, titles containing `search`."""
        query = (select(_ConversationRow.id, _ConversationRow.title, _ConversationRow.updated_at)
                 .where(self._owned(owner)).order_by(_ConversationRow.updated_at.desc(), _ConversationRow.id))
        if search and search.strip():
            query = query.where(_ConversationRow.title.ilike(f"%{_escape_like(search.strip())}%", escape="\\"))
        if limit is not None:
            query = query.limit(limit)
        with Session(self._engine) as db:
            rows = db.execute(query).all()
        return [ConversationSummary(r.id, r.title or "New conversation", r.updated_at) for r in rows]

    def search(self, owner: Owner, query: str | None, *, limit: int = 20) -> list[SearchHit]:
        """The person's conversations whose title or messages match `query` (words and "quoted phrases", stemmed),
        best first, one hit per conversation with its best-matching message and a snippet (store/search.py).
        An empty query finds nothing; no query text is ever read as search syntax."""
        parsed = parse_query(query)
        if parsed.empty:
            return []
        with Session(self._engine) as db:
            return self._search.search(db, owner.oid, owner.tenant_id, parsed, limit)

    def load(self, owner: Owner, conversation_id: str) -> Conversation | None:
        """The conversation with its whole history and memory; None if it is not this person's (or not there)."""
        with Session(self._engine) as db:
            row = db.scalar(select(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation_id))
            if row is None:
                return None
            messages = db.scalars(select(_MessageRow).where(_MessageRow.conversation_id == row.id)
                                  .order_by(_MessageRow.seq)).all()
            conversation = Conversation(id=row.id, title=row.title, settings=dict(row.settings or {}),
                                        memory=self._load(row.memory), persisted=True)
            steps = {r.message_id: r.steps for r in db.scalars(select(_StepsRow).where(
                _StepsRow.conversation_id == row.id))}
            sources = {r.message_id: r.sources for r in db.scalars(select(_SourcesRow).where(
                _SourcesRow.conversation_id == row.id))}
            conversation.turns = [_turn(m, steps.get(m.id), sources.get(m.id)) for m in messages]
            versions = load_versions(db, row.id)
            for turn in conversation.turns:
                turn.versions = [self._version(v) for v in versions.get(turn.id, ())]
            conversation.documents = load_documents(db, row.id)
        return conversation

    def load_passages(self, conversation: Conversation, documents: list[AttachedDocument]) -> None:
        """Fill stored documents' passages (and vectors) for a turn that sends or searches them."""
        stored = [d for d in documents if not d.passages]
        if stored and conversation.persisted:
            with Session(self._engine) as db:
                load_passages(db, conversation.id, stored)

    def commit_turn(self, owner: Owner, conversation: Conversation, user: Turn, answer: Turn,
                    documents: list[AttachedDocument] = (), comparison: Comparison | None = None,
                    usage: tuple | None = None) -> None:
        """Write the person's message, the answer, the documents that came with the message (passages and vectors)
        and the new memory state together, or nothing at all."""
        now = _now()
        with Session(self._engine) as db, db.begin():
            row = db.scalar(select(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation.id))
            if row is None:
                if conversation.persisted:  # deleted meanwhile (another tab), or not this person's
                    raise LookupError("conversation not found")
                row = _ConversationRow(id=conversation.id, owner_oid=owner.oid, owner_tenant=owner.tenant_id,
                                       title=conversation.title or auto_title(user.content), created_at=now,
                                       updated_at=now)
                db.add(row)
            seq = db.scalar(select(func.count()).select_from(_MessageRow)
                            .where(_MessageRow.conversation_id == conversation.id)) or 0
            indexed = []
            for offset, turn in enumerate((user, answer)):
                message = _row(turn, conversation.id, seq + offset, now)
                db.add(message)
                indexed.append((message.id, turn.content))
                if turn.steps:
                    db.add(_StepsRow(message_id=turn.id, conversation_id=conversation.id, steps=list(turn.steps)))
                if turn.sources:
                    db.add(_SourcesRow(message_id=turn.id, conversation_id=conversation.id,
                                       sources=list(turn.sources)))
            later = add_documents(db, conversation.id, list(documents), now)
            if comparison is not None:
                add_comparison(db, comparison, owner.oid, owner.tenant_id, user.content)
            if usage is not None:  # (ledger, audit records, reservation): usage and budget in the same transaction
                ledger, records, reservation = usage
                ledger.record(db, owner.oid, owner.tenant_id, records, reservation)
            self._search.add(db, conversation.id, owner.oid, owner.tenant_id, row.title, indexed)
            row.memory = self._dump_memory(conversation)
            row.settings = dict(conversation.settings)
            row.updated_at = now
            title = row.title
        conversation.persisted = True
        conversation.title = title
        for document in later:
            self._write_passages(conversation.id, document)

    def _write_passages(self, conversation_id: str, document: AttachedDocument) -> None:
        """A long document's passages, after the turn, in short transactions (others' turns commit in between). If
        writing fails half-way the document keeps the passages written: searching uses what is there."""
        try:
            for rows in passage_batches(conversation_id, document):
                with Session(self._engine) as db, db.begin():
                    db.add_all(rows)
        except Exception as exc:  # noqa: BLE001 - the turn is stored; the index is incomplete, and the log says so
            log.error("could not store all passages of a document: %s", type(exc).__name__)

    def comparisons_of(self, owner: Owner) -> list[dict]:
        """The person's side-by-side comparisons and votes, as their data export holds them."""
        with Session(self._engine) as db:
            return comparisons_of(db, owner.oid, owner.tenant_id)

    def comparison(self, owner: Owner, comparison_id: str) -> Comparison | None:
        with Session(self._engine) as db:
            return load_comparison(db, comparison_id, owner.oid, owner.tenant_id)

    def voted_comparisons(self) -> list[Comparison]:
        with Session(self._engine) as db:
            return voted(db)

    def record_vote(self, owner: Owner, conversation: Conversation, comparison: Comparison, vote: str,
                    kept: Turn | None) -> bool:
        """The vote, and (when it keeps the other answer) that answer in place of the stored one with the memory that
        follows it, in one transaction. False if the comparison was voted on already."""
        with Session(self._engine) as db, db.begin():
            if load_comparison(db, comparison.id, owner.oid, owner.tenant_id) is None:
                return False
            if not set_vote(db, comparison.id, vote, owner.oid):
                return False
            if kept is not None:
                self._replace_answer(db, conversation.id, comparison.message_id, kept)
                db.execute(update(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation.id)
                           .values(memory=self._dump_memory(conversation), updated_at=_now()))
        return True

    def _replace_answer(self, db: Session, conversation_id: str, message_id: str, answer: Turn) -> None:
        """The stored answer `message_id`: its text, outcome, usage, steps and sources become `answer`'s (the message
        keeps its id)."""
        replaced = _row(answer, conversation_id, 0, _now())
        db.execute(update(_MessageRow).where(_MessageRow.id == message_id, _MessageRow.conversation_id == conversation_id)
                   .values(content=replaced.content, status=replaced.status, notice=replaced.notice,
                           deployment=replaced.deployment, chain=replaced.chain, usage=replaced.usage,
                           feedback=replaced.feedback))
        self._search.replace_content(db, conversation_id, message_id, replaced.content)
        for table, column, value in ((_StepsRow, "steps", answer.steps), (_SourcesRow, "sources", answer.sources)):
            db.execute(delete(table).where(table.message_id == message_id))
            if value:
                db.add(table(message_id=message_id, conversation_id=conversation_id, **{column: list(value)}))

    def use_version(self, owner: Owner, conversation: Conversation, user: Turn, answer: Turn,
                    new_versions: list[Version] = (), usage: tuple | None = None) -> None:
        """Put a version of the last exchange in use: the question and answer rows, the search index and the memory
        become that version's, the thumbs of the version left behind stay with it; `new_versions` (a regenerated or
        edited exchange, and the first time also the original) are added, and the new answer's usage recorded, in the
        same transaction. `answer.version_in_use` says which version."""
        with Session(self._engine) as db, db.begin():
            row = db.scalar(select(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation.id))
            if row is None:
                raise LookupError("conversation not found")
            feedback = db.scalar(select(_MessageRow.feedback).where(_MessageRow.id == answer.id,
                                                                    _MessageRow.conversation_id == conversation.id))
            for version in new_versions:
                add_version(db, conversation.id, answer.id, {
                    "n": version.n, "question": version.question, "excluded": version.excluded,
                    "answer": answer_record(version.answer), "feedback": version.answer.feedback,
                    "memory_tail": self._dump(version.memory_tail), "active": False})
            set_active(db, answer.id, answer.version_in_use, feedback)
            db.execute(update(_MessageRow).where(_MessageRow.id == user.id, _MessageRow.conversation_id == conversation.id)
                       .values(content=user.content, excluded=user.excluded))
            self._search.replace_content(db, conversation.id, user.id, user.content)
            self._replace_answer(db, conversation.id, answer.id, answer)
            if usage is not None:
                ledger, records, reservation = usage
                ledger.record(db, owner.oid, owner.tenant_id, records, reservation)
            row.memory = self._dump_memory(conversation)
            row.updated_at = _now()

    def _version(self, stored: dict) -> Version:
        answer = answer_from_record(stored["answer"])
        answer.feedback = stored["feedback"]
        return Version(stored["n"], stored["question"], answer, stored["excluded"], self._load(stored["memory_tail"]),
                       stored["active"])

    def save_memory(self, owner: Owner, conversation: Conversation) -> bool:
        """Store what the model remembers after a "summarise now" (no new messages)."""
        with Session(self._engine) as db, db.begin():
            result = db.execute(update(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation.id)
                                .values(memory=self._dump_memory(conversation), updated_at=_now()))
        return result.rowcount == 1

    def rename(self, owner: Owner, conversation_id: str, title: str) -> bool:
        title = " ".join(title.split())[:200]
        if not title:
            raise ValueError("a title cannot be empty")
        with Session(self._engine) as db, db.begin():
            result = db.execute(update(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation_id)
                                .values(title=title))
            if result.rowcount == 1:
                self._search.retitle(db, owner.oid, owner.tenant_id, conversation_id, title)
        return result.rowcount == 1

    def delete(self, owner: Owner, conversation_id: str) -> bool:
        """Delete the conversation, its messages, documents and passages, and the files no other conversation
        still uses."""
        with Session(self._engine) as db, db.begin():
            owned = db.scalar(select(_ConversationRow).where(self._owned(owner), _ConversationRow.id == conversation_id))
            if owned is None:
                return False
            files = references_in(owned.memory)
            for attachments in db.scalars(select(_MessageRow.attachments).where(_MessageRow.conversation_id == owned.id)):
                files |= references_in(json.dumps(attachments))
            files |= delete_documents(db, owned.id)
            erase_answers(db, owned.id)  # the vote stays for the leaderboard; the answers' text goes
            delete_versions(db, owned.id)
            db.execute(delete(_StepsRow).where(_StepsRow.conversation_id == owned.id))
            db.execute(delete(_SourcesRow).where(_SourcesRow.conversation_id == owned.id))
            self._search.remove(db, owned.id)
            db.execute(delete(_MessageRow).where(_MessageRow.conversation_id == owned.id))
            db.execute(delete(_ConversationRow).where(_ConversationRow.id == owned.id))
        if self.files:
            self._remove_unused_files(files)
        return True

    def _remove_unused_files(self, references: set[str]) -> None:
        # Files are content-addressed and shared: the same picture in another conversation (anyone's) keeps its file.
        with Session(self._engine) as db:
            for reference in references:
                used = db.scalar(select(func.count()).select_from(_MessageRow).where(
                    cast(_MessageRow.attachments, Text).contains(reference, autoescape=True)))
                used = used or db.scalar(select(func.count()).select_from(_ConversationRow).where(
                    _ConversationRow.memory.contains(reference, autoescape=True)))
                used = used or ref_in_use(db, reference)
                if not used:
                    try:
                        self.files.remove(reference)
                    except OSError as exc:  # the conversation is gone already; a leftover file must not fail that
                        log.warning("could not delete a stored file: %s", type(exc).__name__)

    def set_feedback(self, owner: Owner, conversation_id: str, message_id: str, score: int) -> bool:
        with Session(self._engine) as db, db.begin():
            owned = db.scalar(select(_ConversationRow.id).where(self._owned(owner), _ConversationRow.id == conversation_id))
            if owned is None:
                return False
            result = db.execute(update(_MessageRow).where(_MessageRow.conversation_id == owned,
                                                          _MessageRow.id == message_id).values(feedback=score))
        return result.rowcount == 1


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _usage_json(usage: Usage | None) -> dict | None:
    if usage is None:
        return None
    return usage.as_json()


def _usage_from(data: dict | str | None) -> Usage | None:
    if not data:
        return None
    data = data if isinstance(data, dict) else json.loads(data)
    return Usage.from_json(data)


def answer_record(turn: Turn) -> dict:
    """An answer as JSON (for a side-by-side comparison row)."""
    return {"id": turn.id, "content": turn.content, "status": turn.status, "notice": turn.notice,
            "deployment": turn.deployment, "chain": turn.chain, "usage": _usage_json(turn.usage),
            "steps": list(turn.steps), "sources": list(turn.sources)}


def answer_from_record(data: dict) -> Turn:
    return Turn(role="assistant", content=data["content"], deployment=data["deployment"], chain=data["chain"],
                usage=_usage_from(data.get("usage")), status=data["status"], notice=data.get("notice"),
                steps=list(data.get("steps") or []), sources=list(data.get("sources") or []), id=data["id"])


def _row(turn: Turn, conversation_id: str, seq: int, now: datetime) -> _MessageRow:
    usage = _usage_json(turn.usage)
    return _MessageRow(id=turn.id or str(uuid.uuid4()), conversation_id=conversation_id, seq=seq, role=turn.role,
                       content=turn.content, status=turn.status, notice=turn.notice, deployment=turn.deployment,
                       chain=turn.chain, usage=usage, excluded=turn.excluded, feedback=turn.feedback, created_at=now,
                       attachments=turn.attachments or None)


def _turn(row: _MessageRow, steps: list | None = None, sources: list | None = None) -> Turn:
    usage = _usage_from(row.usage)
    return Turn(role=row.role, content=row.content, deployment=row.deployment, chain=row.chain, usage=usage,
                status=row.status, notice=row.notice, excluded=row.excluded, feedback=row.feedback, id=row.id,
                attachments=list(row.attachments or []), steps=list(steps or []), sources=list(sources or []))
