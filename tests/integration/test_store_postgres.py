"""The same store contract on a real Postgres (Debian's server, started for this module on 127.0.0.1)."""
from __future__ import annotations

import pytest

from config.database import database_engine
from memory.store import ConversationStore
from store.files import FileStore
from tests.postgres import running_postgres, server_binaries
from tests.unit.test_store import run_image_cleanup_contract, run_store_contract

pytestmark = pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed")


@pytest.fixture(scope="module")
def postgres_url():
    with running_postgres() as url:
        yield url


def test_store_contract_on_postgres(postgres_url, tmp_path):
    engine = database_engine(postgres_url, tmp_path, "unused.db")
    run_store_contract(lambda: ConversationStore(engine))


def test_image_cleanup_on_postgres(postgres_url, tmp_path):
    engine = database_engine(postgres_url, tmp_path, "unused.db")
    run_image_cleanup_contract(ConversationStore(engine, FileStore(tmp_path / "images")))


def test_sessions_are_shared_through_postgres(postgres_url, tmp_path):
    """Two replicas on one database: a session created by one is found by the other."""
    from datetime import timedelta

    from auth.identity import Identity
    from auth.sessions import SessionStore

    replica_a = SessionStore(database_engine(postgres_url, tmp_path, "x"), "s" * 40, timedelta(hours=8))
    replica_b = SessionStore(database_engine(postgres_url, tmp_path, "y"), "s" * 40, timedelta(hours=8))
    session = replica_a.create(Identity("oid", "tid", "Ada", "ada@x"), "{}")
    assert replica_b.get(session.id).identity.name == "Ada"
    assert replica_b.use_state_once("state-1", timedelta(minutes=10)) and not replica_a.use_state_once("state-1", timedelta(minutes=10))


def test_recent_conversations_and_search_on_postgres(postgres_url, tmp_path):
    from sqlalchemy import text

    from tests.unit.test_store import run_recent_and_search_contract

    engine = database_engine(postgres_url, tmp_path, "unused.db")
    with engine.begin() as db:  # a database of its own contents: the other tests left conversations behind
        db.execute(text("DELETE FROM messages"))
        db.execute(text("DELETE FROM conversations"))
    run_recent_and_search_contract(ConversationStore(engine))


def test_chain_statistics_on_postgres(postgres_url, tmp_path):
    from tests.unit.test_chain_stats import run_chain_stats_contract

    run_chain_stats_contract(database_engine(postgres_url, tmp_path, "unused.db"))


def test_budget_reservations_and_rate_limits_hold_across_replicas_on_postgres(postgres_url, tmp_path):
    """Many concurrent turns from two replicas: the budget admits exactly as many as it covers, the per-minute limit
    exactly as many as it allows; usage recorded in a turn's transaction releases its reservation."""
    import threading
    from decimal import Decimal

    from sqlalchemy.orm import Session

    from store.usage import OverBudget, RateLimited, UsageLedger, to_nano

    replicas = [UsageLedger(database_engine(postgres_url, tmp_path, name)) for name in ("a", "b")]
    budget, each = to_nano(Decimal("1.00")), to_nano(Decimal("0.30"))  # room for three turns
    admitted, refused, limited = [], [], []
    start = threading.Barrier(8)

    def turn(ledger: UsageLedger) -> None:
        start.wait()
        try:
            ledger.count_request("oid-pg", "tid", 100, max_requests=6, max_tokens=None)
        except RateLimited:
            limited.append(1)
            return
        try:
            admitted.append(ledger.reserve("oid-pg", "tid", each, budget))
        except OverBudget:
            refused.append(1)

    workers = [threading.Thread(target=turn, args=(replicas[i % 2],)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert (len(limited), len(admitted), len(refused)) == (2, 3, 3)
    state = replicas[0].state("oid-pg", "tid", budget)
    assert state.reserved_nanousd == 3 * each and state.spent_nanousd == 0

    record = {"event": "model_call", "cost_usd": "0.25", "deployment": "gpt-4o", "chain": "assistant@1",
              "purpose": "answer", "prompt_tokens": 10, "completion_tokens": 5}
    with Session(replicas[1]._engine) as db, db.begin():  # as the store does inside the turn's transaction
        replicas[1].record(db, "oid-pg", "tid", [record], admitted[0])
    state = replicas[0].state("oid-pg", "tid", budget)
    assert state.reserved_nanousd == 2 * each and state.spent_nanousd == to_nano("0.25")
