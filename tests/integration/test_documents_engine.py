"""Documents through the real turn engine, the real model factory and the real embeddings client, over TLS to the
emulators with an Entra token: a long PDF is indexed (batched, audited, costed) and each question's answer cites the
page that holds the fact; embedding failures are retried, then the document is left out with a clear message while
the chat goes on; the index lives in SQLite and in Postgres alike."""
from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import create_engine

from auth.credentials import app_token_provider
from auth.security_context import SecurityContext
from callbacks.audit import AuditLog
from chains.registry import get_chain
from engine import Asker, Choices, DocumentProgress, NewMessage, Outcome, TurnEngine, Upload
from memory.conversation import Conversation
from memory.store import ConversationStore, Owner
from store.files import FileStore
from tests.document_corpus import facts_pdf
from tests.postgres import running_postgres, server_binaries

OWNER = Owner("oid-ada", "tid-contoso")


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


@pytest.fixture(scope="module")
def handbook():
    return facts_pdf(40)


def engine_on(settings, database_url: str, tmp_path):
    logger = logging.getLogger(f"test.documents.{tmp_path.name}")
    logger.propagate, captured = False, Captured()
    logger.setLevel(logging.INFO)
    logger.addHandler(captured)
    store = ConversationStore(create_engine(database_url), FileStore(tmp_path / "files"))
    return TurnEngine(settings, store, AuditLog(logger)), captured


def asker(settings) -> Asker:
    provider = app_token_provider(settings.entra)
    return Asker(OWNER, SecurityContext(settings.app.name, "oid-ada", "tid-contoso", "198.51.100.7"), "s",
                 token_provider=lambda: provider)


def ask(engine, settings, conversation, question, uploads=()):
    choices = Choices(settings.catalog.get("gpt-4o"), get_chain("assistant"), 300)
    return list(engine.run(asker(settings), conversation, NewMessage(question, [Upload(n, d) for n, d in uploads]),
                           choices))


def check_indexed_and_cited(engine, captured, settings, emulators, handbook):
    data, facts = handbook
    emulators.aoai.requests.clear()
    conversation = Conversation()
    first, second = facts[2], facts[11]
    events = ask(engine, settings, conversation, first.question, [("handbook.pdf", data)])
    outcome = events[-1]
    assert isinstance(outcome, Outcome) and outcome.status == "complete", outcome
    assert [e.done for e in events if isinstance(e, DocumentProgress) and e.phase == "indexing"][-1] \
        == conversation.documents[0].passage_count
    assert first.answer in outcome.answer.content
    [source] = outcome.answer.sources
    assert source["where"] == f"page {first.page}" and source["file"] == "handbook.pdf"

    embeddings = [r for r in emulators.aoai.requests if r.get("kind") == "embeddings"]
    assert len(embeddings) > 1 and all(r["inputs"] <= settings.app.embedding_batch_size for r in embeddings)
    assert embeddings[0]["user_security_context"]["end_user_id"] == "oid-ada"
    assert embeddings[0]["token_claims"]["appid"] == settings.entra.client_id  # the app identity's Entra token
    audited = [r for r in captured.records if r["event"] == "model_call" and r["purpose"] == "embedding"]
    # Azure's own counts, one audit record for the document's requests and one for the question's
    assert [r["prompt_tokens"] for r in audited] == [sum(r["prompt_tokens"] for r in embeddings[:-1]),
                                                     embeddings[-1]["prompt_tokens"]]
    assert [r["calls"] for r in audited] == [len(embeddings) - 1, 1]
    assert outcome.answer.usage.embedding_tokens == sum(r["prompt_tokens"] for r in embeddings)

    resumed = engine.store.load(OWNER, conversation.id)  # a later turn searches the stored index
    outcome = ask(engine, settings, resumed, second.question)[-1]
    assert second.answer in outcome.answer.content
    assert outcome.answer.sources[0]["where"] == f"page {second.page}"
    assert engine.store.delete(OWNER, conversation.id)


def test_a_long_pdf_is_indexed_and_each_answer_cites_the_facts_page(settings, emulators, handbook, tmp_path):
    engine, captured = engine_on(settings, f"sqlite:///{tmp_path / 'chat.db'}", tmp_path)
    check_indexed_and_cited(engine, captured, settings, emulators, handbook)


@pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed")
def test_the_index_works_the_same_on_postgres(settings, emulators, handbook, tmp_path):
    with running_postgres() as url:
        engine, captured = engine_on(settings, url, tmp_path)
        check_indexed_and_cited(engine, captured, settings, emulators, handbook)


def test_throttled_embeddings_are_retried_then_a_failure_leaves_the_chat_working(settings, emulators, handbook,
                                                                              tmp_path):
    data, facts = handbook
    engine, captured = engine_on(settings, f"sqlite:///{tmp_path / 'chat.db'}", tmp_path)
    emulators.aoai.inject("429", retry_after=0, endpoint="embeddings")
    outcome = ask(engine, settings, Conversation(), facts[0].question, [("handbook.pdf", data)])[-1]
    assert outcome.answer.sources and not outcome.user.notice  # the SDK waited and retried

    attempts = settings.azure_openai.max_retries + 1
    emulators.aoai.inject("500", count=attempts, endpoint="embeddings")
    conversation = Conversation()
    outcome = ask(engine, settings, conversation, "Hello there", [("handbook.pdf", data)])[-1]
    assert outcome.status == "complete" and outcome.answer.content  # the chat goes on
    assert outcome.user.notice.startswith("Not sent: handbook.pdf: it could not be indexed: Azure OpenAI had an "
                                          "internal error")
    assert conversation.documents == [] and outcome.answer.sources == []
    failed = [r for r in captured.records if r["event"] == "model_call" and r["purpose"] == "embedding"][-1]
    assert failed["outcome"] == "server_error" and failed["status_code"] == 500
    emulators.aoai.clear_faults()
