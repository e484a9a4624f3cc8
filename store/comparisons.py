"""Side-by-side comparisons and their votes, in the conversation database.

A row holds both answers (as shown, blind, A and B), which chain and deployment wrote each, a hash of the question (not
the question), who voted and how. The leaderboard is computed from these rows. Deleting the conversation erases the
answers' text but keeps the vote: the leaderboard does not change when people clear their history.

A side whose answer failed has the failure's kind in its answer's JSON (`"failure"`). Such a comparison takes no vote
(`set_vote` refuses it): the good answer, if any, was kept when the pair was stored, and a failed answer is never kept.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base

VOTES = ("a", "b", "tie", "both_bad")
FAILURE = "failure"  # key of an answer's JSON: the failure's kind when that side failed



class _ComparisonRow(Base):
    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    owner_oid: Mapped[str] = mapped_column(String(64))
    owner_tenant: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(36))  # the stored answer: A's until the vote picks B
    question_sha256: Mapped[str] = mapped_column(String(64))
    chain_a: Mapped[str] = mapped_column(String(80))
    deployment_a: Mapped[str] = mapped_column(String(64))
    chain_b: Mapped[str] = mapped_column(String(80))
    deployment_b: Mapped[str] = mapped_column(String(64))
    answer_a: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the answer turn as shown; None once erased
    answer_b: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    vote: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    voter_oid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    voted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Comparison:
    id: str
    conversation_id: str
    message_id: str
    chain_a: str
    deployment_a: str
    chain_b: str
    deployment_b: str
    answer_a: dict | None
    answer_b: dict | None
    vote: str | None

    def contender(self, side: str) -> str:
        """What the leaderboard ranks: chain@version, and the deployment it ran on."""
        return f"{self.chain_a} · {self.deployment_a}" if side == "a" else f"{self.chain_b} · {self.deployment_b}"

    @property
    def failed(self) -> dict[str, str]:
        """The sides whose answer failed ("a"/"b" → the failure's kind); such a comparison takes no vote."""
        return failed_sides(self.answer_a, self.answer_b)


def with_failure(answer: dict, kind: str) -> dict:
    """An answer's JSON marked as failed with `kind` (a chains.errors Failure kind)."""
    return {**answer, FAILURE: kind}


def failed_sides(answer_a: dict | None, answer_b: dict | None) -> dict[str, str]:
    return {side: answer[FAILURE] for side, answer in (("a", answer_a), ("b", answer_b))
            if isinstance(answer, dict) and answer.get(FAILURE)}


def question_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def add_comparison(db: Session, comparison: Comparison, owner_oid: str, owner_tenant: str, question: str) -> None:
    db.add(_ComparisonRow(
        id=comparison.id, conversation_id=comparison.conversation_id, owner_oid=owner_oid, owner_tenant=owner_tenant,
        message_id=comparison.message_id, question_sha256=question_hash(question), chain_a=comparison.chain_a,
        deployment_a=comparison.deployment_a, chain_b=comparison.chain_b, deployment_b=comparison.deployment_b,
        answer_a=comparison.answer_a, answer_b=comparison.answer_b, created_at=datetime.now(timezone.utc)))


def load_comparison(db: Session, comparison_id: str, owner_oid: str, owner_tenant: str) -> Comparison | None:
    row = db.scalar(select(_ComparisonRow).where(_ComparisonRow.id == comparison_id,
                                                 _ComparisonRow.owner_oid == owner_oid,
                                                 _ComparisonRow.owner_tenant == owner_tenant))
    return None if row is None else _comparison(row)


def set_vote(db: Session, comparison_id: str, vote: str, voter_oid: str) -> bool:
    """Record the vote once: a second vote on the same comparison changes nothing (returns False), and neither does a
    vote on a comparison with a failed side (a failed answer is never kept or ranked; returns False)."""
    if vote not in VOTES:
        raise ValueError(f"a vote is one of {', '.join(VOTES)}")
    answers = db.execute(select(_ComparisonRow.answer_a, _ComparisonRow.answer_b)
                         .where(_ComparisonRow.id == comparison_id)).first()
    if answers is not None and failed_sides(answers.answer_a, answers.answer_b):
        return False
    result = db.execute(update(_ComparisonRow).where(_ComparisonRow.id == comparison_id, _ComparisonRow.vote.is_(None))
                        .values(vote=vote, voter_oid=voter_oid, voted_at=datetime.now(timezone.utc)))
    return result.rowcount == 1


def erase_answers(db: Session, conversation_id: str) -> None:
    db.execute(update(_ComparisonRow).where(_ComparisonRow.conversation_id == conversation_id)
               .values(answer_a=None, answer_b=None))


def voted(db: Session) -> list[Comparison]:
    """Every voted comparison, without the answers' text (what the leaderboard needs)."""
    rows = db.execute(select(_ComparisonRow.id, _ComparisonRow.conversation_id, _ComparisonRow.message_id,
                             _ComparisonRow.chain_a, _ComparisonRow.deployment_a, _ComparisonRow.chain_b,
                             _ComparisonRow.deployment_b, _ComparisonRow.vote)
                      .where(_ComparisonRow.vote.is_not(None)).order_by(_ComparisonRow.voted_at)).all()
    return [Comparison(r.id, r.conversation_id, r.message_id, r.chain_a, r.deployment_a, r.chain_b, r.deployment_b,
                       None, None, r.vote) for r in rows]


def _comparison(row: _ComparisonRow) -> Comparison:
    return Comparison(row.id, row.conversation_id, row.message_id, row.chain_a, row.deployment_a, row.chain_b,
                      row.deployment_b, row.answer_a, row.answer_b, row.vote)


def comparisons_of(db: Session, owner_oid: str, owner_tenant: str) -> list[dict]:
    """Every comparison row of one person (both answers while the conversation exists, and the vote), oldest first,
    without the owner columns: what their data export holds."""
    rows = db.execute(select(Base.metadata.tables["comparisons"])
                      .where(_ComparisonRow.owner_oid == owner_oid, _ComparisonRow.owner_tenant == owner_tenant)
                      .order_by(_ComparisonRow.created_at, _ComparisonRow.id)).mappings().all()
    return [{k: v for k, v in row.items() if k not in ("owner_oid", "owner_tenant")} for row in rows]
