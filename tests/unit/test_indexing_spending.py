"""Indexing a document is spending (engine/indexing.py): asked about first when large, held against the monthly
budget, paced to the per-minute token limit, recorded in the ledger even when stopped half-way, audited as one record
per document; repeated passages are indexed once, and a long index is written outside the turn's transaction."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

import memory.documents as stored_documents
from engine import Blocked, DocumentIndexed, DocumentProgress, NewMessage, Outcome, TurnEngine, Upload
from memory.conversation import Conversation
from memory.store import ConversationStore
from store.files import FileStore
from store.usage import UsageLedger
from tests.unit.test_document_engine import FACT, FakeEmbeddings, long_text
from tests.unit.test_turn_engine import OWNER, WHO, choices, model_calls, rig, settings  # noqa: F401 - pytest fixtures, used by name


class Clock:
    """The ledger's clock; `sleep` moves it on (the indexing's waits are instant in tests)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, 5, tzinfo=timezone.utc)
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


def engine_with(rig, tmp_path, clock, monkeypatch, **app):
    """The rig's models with fake embeddings, a usage ledger on the rig's database and the given settings."""
    client = FakeEmbeddings()
    database = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", connect_args={"timeout": 30})
    update = {"document_whole_max_tokens": 400, "embedding_batch_size": 4, **app}
    settings_ = rig.settings.model_copy(update={"app": rig.settings.app.model_copy(update=update)})
    engine = TurnEngine(settings_, ConversationStore(database, FileStore(tmp_path / "images")), rig.engine.audit,
                        model_factory=rig.engine.model_factory, embeddings_client=lambda s, p: client,
                        usage=UsageLedger(database, clock))
    monkeypatch.setattr("engine.indexing.time.sleep", clock.sleep)
    engine.embeddings = client
    engine.database = database
    return engine


def send(engine, conversation, message: NewMessage):
    return list(engine.run(WHO, conversation, message, choices(engine.settings)))


def distinct_pages(pages: int) -> str:
    """`long_text` with every page different (its filler repeats every 8 pages, and repeats are indexed once)."""
    return "\n\n".join(f"Page {number} covers item {number * 7919 % 10007} and code {number:05d}. {paragraph}"
                         for number, paragraph in enumerate(long_text(pages).split("\n\n"), 1))


def report(pages: int = 30) -> NewMessage:
    return NewMessage("What is the Orion project budget for 2027?",
                      [Upload("report.txt", distinct_pages(pages).encode())])


def spent(engine, purpose: str = "embedding") -> list[tuple]:
    with engine.database.connect() as db:
        return db.execute(text("select prompt_tokens, cost_nanousd from usage_records where purpose = :p"),
                          {"p": purpose}).all()


def test_a_large_document_is_indexed_only_after_the_person_agrees_to_the_estimate(rig, tmp_path, clock,
                                                                                  monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch, index_confirm_tokens=500)
    conversation = Conversation()
    events = send(engine, conversation, report())
    blocked = events[-1]
    assert isinstance(blocked, Blocked) and blocked.reason == "confirm_indexing"
    assert "report.txt is long" in blocked.message and "embedding tokens" in blocked.message and "$" in blocked.message
    assert blocked.approve and blocked.approve[0].startswith("stored:") and blocked.draft == report().text
    assert engine.embeddings.requests == [] and rig.script.calls == [] and conversation.turns == []
    asked = [r for r in rig.audit.records if r["event"] == "indexing_confirm_asked"]
    assert asked and asked[0]["embedding_tokens_estimate"] > 500

    rig.script.answers.append("It is 4.2 million euros [1].")
    again = NewMessage(report().text, report().uploads, frozenset(blocked.approve))
    events = send(engine, conversation, again)
    assert isinstance(events[-1], Outcome) and events[-1].answer.sources
    assert any(isinstance(e, DocumentIndexed) and e.document.mode == "retrieved" for e in events)


def test_below_the_question_threshold_indexing_goes_ahead_without_asking(rig, tmp_path, clock,
                                                                         monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch)  # default threshold: 200,000 tokens
    rig.script.answers.append("ok [1]")
    assert isinstance(send(engine, Conversation(), report())[-1], Outcome)


def test_indexing_that_would_pass_the_budget_is_refused_before_any_request(rig, tmp_path, clock,
                                                                           monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch, monthly_budget_usd=Decimal("0.0000001"))
    [*_, blocked] = send(engine, Conversation(), report())
    assert isinstance(blocked, Blocked) and blocked.reason == "over_budget"
    assert blocked.message.startswith("Indexing report.txt would cost about $")
    assert engine.embeddings.requests == [] and rig.script.calls == []
    refusal = [r for r in rig.audit.records if r["event"] == "budget_refused"][-1]
    assert refusal["purpose"] == "embedding"


