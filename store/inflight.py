"""Turns in flight, so that another replica can tell a person when the one answering them died.

A turn is stored once, when its answer has ended. If the replica running it is killed first, nothing of it is stored,
and the person's page reconnects (through the proxy) to another replica that knows nothing of it. So each replica
writes a heartbeat every `BEAT` seconds, and each running turn a row naming its replica and the person's message. A
row whose replica has not beaten for `DEAD_AFTER` seconds is an interrupted turn: the page that finds it says so, puts
the message back in the person's input, and deletes the row. A turn that ends normally (stored, stopped, failed or
not sent) deletes its own row.
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import DateTime, String, Text, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from config.migrations import upgrade
from store.base import Base

log = logging.getLogger("chat.inflight")
BEAT = 2.0  # seconds between a replica's heartbeats
DEAD_AFTER = 6.0  # a replica silent this long is gone (three missed beats)



class _ReplicaRow(Base):
    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class _TurnRow(Base):
    __tablename__ = "turns_in_flight"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(36), index=True)
    owner_oid: Mapped[str] = mapped_column(String(64), index=True)
    owner_tenant: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(36))
    question: Mapped[str] = mapped_column(Text)  # handed back to the person if the turn is interrupted
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Interrupted:
    conversation_id: str
    question: str
    started_at: datetime


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite hands back naive times


class TurnsInFlight:
    """This replica's heartbeat (a daemon thread) and its running turns, in the conversation database."""

    def __init__(self, engine: Engine, *, beat: float = BEAT, dead_after: float = DEAD_AFTER) -> None:
        self._engine, self.beat, self.dead_after = engine, beat, dead_after
        upgrade(engine, "conversations")  # the schema (config/migrations, 0003)
        self.replica_id = str(uuid.uuid4())
        now = _now()
        with Session(engine) as db, db.begin():
            db.add(_ReplicaRow(id=self.replica_id, started_at=now, beat_at=now))
            # Replicas gone for a day (killed, not closed) and turns nobody came back for: bounded tables.
            db.execute(delete(_ReplicaRow).where(_ReplicaRow.beat_at < now - timedelta(days=1)))
            db.execute(delete(_TurnRow).where(_TurnRow.started_at < now - timedelta(days=7)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="replica-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.beat):
            try:
                with Session(self._engine) as db, db.begin():
                    db.execute(update(_ReplicaRow).where(_ReplicaRow.id == self.replica_id).values(beat_at=_now()))
            except Exception as exc:  # noqa: BLE001 - the database is briefly away: beat again next time
                log.warning("heartbeat failed: %s", type(exc).__name__)

    def close(self) -> None:
        """Stop beating and leave (a replica shutting down cleanly)."""
        self._stop.set()
        self._thread.join(self.beat * 2)
        with Session(self._engine) as db, db.begin():
            db.execute(delete(_ReplicaRow).where(_ReplicaRow.id == self.replica_id))

    def begin(self, owner_oid: str, owner_tenant: str, conversation_id: str, question: str) -> str:
        turn_id = str(uuid.uuid4())
        with Session(self._engine) as db, db.begin():
            db.add(_TurnRow(id=turn_id, replica_id=self.replica_id, owner_oid=owner_oid, owner_tenant=owner_tenant,
                            conversation_id=conversation_id, question=question, started_at=_now()))
        return turn_id

    def end(self, turn_id: str) -> None:
        with Session(self._engine) as db, db.begin():
            db.execute(delete(_TurnRow).where(_TurnRow.id == turn_id))

    def pending(self, owner_oid: str, owner_tenant: str) -> tuple[list[Interrupted], bool]:
        """This person's interrupted turns (taken: each is reported once), and whether any turn of theirs is still
        running on another replica that may yet turn out to be dead (worth looking again in a moment)."""
        dead_before = _now() - timedelta(seconds=self.dead_after)
        with Session(self._engine) as db, db.begin():
            rows = db.execute(
                select(_TurnRow, _ReplicaRow.beat_at).outerjoin(_ReplicaRow, _ReplicaRow.id == _TurnRow.replica_id)
                .where(_TurnRow.owner_oid == owner_oid, _TurnRow.owner_tenant == owner_tenant)
                .order_by(_TurnRow.started_at)).all()
            dead = [turn for turn, beat in rows
                    if turn.replica_id != self.replica_id and (beat is None or _aware(beat) < dead_before)]
            if dead:
                db.execute(delete(_TurnRow).where(_TurnRow.id.in_([t.id for t in dead])))
            elsewhere = any(turn.replica_id != self.replica_id for turn, _ in rows if turn not in dead)
        return [Interrupted(t.conversation_id, t.question, _aware(t.started_at)) for t in dead], elsewhere
