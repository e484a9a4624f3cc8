"""Reports over the usage ledger (store/usage.py) for the "My usage" dialog and the administration page.

Every figure is a SQL aggregate (GROUP BY over `usage_records`), in SQLite and Postgres alike; Python only reshapes
the few grouped rows that come back (at most a day × deployment × chain × tenant cube, or one row per person), never
the usage rows themselves. Money stays in integer nano-dollars until it is shown.

Speed over a million rows rests on covering indexes (`REPORT_INDEXES`): each report is then one range scan of an
index over the month, with the groups in index order, and never touches the table.
"""
from __future__ import annotations

import csv
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pandas as pd
from sqlalchemy import BigInteger, String, and_, cast, column, func, or_, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from store.base import Base
from store.usage import month_of, to_usd

RECORDS = Base.metadata.tables["usage_records"]
OVERRIDES = Base.metadata.tables["budget_overrides"]
# The sign-in sessions (auth/sessions.py) keep each person's name from their ID token: the only place names are known.
SIGN_IN_SESSIONS = table("auth_sessions", column("oid", String), column("tenant_id", String), column("name", String),
                         column("username", String))

# Covering indexes the reports need (name: columns), to be declared on `usage_records` in store/usage.py. The cube
# (and the export, grouped finer by person) and the people are each one range scan of one of them over the month (or
# the month's deployment), the groups in index order; oid in the first keeps a person search covered too.
REPORT_INDEXES = {
    "ix_usage_report_cube": ("month", "deployment", "day", "chain", "tenant", "oid", "prompt_tokens",
                             "completion_tokens", "reasoning_tokens", "cost_nanousd"),
    "ix_usage_report_people": ("month", "oid", "tenant", "deployment", "chain", "prompt_tokens", "completion_tokens",
                               "reasoning_tokens", "cost_nanousd"),
}
# reasoning_tokens: how many of completion_tokens were hidden reasoning (billed as output, so already in the cost).
MEASURES = ("calls", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_nanousd")
EXPORT_COLUMNS = ("month", "day", "oid", "name", "tenant", "deployment", "chain", "calls", "prompt_tokens",
                  "completion_tokens", "reasoning_tokens", "cost_usd")
MAX_BUDGET_USD = 1_000_000


@dataclass(frozen=True)
class UsageFilter:
    """Which usage an administrator looks at: one month (YYYY-MM), optionally one deployment, chain and tenant, and
    people whose object id contains `person` or who are among `named` (object ids found by display name)."""

    month: str
    deployment: str | None = None
    chain: str | None = None
    tenant: str | None = None
    person: str | None = None
    named: tuple[str, ...] = ()

    def conditions(self) -> list:
        r = RECORDS.c
        found = [r.month == self.month]
        for name, value in (("deployment", self.deployment), ("chain", self.chain), ("tenant", self.tenant)):
            if value:
                found.append(r[name] == value)
        if self.person:
            pattern = "%" + _escape_like(self.person.strip().lower()) + "%"
            matches = [r.oid.like(pattern, escape="\\")]
            if self.named:
                matches.append(r.oid.in_(self.named))
            found.append(or_(*matches))
        return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sums() -> list:
    r = RECORDS.c
    # Postgres sums bigints as numeric; the cast keeps every database's answer an integer.
    return [func.count().label("calls"),
            cast(func.sum(r.prompt_tokens), BigInteger).label("prompt_tokens"),
            cast(func.sum(r.completion_tokens), BigInteger).label("completion_tokens"),
            cast(func.sum(r.reasoning_tokens), BigInteger).label("reasoning_tokens"),
            cast(func.sum(r.cost_nanousd), BigInteger).label("cost_nanousd")]


def _frame(result, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    # Plain tuples: pandas probes each SQLAlchemy Row for attributes, which costs more than the query for big results.
    frame = pd.DataFrame(list(map(tuple, result)), columns=list(columns))
    for name in MEASURES:
        if name in frame:
            frame[name] = frame[name].fillna(0).astype("int64")
    return frame


def names_of(oids: pd.Series, names: dict[str, str]) -> pd.Series:
    """The display name of each object id, "" where unknown."""
    return oids.map(names).astype("object").fillna("")


def usd(nano: pd.Series) -> pd.Series:
    """Dollars as floats, for charts and tables only; sums and comparisons stay in nano-dollars."""
    return nano / 1e9


def dollars(nano: int) -> str:
    """Money as people read it: to the cent from a dollar on, else to the millionth of a dollar."""
    amount = to_usd(nano)
    if not amount:
        return "$0.00"
    places = Decimal("0.01") if abs(amount) >= 1 else Decimal("0.000001")
    return f"${amount.quantize(places, ROUND_HALF_UP):,}"


def usd_text(nano: pd.Series) -> pd.Series:
    """Exact decimal dollars ("12.345678901") from nano-dollars, computed on the column (costs are never negative)."""
    whole, fraction = nano // 1_000_000_000, nano % 1_000_000_000
    return whole.astype(str) + "." + fraction.astype(str).str.zfill(9)


def parse_budget(text: str) -> Decimal | None:
    """An administrator's monthly budget in dollars from a form field: empty removes the override. Raises ValueError
    with a message for that person."""
    text = text.strip().lstrip("$").replace(",", "").strip()
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"“{text}” is not an amount in dollars, e.g. 25 or 12.50.") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("A budget is zero or more dollars.")
    if amount > MAX_BUDGET_USD:
        raise ValueError(f"A monthly budget above ${MAX_BUDGET_USD:,} is not accepted; leave it empty for the role or "
                         "default budget.")
    if -amount.normalize().as_tuple().exponent > 6:
        raise ValueError("Give the budget with at most 6 decimal places.")
    return amount


def parse_object_id(text: str, what: str) -> str:
    """A Microsoft Entra object or tenant id (a GUID), in the lower-case form tokens carry."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ValueError(f"The {what} must be a GUID such as 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d.") from None


class UsageReports:
    """Read-only aggregates of the usage ledger's tables (and names from the sign-in sessions, where known)."""

    def __init__(self, engine: Engine, sessions: Engine | None = None) -> None:
        self._engine, self._sessions = engine, sessions

    # -- months ------------------------------------------------------------------------------------------------------
    def months(self, now: datetime) -> list[str]:
        """Every month from the first usage record to `now`'s, newest first (one indexed MIN, then the calendar)."""
        current = month_of(now)
        with self._engine.connect() as db:
            first = db.scalar(select(func.min(RECORDS.c.month))) or current
        year, month = int(current[:4]), int(current[5:])
        months = []
        while f"{year:04d}-{month:02d}" >= min(first, current):
            months.append(f"{year:04d}-{month:02d}")
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        return months

    # -- the administration page -------------------------------------------------------------------------------------
    def cube(self, usage: UsageFilter) -> pd.DataFrame:
        """Calls, tokens and cost per day, deployment, chain and tenant: every chart but the people's is a roll-up
        of these few rows (days × deployments × chains × tenants)."""
        r = RECORDS.c
        keys = [r.day, r.deployment, r.chain, r.tenant]
        query = select(*keys, *_sums()).where(*usage.conditions()).group_by(*keys).order_by(*keys)
        with self._engine.connect() as db:
            return _frame(db.execute(query), ["day", "deployment", "chain", "tenant", *MEASURES])

    def people(self, usage: UsageFilter, limit: int | None = None) -> pd.DataFrame:
        """One row per person (oid, tenant) with their usage and any budget override, biggest spenders first."""
        r, o = RECORDS.c, OVERRIDES.c
        per_person = (select(r.oid, r.tenant, *_sums()).where(*usage.conditions()).group_by(r.oid, r.tenant)
                      .subquery("per_person"))
        p = per_person.c
        query = (select(p.oid, p.tenant, p.calls, p.prompt_tokens, p.completion_tokens, p.reasoning_tokens,
                        p.cost_nanousd,
                        o.monthly_nanousd.label("override_nanousd"))
                 .select_from(per_person.outerjoin(OVERRIDES, and_(o.oid == p.oid, o.tenant == p.tenant)))
                 .order_by(p.cost_nanousd.desc(), p.oid, p.tenant))
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as db:
            frame = _frame(db.execute(query), ["oid", "tenant", *MEASURES, "override_nanousd"])
        frame["override_nanousd"] = frame["override_nanousd"].astype("Int64")
        return frame

    def overview(self, usage: UsageFilter) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(`cube`, `people`) read at the same time on two connections: two index scans of the month that take
        turns on one core but overlap on two."""
        with ThreadPoolExecutor(2, thread_name_prefix="usage-report") as pool:
            cube, people = pool.submit(self.cube, usage), pool.submit(self.people, usage)
            return cube.result(), people.result()

    def export_rows(self, usage: UsageFilter) -> pd.DataFrame:
        """The filtered usage aggregated per person, day, deployment and chain: what the CSV export holds."""
        r = RECORDS.c
        keys = [r.month, r.deployment, r.day, r.chain, r.tenant, r.oid]  # the cube index's order: grouped unsorted
        query = (select(*keys, *_sums()).where(*usage.conditions()).group_by(*keys)
                 .order_by(r.day, r.deployment, r.chain, r.tenant, r.oid))  # only the groups are sorted
        with self._engine.connect() as db:
            return _frame(db.execute(query), ["month", "deployment", "day", "chain", "tenant", "oid", *MEASURES])

    def export_csv(self, usage: UsageFilter) -> tuple[str, int]:
        """(CSV text, number of rows) of `export_rows`, with names where known and exact decimal dollars."""
        rows = self.export_rows(usage)
        names = self.names(rows["oid"].unique().tolist())
        rows["name"] = names_of(rows["oid"], names)
        rows["cost_usd"] = usd_text(rows["cost_nanousd"])
        out = io.StringIO()
        rows[list(EXPORT_COLUMNS)].to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        return out.getvalue(), len(rows)

    def overrides(self) -> pd.DataFrame:
        o = OVERRIDES.c
        query = select(o.oid, o.tenant, o.monthly_nanousd, o.set_by, o.set_at).order_by(o.set_at.desc())
        with self._engine.connect() as db:
            return pd.DataFrame(db.execute(query).all(), columns=["oid", "tenant", "monthly_nanousd", "set_by",
                                                                  "set_at"])

    # -- one person ("My usage") -------------------------------------------------------------------------------------
    def person_month(self, oid: str, tenant: str, month: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(per deployment, per day and deployment) of one person's month, through the (oid, tenant, month) index."""
        r = RECORDS.c
        mine = [r.oid == oid, r.tenant == tenant, r.month == month]
        by_deployment = select(r.deployment, *_sums()).where(*mine).group_by(r.deployment).order_by(r.deployment)
        by_day = (select(r.day, r.deployment, *_sums()).where(*mine).group_by(r.day, r.deployment)
                  .order_by(r.day, r.deployment))
        with self._engine.connect() as db:
            return (_frame(db.execute(by_deployment), ["deployment", *MEASURES]),
                    _frame(db.execute(by_day), ["day", "deployment", *MEASURES]))

    # -- names -------------------------------------------------------------------------------------------------------
    def names(self, oids: list[str]) -> dict[str, str]:
        """Display names of these people from their sign-in sessions (none for people without a live session)."""
        if self._sessions is None or not oids:
            return {}
        s = SIGN_IN_SESSIONS.c
        found: dict[str, str] = {}
        try:
            with self._sessions.connect() as db:
                for start in range(0, len(oids), 500):  # bounded IN lists
                    query = select(s.oid, func.max(s.name)).where(s.oid.in_(oids[start:start + 500])).group_by(s.oid)
                    found.update({oid: name for oid, name in db.execute(query) if name})
        except SQLAlchemyError:  # no sign-in sessions table (sign-in disabled): oids only
            return {}
        return found

    def oids_named(self, text: str, limit: int = 200) -> tuple[str, ...]:
        """Object ids of people whose display name or account name contains `text` (case-insensitive)."""
        if self._sessions is None or not text.strip():
            return ()
        s = SIGN_IN_SESSIONS.c
        pattern = "%" + _escape_like(text.strip().lower()) + "%"
        query = (select(s.oid).where(or_(func.lower(s.name).like(pattern, escape="\\"),
                                         func.lower(s.username).like(pattern, escape="\\")))
                 .group_by(s.oid).limit(limit))
        try:
            with self._sessions.connect() as db:
                return tuple(db.scalars(query))
        except SQLAlchemyError:
            return ()


def roll_up(cube: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Sums of the cube's measures by one or more of its keys (a roll-up of grouped rows, not of usage rows)."""
    keys = [by] if isinstance(by, str) else list(by)
    if cube.empty:
        return pd.DataFrame(columns=[*keys, *MEASURES])
    return cube.groupby(keys, as_index=False, sort=True)[list(MEASURES)].sum()


def totals(cube: pd.DataFrame) -> dict[str, int]:
    return {name: int(cube[name].sum()) if not cube.empty else 0 for name in MEASURES}

