"""Conversation search on a real Postgres (a `tsvector` column with a GIN index): the same contract, ranking and
first-start indexing as on SQLite (tests/unit/test_search.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from config.database import database_engine
from memory.store import ConversationStore
from tests.postgres import running_postgres, server_binaries
from tests.unit.test_search import (
    run_backfill_contract,
    run_candidates_contract,
    run_kept_answer_contract,
    run_ranking_contract,
    run_search_contract,
)

pytestmark = pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed")


@pytest.fixture(scope="module")
def postgres_url():
    with running_postgres() as url:
        yield url


@pytest.fixture
def engine(postgres_url, tmp_path):
    """The module's database, emptied: each test starts from no conversations."""
    engine = database_engine(postgres_url, tmp_path, "unused.db")
    ConversationStore(engine)  # the tables
    with engine.begin() as db:
        for table in ("message_search", "comparisons", "messages", "conversations"):
            db.execute(text(f"DELETE FROM {table}"))
    yield engine
    engine.dispose()


def test_search_contract_on_postgres(engine):
    run_search_contract(lambda: ConversationStore(engine))


def test_ranking_of_200_generated_conversations_on_postgres(engine):
    run_ranking_contract(ConversationStore(engine))


def test_a_kept_side_by_side_answer_is_what_is_found_on_postgres(engine):
    run_kept_answer_contract(ConversationStore(engine))


def test_common_words_rank_the_newest_matches_and_rare_ones_are_found_on_postgres(engine, monkeypatch):
    run_candidates_contract(ConversationStore(engine), monkeypatch)


def test_an_existing_database_is_indexed_on_first_start_on_postgres(engine):
    run_backfill_contract(engine, ["DROP TABLE message_search"])


def test_the_search_uses_the_gin_index(engine):
    from tests.unit.test_search import ADA, commit

    store = ConversationStore(engine)
    for n in range(300):
        commit(store, ADA, [(f"question {n} about topic{n}", f"answer {n} on topic{n}")])
    with engine.begin() as db:
        db.execute(text("ANALYZE message_search"))
        db.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: only say whether the index can serve
        plan = "\n".join(db.execute(text(
            "EXPLAIN SELECT message_id FROM message_search "
            "WHERE document @@ websearch_to_tsquery('english', 'topic7')")).scalars())
    assert "ix_message_search_document" in plan
    assert [h.title for h in store.search(ADA, "topic7")] == ["question 7 about topic7"]
