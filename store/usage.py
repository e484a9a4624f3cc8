"""Usage, budgets and rate limits in the conversation database (SQLite or Postgres), shared by every replica.

- `usage_records`: one row per model call (answer, summary, draft, embedding, …) with the person, deployment, chain,
  purpose, tokens (reasoning tokens apart, though also part of the completion tokens), cost and outcome, written in
  the same transaction as the turn.
- `usage_months`: per person and month, what was spent and what is reserved by turns in flight. A turn reserves its
  estimated cost with one conditional UPDATE (`spent + reserved + estimate <= budget`), atomic in both databases, so
  two tabs or two replicas sending at once cannot overspend by more than one turn; the reservation is released with
  the real cost when the turn is stored.
- `usage_minutes`: per person and minute, requests and tokens, for rate limits (also one conditional UPDATE).
- `budget_overrides`: an administrator's monthly budget for one person.
Money is kept in integer nano-dollars: sums are exact and comparable in SQL.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, String, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from config.migrations import upgrade
from store.base import Base
from store.money import to_nano, to_usd  # noqa: F401 - also imported from here (engine, reports, pages)

RESERVATION_MINUTES = 15  # a turn in flight longer than this (a crashed replica) no longer holds its reservation
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def month_of(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m")


def next_month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc)



class _UsageRow(Base):
    __tablename__ = "usage_records"
    # Covering indexes for the administration page's GROUP BYs (store/usage_reports.py): each report reads only the
    # index over one month, in group order (1,000,000 rows: 3.3 s without, ≈0.6 s with; bench/admin.py).
    __table_args__ = (Index("ix_usage_owner_month", "oid", "tenant", "month"),
                      Index("ix_usage_report_cube", "month", "deployment", "day", "chain", "tenant", "oid",
                            "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_nanousd"),
                      Index("ix_usage_report_people", "month", "oid", "tenant", "deployment", "chain",
                            "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_nanousd"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[date] = mapped_column(Date)
    month: Mapped[str] = mapped_column(String(7))
    oid: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str] = mapped_column(String(64))
    chain: Mapped[str] = mapped_column(String(80))
    purpose: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    # Of completion_tokens, the hidden reasoning of reasoning models (billed as output: already in the cost).
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_nanousd: Mapped[int] = mapped_column(BigInteger)
    conversation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class _MonthRow(Base):
    __tablename__ = "usage_months"

    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    spent_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)


class _ReservationRow(Base):
    __tablename__ = "usage_reservations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    oid: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7))
    amount_nanousd: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _MinuteRow(Base):
    __tablename__ = "usage_minutes"

    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)


class _OverrideRow(Base):
    __tablename__ = "budget_overrides"

    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    monthly_nanousd: Mapped[int] = mapped_column(BigInteger)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Reservation:
    id: str
    oid: str
    tenant: str
    month: str
    amount_nanousd: int


@dataclass(frozen=True)
class BudgetState:
    budget_nanousd: int | None  # None: no budget
    spent_nanousd: int
    reserved_nanousd: int
    resets_at: datetime

    @property
    def left_nanousd(self) -> int | None:
        return None if self.budget_nanousd is None else self.budget_nanousd - self.spent_nanousd - self.reserved_nanousd

    @property
    def used_share(self) -> float:
        if not self.budget_nanousd:
            return 0.0
        return (self.spent_nanousd + self.reserved_nanousd) / self.budget_nanousd


class OverBudget(Exception):
    def __init__(self, state: BudgetState, estimate_nanousd: int) -> None:
        super().__init__("over budget")
        self.state, self.estimate_nanousd = state, estimate_nanousd


class RateLimited(Exception):
    def __init__(self, retry_at: datetime, what: str) -> None:
        super().__init__(what)
        self.retry_at, self.what = retry_at, what


def budget_for(default_usd: Decimal | None, role_budgets: dict[str, Decimal], roles: Iterable[str],
               override_nanousd: int | None) -> int | None:
    """A person's monthly budget: an administrator's override, else the largest budget of their app roles, else the
    default; None means no limit."""
    if override_nanousd is not None:
        return override_nanousd
    by_role = [role_budgets[r] for r in roles if r in role_budgets]
    if by_role:
        return to_nano(max(by_role))
    return None if default_usd is None else to_nano(default_usd)


class UsageLedger:
    def __init__(self, engine: Engine, clock: Clock = _utc_now) -> None:
        self._engine, self.clock = engine, clock
        upgrade(engine, "conversations")  # the schema (config/migrations)

    # -- budgets -----------------------------------------------------------------------------------------------------
    def override(self, oid: str, tenant: str) -> int | None:
        with Session(self._engine) as db:
            return db.scalar(select(_OverrideRow.monthly_nanousd).where(_OverrideRow.oid == oid,
                                                                        _OverrideRow.tenant == tenant))

    def set_override(self, oid: str, tenant: str, monthly_usd: Decimal | None, set_by: str) -> None:
        """An administrator's budget for one person; None removes it (the role or default budget applies again)."""
        with Session(self._engine) as db, db.begin():
            db.execute(delete(_OverrideRow).where(_OverrideRow.oid == oid, _OverrideRow.tenant == tenant))
            if monthly_usd is not None:
                if monthly_usd < 0:
                    raise ValueError("a budget cannot be negative")
                db.add(_OverrideRow(oid=oid, tenant=tenant, monthly_nanousd=to_nano(monthly_usd), set_by=set_by,
                                    set_at=self.clock()))

    def state(self, oid: str, tenant: str, budget_nanousd: int | None) -> BudgetState:
        now = self.clock()
        with Session(self._engine) as db:
            row = db.get(_MonthRow, (oid, tenant, month_of(now)))
        return BudgetState(budget_nanousd, row.spent_nanousd if row else 0, row.reserved_nanousd if row else 0,
                           next_month_start(now))

    def reserve(self, oid: str, tenant: str, estimate_nanousd: int, budget_nanousd: int | None) -> Reservation:
        """Hold `estimate` against this month's budget, or raise OverBudget. One conditional UPDATE decides, so
        concurrent turns (other tabs, other replicas) are counted exactly; expired holds are reclaimed and the month's
        row created in the same transaction (one commit before every turn, not three)."""
        now = self.clock()
        month = month_of(now)
        reservation = Reservation(str(uuid.uuid4()), oid, tenant, month, estimate_nanousd)
        with Session(self._engine) as db, db.begin():
            self._reclaim_expired(db, oid, tenant, now)
            self._month_row(db, oid, tenant, month)
            condition = [_MonthRow.oid == oid, _MonthRow.tenant == tenant, _MonthRow.month == month]
            if budget_nanousd is not None:
                condition.append(_MonthRow.spent_nanousd + _MonthRow.reserved_nanousd + estimate_nanousd
                                 <= budget_nanousd)
            result = db.execute(update(_MonthRow).where(*condition)
                                .values(reserved_nanousd=_MonthRow.reserved_nanousd + estimate_nanousd))
            if result.rowcount == 1:
                db.add(_ReservationRow(id=reservation.id, oid=oid, tenant=tenant, month=month,
                                       amount_nanousd=estimate_nanousd,
                                       expires_at=now + timedelta(minutes=RESERVATION_MINUTES)))
                return reservation
        # Refused: the expired holds reclaimed and the month's row above are kept (committed); nothing is reserved.
        raise OverBudget(self.state(oid, tenant, budget_nanousd), estimate_nanousd)

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back without spending (nothing was sent after all)."""
        with Session(self._engine) as db, db.begin():
            self._release(db, reservation)

    def _release(self, db: Session, reservation: Reservation) -> None:
        gone = db.execute(delete(_ReservationRow).where(_ReservationRow.id == reservation.id)).rowcount
        if gone:  # not reclaimed as expired meanwhile
            db.execute(update(_MonthRow).where(_MonthRow.oid == reservation.oid, _MonthRow.tenant == reservation.tenant,
                                               _MonthRow.month == reservation.month)
                       .values(reserved_nanousd=_MonthRow.reserved_nanousd - reservation.amount_nanousd))

    def _reclaim_expired(self, db: Session, oid: str, tenant: str, now: datetime) -> None:
        expired = db.scalars(select(_ReservationRow).where(_ReservationRow.oid == oid, _ReservationRow.tenant == tenant,
                                                           _ReservationRow.expires_at < now)).all()
        for row in expired:
            self._release(db, Reservation(row.id, row.oid, row.tenant, row.month, row.amount_nanousd))

    def ensure_month(self, oid: str, tenant: str, month: str) -> None:
        with Session(self._engine) as db, db.begin():
            self._month_row(db, oid, tenant, month)

    def _month_row(self, db: Session, oid: str, tenant: str, month: str) -> None:
        self._insert_missing(db, _MonthRow, dict(oid=oid, tenant=tenant, month=month, spent_nanousd=0,
                                                 reserved_nanousd=0))

    def _insert_missing(self, db: Session, table, values: dict) -> bool:
        """Inside the caller's transaction: the row exists afterwards, inserted here (True) or by another replica
        that got there first. INSERT … ON CONFLICT DO NOTHING on SQLite and Postgres: no failed statement, so the
        transaction goes on (Postgres aborts a transaction at a failed INSERT)."""
        dialect = db.get_bind().dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:  # another database: a savepoint keeps the transaction usable after a duplicate key
            try:
                with db.begin_nested():
                    db.execute(insert(table).values(**values))
                return True
            except IntegrityError:
                return False
        return db.execute(dialect_insert(table).values(**values).on_conflict_do_nothing()).rowcount == 1

    # -- rate limits -------------------------------------------------------------------------------------------------
    def count_request(self, oid: str, tenant: str, tokens: int, max_requests: int | None,
                      max_tokens: int | None, requests: int = 1) -> None:
        """Count `requests` (one message; 0 for a document's indexing, which is tokens only) of `tokens` in this
        minute, or raise RateLimited (nothing counted) when it would pass a per-minute limit. Fixed one-minute
        windows, shared by every replica through the database."""
        now = self.clock()
        minute = now.replace(second=0, microsecond=0)
        with Session(self._engine) as db, db.begin():
            new_minute = self._insert_missing(db, _MinuteRow, dict(oid=oid, tenant=tenant, minute=minute,
                                                                   requests=0, tokens=0))
            condition = [_MinuteRow.oid == oid, _MinuteRow.tenant == tenant, _MinuteRow.minute == minute]
            if max_requests is not None and requests:
                condition.append(_MinuteRow.requests + requests <= max_requests)
            if max_tokens is not None:
                condition.append(_MinuteRow.tokens + tokens <= max_tokens)
            result = db.execute(update(_MinuteRow).where(*condition).values(requests=_MinuteRow.requests + requests,
                                                                            tokens=_MinuteRow.tokens + tokens))
            if result.rowcount == 1:
                if new_minute:  # once a minute per person: forget the minutes no limit looks at any more
                    db.execute(delete(_MinuteRow).where(_MinuteRow.oid == oid, _MinuteRow.tenant == tenant,
                                                        _MinuteRow.minute < minute - timedelta(minutes=5)))
                return
        row = self._minute(oid, tenant, minute)
        what = ("requests" if max_requests is not None and requests and row and row.requests + requests > max_requests
                else "tokens")
        raise RateLimited(minute + timedelta(minutes=1), what)

    def _minute(self, oid: str, tenant: str, minute: datetime) -> _MinuteRow | None:
        with Session(self._engine) as db:
            return db.get(_MinuteRow, (oid, tenant, minute))

    # -- the turn's usage, in the turn's transaction -----------------------------------------------------------------
    def record(self, db: Session, oid: str, tenant: str, records: Iterable[dict],
               reservation: Reservation | None = None) -> int:
        """Inside the caller's transaction: one row per model call record, the month's spend, and the reservation
        released. The month is the reservation's (the budget the turn was allowed against, also across midnight at
        the month's end); its row exists already (`reserve`, `ensure_month`), so nothing here can collide with
        another replica. Returns the nano-dollars spent."""
        now = self.clock()
        month = reservation.month if reservation is not None else month_of(now)
        rows, spent = [], 0
        for record in records:
            if record.get("event") != "model_call" or record.get("recorded"):  # recorded: indexing, settled already
                continue
            cost = to_nano(record.get("cost_usd") or 0)
            spent += cost
            rows.append(dict(at=now, day=now.date(), month=month, oid=oid, tenant=tenant,
                             deployment=record.get("deployment") or "", chain=record.get("chain") or "",
                             purpose=record.get("purpose") or "answer", outcome=record.get("outcome") or "ok",
                             prompt_tokens=int(record.get("prompt_tokens") or 0),
                             completion_tokens=int(record.get("completion_tokens") or 0),
                             reasoning_tokens=int(record.get("reasoning_tokens") or 0), cost_nanousd=cost,
                             conversation_id=record.get("conversation_id")))
        if rows:
            db.execute(insert(_UsageRow), rows)
        if reservation is not None:
            self._release(db, reservation)
        if spent:
            db.execute(update(_MonthRow).where(_MonthRow.oid == oid, _MonthRow.tenant == tenant,
                                               _MonthRow.month == month)
                       .values(spent_nanousd=_MonthRow.spent_nanousd + spent))
        return spent

    def record_now(self, oid: str, tenant: str, records: Iterable[dict], reservation: Reservation | None = None) -> int:
        """`record` in a transaction of its own (calls made by a turn that was not stored)."""
        if reservation is None:
            self.ensure_month(oid, tenant, month_of(self.clock()))
        with Session(self._engine) as db, db.begin():
            return self.record(db, oid, tenant, records, reservation)

    # -- data rights ---------------------------------------------------------------------------------------------
    def rows_of(self, oid: str, tenant: str) -> list[dict]:
        """Every usage row of one person, oldest first, as their data export holds them."""
        with Session(self._engine) as db:
            rows = db.execute(select(_UsageRow.__table__).where(_UsageRow.oid == oid, _UsageRow.tenant == tenant)
                              .order_by(_UsageRow.at, _UsageRow.id)).mappings().all()
        return [dict(row) for row in rows]
