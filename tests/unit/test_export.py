"""A person's data on request (memory/export.py): a conversation as Markdown and JSON, everything as one ZIP, all parsed
back and compared with what the store holds; and "delete all my data", which removes that person's conversations,
messages, documents, files and sessions only, and leaves the audit log (and usage records, and votes) alone."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import zipfile
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from sqlalchemy import text

from auth.identity import Identity
from auth.sessions import SessionStore
from callbacks.audit import AuditContext, AuditLog
from config.database import database_engine
from memory.conversation import Conversation, Turn, Usage
from memory.documents import AttachedDocument, Passage
from memory.export import (
    EMBEDDED,
    SCHEMA_VERSION,
    conversation_from_json,
    conversation_json,
    conversation_markdown,
    delete_all_my_data,
    export_all,
    usage_line,
)
from memory.store import ConversationStore, Owner, answer_record
from memory.summary import SUMMARY_PREFIX
from store.comparisons import Comparison
from store.files import FileStore
from store.usage import UsageLedger
from ui.turn_view import usage_caption

ADA, GRACE = Owner("ada-oid", "tenant-1"), Owner("grace-oid", "tenant-1")
ADA_ELSEWHERE = Owner("ada-oid", "tenant-2")  # the same oid string in another tenant is another person
SHARED_PNG, OWN_PNG, MEMORY_PNG = b"\x89PNG shared", b"\x89PNG Ada's own", b"\x89PNG only in memory"
PDF = b"%PDF-1.7 Ada's handbook"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class World:
    def __init__(self, tmp_path) -> None:
        self.engine = database_engine(None, tmp_path, "conversations.db")
        self.files = FileStore(tmp_path / "images")
        self.store = ConversationStore(self.engine, self.files)
        self.ledger = UsageLedger(self.engine)
        self.sessions = SessionStore(database_engine(None, tmp_path, "sessions.db"), "s" * 40, timedelta(hours=8))
        self.audit_path = tmp_path / "audit.jsonl"

    def commit(self, owner: Owner, conversation: Conversation, user: Turn, answer: Turn, records=(), **kwargs):
        records = [{"event": "model_call", "conversation_id": conversation.id, **r} for r in records]
        self.store.commit_turn(owner, conversation, user, answer, usage=(self.ledger, records, None), **kwargs)

    def sign_in(self, owner: Owner) -> str:
        identity = Identity(owner.oid, owner.tenant_id, owner.oid.title(), f"{owner.oid}@example.com")
        return self.sessions.create(identity, "{}").id


def adas_conversation(world: World) -> Conversation:
    """Images, a document with passages, steps, sources, usage, feedback, a stopped and a failed answer, a summary."""
    files = world.files
    shared = files.save(sha(SHARED_PNG), "png", SHARED_PNG)
    own = files.save(sha(OWN_PNG), "png", OWN_PNG)
    pdf = files.save(sha(PDF), "pdf", PDF)
    conversation = Conversation(settings={"deployment": "gpt-4o", "chain": "assistant", "max_output_tokens": 800,
                                          "temperature": 0.2})
    user = conversation.add(Turn("user", "What do these two pictures and the handbook say about leave?", attachments=[
        {"ref": shared, "name": "team.png", "width": 640, "height": 480, "detail": "low", "tokens": 85},
        {"ref": own, "name": "form.png", "width": 800, "height": 600, "detail": "high", "tokens": 765},
        {"ref": pdf, "name": "handbook.pdf", "kind": "document", "summary": "handbook.pdf · 2 pages · sent whole"}]))
    answer = conversation.add(Turn(
        "assistant", "Leave is **25 days** a year [1].", deployment="gpt-4o", chain="agent@2",
        usage=Usage(1200, 80, Decimal("0.004120"), model_calls=2, embedding_tokens=30),
        steps=[{"kind": "tool", "name": "search_documents", "input": {"query": "leave"}, "output": "[1] …",
                "duration_ms": 12, "error": None}],
        sources=[{"n": 1, "file": "handbook.pdf", "where": "page 2", "text": "Leave: 25 days.", "ref": pdf}]))
    document = AttachedDocument(
        name="handbook.pdf", kind="pdf", ref=pdf, mode="retrieved", tokens=900, pages=2,
        embedding_deployment="text-embedding-3-small", embedding_tokens=30, embedding_cost=Decimal("0.0000006"),
        message_id=user.id, passages=[Passage(0, "page 1", "Welcome.", 3, np.ones(4, dtype="<f4") / 2),
                                      Passage(1, "page 2", "Leave: 25 days.", 5, np.ones(4, dtype="<f4") / 2)])
    memory_url = "data:image/png;base64," + base64.b64encode(MEMORY_PNG).decode()
    conversation.memory = [
        HumanMessage(SUMMARY_PREFIX + "Ada asked about leave.", additional_kwargs={"lc_source": "summarization"}),
        HumanMessage([{"type": "text", "text": user.content},
                      {"type": "image_url", "image_url": {"url": memory_url, "detail": "low"}}], id=user.id),
        AIMessage(answer.content, id=answer.id)]
    world.commit(ADA, conversation, user, answer, [
        {"deployment": "gpt-4o", "chain": "agent@2", "purpose": "answer", "prompt_tokens": 1000,
         "completion_tokens": 80, "cost_usd": "0.0040"},
        {"deployment": "text-embedding-3-small", "chain": "agent@2", "purpose": "embedding", "prompt_tokens": 30,
         "completion_tokens": 0, "cost_usd": "0.0000006"}], documents=[document])
    world.store.set_feedback(ADA, conversation.id, answer.id, 1)

    stopped_user = conversation.add(Turn("user", "And sick days?"))
    stopped = conversation.add(Turn("assistant", "Sick days are", deployment="gpt-4o-mini", chain="assistant@1",
                                    status="stopped", usage=Usage(300, 4, Decimal("0.000050"), estimated=True)))
    world.commit(ADA, conversation, stopped_user, stopped, [
        {"deployment": "gpt-4o-mini", "chain": "assistant@1", "prompt_tokens": 300, "completion_tokens": 4,
         "cost_usd": "0.00005", "outcome": "stopped"}])
    failed_user = conversation.add(Turn("user", "Try again", notice="Not sent: scan.png is too large."))
    failed = conversation.add(Turn("assistant", "", status="failed", notice="The service is busy.",
                                   deployment="gpt-4o", chain="assistant@1"))
    world.commit(ADA, conversation, failed_user, failed)
    return conversation


def side_by_side(world: World, owner: Owner) -> tuple[Conversation, Comparison]:
    conversation = Conversation()
    user = conversation.add(Turn("user", "Which is better?"))
    a = conversation.add(Turn("assistant", "Answer A", deployment="gpt-4o", chain="assistant@1"))
    b = Turn("assistant", "Answer B", deployment="gpt-4o-mini", chain="concise@1")
    comparison = Comparison("cmp-" + owner.oid, conversation.id, a.id, "assistant@1", "gpt-4o", "concise@1",
                            "gpt-4o-mini", answer_record(a), answer_record(b), None)
    world.commit(owner, conversation, user, a, comparison=comparison)
    assert world.store.record_vote(owner, conversation, comparison, "b", None)
    return conversation, comparison


def graces_conversation(world: World) -> Conversation:
    """Grace sends the same picture as Ada (one shared file) and has usage of her own."""
    conversation = Conversation()
    shared = world.files.save(sha(SHARED_PNG), "png", SHARED_PNG)
    user = conversation.add(Turn("user", "Is this my team?", attachments=[
        {"ref": shared, "name": "same.png", "width": 640, "height": 480, "detail": "low", "tokens": 85}]))
    answer = conversation.add(Turn("assistant", "Yes.", deployment="gpt-4o", chain="assistant@1",
                                   usage=Usage(100, 2, Decimal("0.0003"))))
    world.commit(GRACE, conversation, user, answer, [{"deployment": "gpt-4o", "chain": "assistant@1",
                                                      "prompt_tokens": 100, "completion_tokens": 2,
                                                      "cost_usd": "0.0003"}])
    return conversation


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def same_documents(exported: list[AttachedDocument], stored: list[AttachedDocument]) -> None:
    assert [replace(d, passages=[]) for d in exported] == [replace(d, passages=[]) for d in stored]


# -- one conversation -------------------------------------------------------------------------------------------------
def test_markdown_has_every_question_answer_attachment_source_and_the_pages_usage_line(world):
    conversation = adas_conversation(world)
    stored = world.store.load(ADA, conversation.id)
    markdown = conversation_markdown(stored)

    assert markdown.startswith(f"# {stored.title}\n")
    for turn in stored.turns:
        assert turn.content in markdown
        if turn.usage:
            assert usage_line(turn) == usage_caption(turn)  # the page's line, word for word
            assert f"*{usage_caption(turn)}*" in markdown
    assert markdown.count("## You") == 3 and markdown.count("## Assistant") == 3
    assert ("Images: team.png (640×480, low detail, 85 tokens), form.png (800×600, high detail, 765 tokens)"
            in markdown)
    assert "Documents: handbook.pdf" in markdown
    assert "- [1] handbook.pdf · page 2" in markdown
    assert "*Steps: search_documents (tool)*" in markdown
    assert "> Failed: The service is busy." in markdown and "> Not sent: scan.png is too large." in markdown
    assert "≈300 prompt + ≈4 completion tokens" in markdown and "· stopped" in markdown
    assert "Your feedback: 👍" in markdown
    assert "data:image" not in markdown and "stored:" not in markdown  # names only, never file data or paths


@pytest.mark.parametrize("embed_images", [False, True])
def test_json_holds_everything_stored_and_parses_back_to_what_the_store_loads(world, embed_images):
    conversation = adas_conversation(world)
    stored = world.store.load(ADA, conversation.id)
    data = json.loads(json.dumps(conversation_json(stored, world.files, embed_images)))  # really JSON

    assert (data["schema"], data["schema_version"]) == ("entra-chat/conversation", SCHEMA_VERSION)
    back = conversation_from_json(data)
    assert back.turns == stored.turns  # every field: usage (Decimal cost), steps, sources, attachments, feedback …
    assert (back.id, back.title, back.settings) == (stored.id, stored.title, stored.settings)
    same_documents(back.documents, stored.documents)
    assert data["memory"] == {"summary": "Ada asked about leave.",
                              "remembered_message_ids": [stored.turns[0].id, stored.turns[1].id]}
    assert data["totals"]["model_calls"] == 3 and Decimal(data["totals"]["cost_usd"]) == stored.totals().cost_usd
    answer = data["turns"][1]
    assert answer["usage"] == {"prompt_tokens": 1200, "completion_tokens": 80, "cost_usd": "0.004120",
                               "estimated": False, "model_calls": 2, "embedding_tokens": 30, "reasoning_tokens": 0}
    assert answer["steps"][0]["name"] == "search_documents" and answer["sources"][0]["where"] == "page 2"
    assert answer["feedback"] == 1

    images = data["turns"][0]["attachments"][:2]
    document = data["turns"][0]["attachments"][2]
    assert all(a["ref"].startswith("stored:") for a in data["turns"][0]["attachments"])
    assert EMBEDDED not in document  # documents are always referenced
    if embed_images:
        for image in images:
            assert image[EMBEDDED]["mime_type"] == "image/png"
            assert base64.b64decode(image[EMBEDDED]["base64"]) == world.files.load(image["ref"])
    else:
        assert not any(EMBEDDED in a for a in images)
        assert "base64" not in json.dumps(data)


def test_reasoning_tokens_in_the_usage_line_the_export_and_the_store_and_old_usage_still_loads(world):
    from memory.export import usage_from_json, usage_json
    from memory.store import _usage_from

    usage = Usage(200, 1000, Decimal("0.00205"), reasoning_tokens=880)
    answer = Turn("assistant", "42", deployment="gpt-5-mini", chain="assistant@1", usage=usage)
    line = usage_line(answer)
    assert line == ("gpt-5-mini · assistant@1 · 200 prompt + 1000 completion tokens, 880 of them reasoning · "
                    "$0.002050") and usage_caption(answer) == line
    assert "reasoning" not in usage_line(replace(answer, usage=replace(usage, reasoning_tokens=0)))
    assert usage_json(usage)["reasoning_tokens"] == 880 and usage_from_json(usage_json(usage)) == usage

    conversation = Conversation()
    question = conversation.add(Turn("user", "Think about it"))
    conversation.add(answer)
    conversation.add(Turn("user", "Again"))
    conversation.add(Turn("assistant", "43", usage=Usage(10, 300, Decimal("0.0006"), reasoning_tokens=256)))
    assert (conversation.totals().completion_tokens, conversation.totals().reasoning_tokens) == (1300, 1136)
    world.store.commit_turn(ADA, conversation, question, answer)
    assert world.store.load(ADA, conversation.id).turns[1].usage.reasoning_tokens == 880

    stored_before = {"prompt_tokens": 5, "completion_tokens": 2, "cost_usd": "0.0001", "estimated": False,
                     "model_calls": 1, "embedding_tokens": 0}  # usage stored before reasoning tokens were counted
    assert usage_from_json(stored_before).reasoning_tokens == 0 and _usage_from(stored_before).reasoning_tokens == 0
    assert _usage_from(json.dumps(stored_before)) == Usage(5, 2, Decimal("0.0001"))


def test_a_missing_image_file_is_marked_not_fatal(world):
    conversation = adas_conversation(world)
    stored = world.store.load(ADA, conversation.id)
    world.files.remove(stored.turns[0].attachments[1]["ref"])
    data = conversation_json(stored, world.files, embed_images=True)
    assert data["turns"][0]["attachments"][1]["file_missing"] is True
    assert conversation_from_json(data).turns == stored.turns


def test_json_carries_loaded_passages_without_vectors(world):
    conversation = adas_conversation(world)
    stored = world.store.load(ADA, conversation.id)
    world.store.load_passages(stored, stored.documents)
    (document,) = conversation_json(stored, world.files)["documents"]
    assert document["passages"] == [{"seq": 0, "label": "page 1", "text": "Welcome.", "tokens": 3},
                                     {"seq": 1, "label": "page 2", "text": "Leave: 25 days.", "tokens": 5}]
    assert document["mode"] == "retrieved" and document["embedding_cost"] == "0.0000006"


# -- everything of one person -----------------------------------------------------------------------------------------
def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def test_all_my_data_is_a_zip_matching_the_store(world):
    adas = adas_conversation(world)
    compared, comparison = side_by_side(world, ADA)
    graces_conversation(world)
    side_by_side(world, GRACE)
    export = export_all(world.store, world.ledger, ADA, world.files, embed_images=True)
    entries = read_zip(export.data)
    ids = {c.id for c in world.store.list(ADA)}
    assert ids == {adas.id, compared.id}
    assert set(entries) == ({f"conversations/{i}.json" for i in ids} | {f"conversations/{i}.md" for i in ids}
                            | {"feedback.json", "usage.csv", "manifest.json"})
    for conversation_id in ids:
        stored = world.store.load(ADA, conversation_id)
        back = conversation_from_json(json.loads(entries[f"conversations/{conversation_id}.json"]))
        assert back.turns == stored.turns and back.title == stored.title
        same_documents(back.documents, stored.documents)
        assert entries[f"conversations/{conversation_id}.md"].decode() == conversation_markdown(stored)
    exported = json.loads(entries[f"conversations/{adas.id}.json"])
    assert [p["text"] for p in exported["documents"][0]["passages"]] == ["Welcome.", "Leave: 25 days."]
    assert base64.b64decode(exported["turns"][0]["attachments"][1][EMBEDDED]["base64"]) == OWN_PNG

    feedback = json.loads(entries["feedback.json"])
    assert feedback["thumbs"] == [{"conversation_id": adas.id, "conversation_title": adas.title,
                                   "message_id": adas.turns[1].id, "score": 1, "thumbs": "up", "chain": "agent@2",
                                   "deployment": "gpt-4o"}]
    (vote,) = feedback["side_by_side_votes"]  # Ada's, not Grace's
    assert (vote["id"], vote["vote"], vote["answer_b"]["content"]) == (comparison.id, "b", "Answer B")
    assert "owner_oid" not in vote

    usage = list(csv.DictReader(io.StringIO(entries["usage.csv"].decode())))
    assert [(r["oid"], r["deployment"], r["purpose"], r["outcome"]) for r in usage] == [
        ("ada-oid", "gpt-4o", "answer", "ok"), ("ada-oid", "text-embedding-3-small", "embedding", "ok"),
        ("ada-oid", "gpt-4o-mini", "answer", "stopped")]
    assert sum(Decimal(r["cost_usd"]) for r in usage) == Decimal("0.0040506")
    assert {r["conversation_id"] for r in usage} == {adas.id}
    assert [r["reasoning_tokens"] for r in usage] == ["0", "0", "0"]  # a column of its own (gpt-4o does not reason)

    manifest = json.loads(entries["manifest.json"])
    assert manifest["person"] == {"oid": "ada-oid", "tenant_id": "tenant-1"} and manifest["images_embedded"] is True
    assert manifest["counts"] == export.counts == {"conversations": 2, "messages": 8, "images": 2, "feedback": 1,
                                                   "votes": 1, "usage_rows": 3}


def test_all_my_data_without_images_and_for_someone_with_nothing(world):
    adas_conversation(world)
    entries = read_zip(export_all(world.store, world.ledger, ADA, world.files, embed_images=False).data)
    assert "base64" not in b"".join(v for k, v in entries.items() if k.endswith(".json")).decode()
    empty = read_zip(export_all(world.store, world.ledger, ADA_ELSEWHERE, world.files).data)
    assert set(empty) == {"feedback.json", "usage.csv", "manifest.json"}
    assert empty["usage.csv"].decode().splitlines()[0].startswith("id,at,day,month,oid,tenant,deployment")
    assert len(empty["usage.csv"].decode().splitlines()) == 1


# -- deleting everything of one person --------------------------------------------------------------------------------
def rows(world: World, table: str, conversation_ids: set[str]) -> int:
    column = "id" if table == "conversations" else "conversation_id"
    marks = ", ".join(f"'{i}'" for i in conversation_ids)
    with world.engine.connect() as db:
        return db.execute(text(f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({marks})")).scalar_one()


def test_delete_all_removes_that_persons_data_only_and_leaves_the_audit_log(world):
    logger = logging.getLogger("test.export.audit")
    handler = logging.FileHandler(world.audit_path, encoding="utf-8")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        audit = AuditLog(logger)
        context = AuditContext("ada-oid", "tenant-1", None, "ref", "", "", "", "app")
        audit.event("feedback", context, score=1)
        handler.flush()
        audit_before = world.audit_path.read_bytes()

        adas = adas_conversation(world)
        compared, _ = side_by_side(world, ADA)
        graces = graces_conversation(world)
        side_by_side(world, GRACE)
        elsewhere = Conversation()  # the same oid string in another tenant: another person, untouched
        world.commit(ADA_ELSEWHERE, elsewhere, elsewhere.add(Turn("user", "mine")),
                     elsewhere.add(Turn("assistant", "ok")))
        ada_sessions = [world.sign_in(ADA), world.sign_in(ADA)]
        other_sessions = [world.sign_in(GRACE), world.sign_in(ADA_ELSEWHERE)]
        graces_before = world.store.load(GRACE, graces.id)
        with world.engine.connect() as db:
            usage_before = db.execute(text("SELECT COUNT(*) FROM usage_records")).scalar_one()
        ada_ids = {adas.id, compared.id}
        assert rows(world, "conversation_documents", ada_ids) == 1 and rows(world, "document_passages", ada_ids) == 2
        memory_file = f"stored:{sha(MEMORY_PNG)}.png"
        assert world.files.load(memory_file) == MEMORY_PNG

        searchable = hasattr(world.store, "search")  # the full-text index (store/search.py), where present
        if searchable:
            assert world.store.search(ADA, "pictures handbook leave")

        deleted = delete_all_my_data(world.store, world.sessions, ADA)

        # own picture, the memory's picture, the handbook; the shared picture stays for Grace
        assert deleted.as_dict() == {"conversations": 2, "messages": 8, "documents": 1, "files": 3, "sessions": 2}
        assert world.store.list(ADA) == [] and all(world.store.load(ADA, i) is None for i in ada_ids)
        for table in ("conversations", "messages", "message_steps", "message_sources", "conversation_documents",
                      "document_passages"):
            assert rows(world, table, ada_ids) == 0, table
        assert world.files.load(f"stored:{sha(OWN_PNG)}.png") is None
        assert world.files.load(f"stored:{sha(PDF)}.pdf") is None and world.files.load(memory_file) is None
        assert world.files.load(f"stored:{sha(SHARED_PNG)}.png") == SHARED_PNG
        assert all(world.sessions.get(s) is None for s in ada_sessions)
        if searchable:  # the search index forgets them too (store.delete does it)
            assert world.store.search(ADA, "pictures handbook leave") == []
            assert world.store.search(GRACE, "team")

        # everyone else's data intact
        assert world.store.load(GRACE, graces.id).turns == graces_before.turns
        assert [c.title for c in world.store.list(GRACE)] == ["Which is better?", "Is this my team?"]
        assert world.store.load(ADA_ELSEWHERE, elsewhere.id) is not None
        assert all(world.sessions.get(s) is not None for s in other_sessions)

        # the organisation's records stay: audit log byte for byte, usage rows, votes (answers' text erased)
        handler.flush()
        assert world.audit_path.read_bytes() == audit_before
        with world.engine.connect() as db:
            assert db.execute(text("SELECT COUNT(*) FROM usage_records")).scalar_one() == usage_before
            votes = db.execute(text("SELECT vote, answer_a, answer_b FROM comparisons WHERE owner_oid = 'ada-oid'"
                                    " AND owner_tenant = 'tenant-1'")).all()
        assert [(v.vote, v.answer_a in (None, "null"), v.answer_b in (None, "null")) for v in votes] == [
            ("b", True, True)]

        again = delete_all_my_data(world.store, world.sessions, ADA)  # nothing left: harmless
        assert again.as_dict() == {"conversations": 0, "messages": 0, "documents": 0, "files": 0, "sessions": 0}
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_delete_all_without_a_session_store_and_the_sessions_method(world):
    adas_conversation(world)
    assert delete_all_my_data(world.store, None, ADA).sessions == 0 and world.store.list(ADA) == []
    first, second = world.sign_in(ADA), world.sign_in(GRACE)
    assert world.sessions.delete_all_of("ada-oid", "tenant-2") == 0  # the tenant is part of who someone is
    assert world.sessions.delete_all_of("ada-oid", "tenant-1") == 1
    assert world.sessions.get(first) is None and world.sessions.get(second) is not None


def test_export_module_never_imports_streamlit():
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, memory.export; assert 'streamlit' not in sys.modules"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=root).returncode == 0
