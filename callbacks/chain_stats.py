"""Chain statistics kept in the database as model calls end: the "Compare chains" table reads a few rows instead of
parsing the whole audit log on every page rerun.

`ChainStatistics.record` is an audit listener (see `AuditLog`): each "model_call" record adds its tokens, cost,
latency and time to first token to its chain's row, each "feedback" record moves the thumbs. Sums are kept, means are
computed when read. Cost is summed in integer nano-dollars, so totals stay exact in SQLite and Postgres alike.

Upgrading a deployment whose statistics predate this table: `python -m callbacks.chain_stats --rebuild` refills it
from the audit log once.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sqlalchemy import BigInteger, Integer, String, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from callbacks.experiments import ChainStats, read_audit
from config.migrations import upgrade
from store.base import Base
from store.money import to_nano, to_usd

log = logging.getLogger(__name__)



class _ChainRow(Base):
    __tablename__ = "chain_stats"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)  # name@version
    calls: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # of completion_tokens
    cost_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    ttft_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    ttft_calls: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    thumbs_up: Mapped[int] = mapped_column(Integer, default=0)
    thumbs_down: Mapped[int] = mapped_column(Integer, default=0)


COUNTERS = [c.name for c in _ChainRow.__table__.columns if c.name != "chain"]


def _increments(record: dict) -> dict[str, int]:
    """What one audit record adds to its chain's row."""
    if record.get("event") == "model_call" and record.get("purpose") != "embedding":
        # Embeddings index the person's documents: their cost is the conversation's, not the chain's doing.
        ttft = record.get("time_to_first_token_ms")
        return {
            "calls": 1, "answers": int(record.get("purpose") == "answer"),
            "prompt_tokens": int(record.get("prompt_tokens") or 0),
            "completion_tokens": int(record.get("completion_tokens") or 0),
            "reasoning_tokens": int(record.get("reasoning_tokens") or 0),
            "cost_nanousd": to_nano(record.get("cost_usd") or 0),
            "latency_ms": int(record.get("latency_ms") or 0),
            "ttft_ms": int(ttft or 0), "ttft_calls": int(ttft is not None),
            "failures": int(record.get("outcome") not in ("ok", "stopped")),
        }
    if record.get("event") == "feedback":
        # A changed vote moves from one side to the other instead of counting twice.
        change = {"thumbs_up": 0, "thumbs_down": 0}
        for score, sign in ((record.get("previous_score"), -1), (record.get("score"), 1)):
            if score in (0, 1):
                change["thumbs_up" if score == 1 else "thumbs_down"] += sign
        return change
    return {}


class ChainStatistics:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        upgrade(engine, "conversations")  # the schema (config/migrations)

    def record(self, record: dict) -> None:
        """Audit listener: add one record to its chain's sums (an atomic UPDATE; the first record inserts the row)."""
        chain, change = record.get("chain"), _increments(record)
        if not chain or not any(change.values()):
            return
        for _ in range(3):
            with Session(self._engine) as db, db.begin():
                values = {name: getattr(_ChainRow, name) + amount for name, amount in change.items()}
                if db.execute(update(_ChainRow).where(_ChainRow.chain == chain).values(**values)).rowcount:
                    return
            try:
                with Session(self._engine) as db, db.begin():
                    db.add(_ChainRow(chain=chain, **{name: change.get(name, 0) for name in COUNTERS}))
                return
            except IntegrityError:  # another replica inserted the row first: add to it instead
                continue

    def all(self) -> list[ChainStats]:
        with Session(self._engine) as db:
            rows = db.scalars(select(_ChainRow).order_by(_ChainRow.chain)).all()
        return [ChainStats(
            chain=r.chain, calls=r.calls, answers=r.answers,
            mean_prompt_tokens=r.prompt_tokens / r.calls if r.calls else 0.0,
            mean_completion_tokens=r.completion_tokens / r.calls if r.calls else 0.0,
            mean_reasoning_tokens=r.reasoning_tokens / r.calls if r.calls else 0.0,
            total_cost_usd=to_usd(r.cost_nanousd),
            mean_latency_ms=r.latency_ms / r.calls if r.calls else 0.0,
            mean_ttft_ms=r.ttft_ms / r.ttft_calls if r.ttft_calls else None,
            failures=r.failures, thumbs_up=r.thumbs_up, thumbs_down=r.thumbs_down,
        ) for r in rows]

    def rebuild(self, records: list[dict]) -> int:
        """Replace the table's contents with the sums over `records` (the whole audit log)."""
        sums: dict[str, dict[str, int]] = {}
        for record in records:
            if record.get("chain"):
                row = sums.setdefault(record["chain"], dict.fromkeys(COUNTERS, 0))
                for name, amount in _increments(record).items():
                    row[name] += amount
        with Session(self._engine) as db, db.begin():
            db.execute(delete(_ChainRow))
            db.add_all(_ChainRow(chain=chain, **row) for chain, row in sums.items())
        return len(records)


def main(argv: list[str] | None = None) -> int:
    from config import load_settings
    from config.database import database_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="refill the table from the audit log (all rotations)")
    args = parser.parse_args(argv)
    settings = load_settings()
    url = settings.app.database_url.get_secret_value() if settings.app.database_url else None
    statistics = ChainStatistics(database_engine(url, settings.app.data_dir, "conversations.db"))
    if args.rebuild:
        path = Path(settings.app.data_dir) / "audit" / "audit.jsonl"
        print(f"rebuilt chain statistics from {statistics.rebuild(read_audit(path))} audit records")
    for s in statistics.all():
        print(f"{s.chain}: {s.calls} calls, ${s.total_cost_usd:.6f}, {s.failures} failures, "
              f"{s.thumbs_up} up / {s.thumbs_down} down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