def test_indexing_waits_for_the_next_minute_instead_of_passing_the_token_limit(rig, tmp_path, clock,
                                                                               monkeypatch):
    limit = 2000
    engine = engine_with(rig, tmp_path, clock, monkeypatch, rate_limit_tokens_per_minute=limit, retrieved_passages=1)
    rig.script.answers.append("ok [1]")
    conversation = Conversation()
    counted: list[tuple[datetime, int]] = []
    count = engine.usage.count_request

    def recording(oid, tenant, tokens, max_requests, max_tokens, requests=1):
        count(oid, tenant, tokens, max_requests, max_tokens, requests)
        counted.append((clock.now.replace(second=0, microsecond=0), tokens))

    monkeypatch.setattr(engine.usage, "count_request", recording)
    events = list(engine.run(WHO, conversation, report(pages=60), choices(engine.settings, max_output_tokens=100)))
    paused = [e for e in events if isinstance(e, DocumentProgress) and e.phase == "paused"]
    assert paused and paused[0].until is not None and clock.slept >= 50  # it waited for the next minute(s)
    per_minute: dict[datetime, int] = {}
    for minute, tokens in counted:
        per_minute[minute] = per_minute.get(minute, 0) + tokens
    assert len(per_minute) >= 2 and max(per_minute.values()) <= limit
    assert isinstance(events[-1], Outcome)
    assert [r for r in rig.audit.records if r["event"] == "indexing_paused"]


def test_one_audit_record_per_document_and_the_spend_recorded_once(rig, tmp_path, clock, monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch)
    rig.script.answers.append("ok [1]")
    events = send(engine, Conversation(), report())
    document_calls = [r for r in model_calls(rig) if r.get("embedding_for") == "document"]
    assert len(document_calls) == 1
    [record] = document_calls
    requests = [r for r in engine.embeddings.requests if r["input"] != [report().text]]
    assert record["calls"] == len(requests) > 1 and record["inputs"] == sum(len(r["input"]) for r in requests)
    assert record["outcome"] == "ok" and record["prompt_tokens"] > 0
    rows = spent(engine)
    assert sorted(t for t, _ in rows) == sorted(r["prompt_tokens"] for r in model_calls(rig)
                                                if r["purpose"] == "embedding")  # each call once, none twice
    assert events[-1].answer.usage.embedding_tokens == sum(t for t, _ in rows)


def test_stop_while_indexing_still_records_what_was_embedded_and_frees_the_reservation(rig, tmp_path, clock,
                                                                                      monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch, monthly_budget_usd=Decimal("10"))
    events = engine.run(WHO, Conversation(), report(), choices(engine.settings))
    for event in events:
        if isinstance(event, DocumentProgress) and event.phase == "indexing" and event.done > 0:
            break
    events.close()
    [record] = [r for r in model_calls(rig) if r.get("embedding_for") == "document"]
    assert record["outcome"] == "stopped" and record["prompt_tokens"] > 0
    assert [t for t, _ in spent(engine)] == [record["prompt_tokens"]]
    state = engine.usage.state(OWNER.oid, OWNER.tenant_id, None)
    assert state.reserved_nanousd == 0 and state.spent_nanousd > 0


def test_repeated_passages_are_indexed_and_stored_once(rig, tmp_path, clock, monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch)
    rig.script.answers.append("ok [1]")
    boilerplate = "Confidential. Contoso Ltd. All rights reserved. Printed copies are not controlled. " * 20
    pages = "\n\n".join(f"{boilerplate}\n\n{'Page %d: ' % i}{long_text(1)}" for i in range(12))
    events = send(engine, Conversation(), NewMessage("q", [Upload("manual.txt", (pages + "\n\n" + FACT).encode())]))
    document = next(e.document for e in events if isinstance(e, DocumentIndexed))
    texts = [p.text for p in document.passages]
    assert len(texts) == len(set(texts)) == document.passage_count
    embedded = [t for r in engine.embeddings.requests for t in r["input"]]
    assert len(embedded) == len(set(embedded))


def test_a_long_index_is_written_after_the_turn_so_another_persons_turn_does_not_wait(rig, tmp_path, clock,
                                                                                      monkeypatch):
    engine = engine_with(rig, tmp_path, clock, monkeypatch)
    other = engine_with(rig, tmp_path, clock, monkeypatch)
    monkeypatch.setattr(stored_documents, "INLINE_PASSAGES", 2)
    monkeypatch.setattr(stored_documents, "PASSAGE_BATCH", 3)
    batches = stored_documents.passage_batches
    first_batch_written, other_committed = threading.Event(), threading.Event()

    def paused(conversation_id, document):
        for number, rows in enumerate(batches(conversation_id, document)):
            if number == 1:  # the first batch is committed: let the other person's turn commit before going on
                first_batch_written.set()
                assert other_committed.wait(timeout=60), "the other person's turn waited for this index"
            yield rows

    monkeypatch.setattr("memory.store.passage_batches", paused)
    rig.script.answers += ["ok [1]", "Hello Grace."]
    conversation = Conversation()
    results: dict = {}
    worker = threading.Thread(target=lambda: results.update(a=send(engine, conversation, report())), daemon=True)
    worker.start()
    assert first_batch_written.wait(timeout=120)
    results["b"] = send(other, Conversation(), NewMessage("Hello"))  # commits while the index is half written
    other_committed.set()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert isinstance(results["a"][-1], Outcome) and isinstance(results["b"][-1], Outcome)
    [document] = conversation.documents
    with engine.database.connect() as db:
        stored = db.execute(text("select count(*) from document_passages where document_id = :d"),
                            {"d": document.id}).scalar()
    assert stored == document.passage_count > 3
