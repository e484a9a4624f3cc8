"""An earlier release's databases, made and filled by that release's own code.

`python tests/old_release.py TREE DATA_DIR MANIFEST [DATABASE_URL]` runs with TREE (that release's files, from git)
first on sys.path: its stores create their tables with `create_all`, as deployed databases were made before
migrations, and write conversations (images in messages and in memory, documents with passages, steps, sources, a
side-by-side vote, usage, feedback, renames), sign-in sessions, budget overrides and chain statistics. MANIFEST gets
what that release reads back, described by the functions below; tests/unit/test_migrations.py describes what today's
code reads after the upgrade with the same functions and compares. Only APIs that release had are used.
"""
from __future__ import annotations

import base64
import hashlib
import json
import sys
import uuid
from pathlib import Path

SECRET = "an-old-release-session-secret-of-40-chars"
OWNERS = (("ada-oid", "tenant-1"), ("grace-oid", "tenant-1"), ("ada-oid", "tenant-2"))
PICTURES = {"shared": b"\x89PNG a picture both people sent", "own": b"\x89PNG Ada's own picture",
            "memory": b"\x89PNG only in what the model remembers"}
PDF = b"%PDF-1.7 the leave handbook"
SEARCH_WORDS = ("glaciers", "handbook", "walrus")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def comparison_id(conversation_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"comparison/{conversation_id}"))


# -- descriptions: plain JSON of what a release's code reads back (the same functions describe both sides) -------------

def describe_message(message) -> dict:
    return {"type": message.type, "id": message.id, "content": message.content,
            "summary": (message.additional_kwargs or {}).get("lc_source")}


def describe_turn(turn) -> dict:
    usage = turn.usage
    return {"id": turn.id, "role": turn.role, "content": turn.content, "status": turn.status, "notice": turn.notice,
            "deployment": turn.deployment, "chain": turn.chain, "excluded": turn.excluded, "feedback": turn.feedback,
            "attachments": turn.attachments, "steps": turn.steps, "sources": turn.sources,
            "usage": None if usage is None else [usage.prompt_tokens, usage.completion_tokens, str(usage.cost_usd),
                                                 usage.estimated, usage.model_calls, usage.embedding_tokens]}


def describe_conversation(conversation) -> dict:
    return {"id": conversation.id, "title": conversation.title, "settings": conversation.settings,
            "turns": [describe_turn(t) for t in conversation.turns],
            "memory": [describe_message(m) for m in conversation.memory],
            "documents": [{"id": d.id, "name": d.name, "kind": d.kind, "ref": d.ref, "mode": d.mode, "tokens": d.tokens,
                           "pages": d.pages, "embedding_cost": str(d.embedding_cost),
                           "passage_count": d.passage_count, "message_id": d.message_id}
                          for d in conversation.documents]}


def describe_passages(documents) -> list:
    return [[d.id, [[p.seq, p.label, p.text, p.tokens, None if p.vector is None else [float(x) for x in p.vector]]
                    for p in d.passages]] for d in documents]


def describe_session(session) -> dict | None:
    if session is None:
        return None
    who = session.identity
    return {"oid": who.oid, "tenant": who.tenant_id, "name": who.name, "username": who.username,
            "roles": list(who.roles), "token_cache": session.token_cache, "draft": session.draft}


def describe_store(store, ledger, statistics, sessions, session_ids: list[str]) -> dict:
    """Everything the test compares, read through the stores' public methods."""
    from memory.store import Owner

    found = {"conversations": {}, "passages": {}, "comparisons": {}, "budgets": {}, "search": {}}
    for oid, tenant in OWNERS:
        owner = Owner(oid, tenant)
        key = f"{oid}/{tenant}"
        listed = store.list(owner)
        found["conversations"][key] = []
        for summary in listed:
            conversation = store.load(owner, summary.id)
            found["conversations"][key].append(describe_conversation(conversation))
            store.load_passages(conversation, conversation.documents)
            found["passages"][summary.id] = describe_passages(conversation.documents)
        state = ledger.state(oid, tenant, None)
        found["budgets"][key] = [state.spent_nanousd, state.reserved_nanousd, ledger.override(oid, tenant)]
        found["search"][key] = {word: sorted([h.conversation_id, h.message_id] for h in store.search(owner, word))
                                for word in SEARCH_WORDS}
        for conversation in found["conversations"][key]:
            comparison = store.comparison(owner, comparison_id(conversation["id"]))
            if comparison is not None:
                found["comparisons"][comparison.id] = [comparison.vote, comparison.answer_a, comparison.answer_b,
                                                       comparison.chain_a, comparison.chain_b]
    found["chain_stats"] = [[s.chain, s.calls, s.answers, str(s.total_cost_usd), s.thumbs_up, s.thumbs_down]
                            for s in statistics.all()]
    found["sessions"] = {session_id: describe_session(sessions.get(session_id)) for session_id in session_ids}
    found["files"] = sorted(p.name for p in store.files.folder.rglob("*") if p.is_file())
    return found


# -- the old release at work ------------------------------------------------------------------------------------------

def fill(data: Path, url: str | None) -> dict:
    from datetime import timedelta
    from decimal import Decimal

    import numpy as np
    from langchain_core.messages import AIMessage, HumanMessage

    from auth.identity import Identity
    from auth.sessions import SessionStore
    from callbacks.chain_stats import ChainStatistics
    from config.database import database_engine
    from memory.comparisons import Comparison
    from memory.conversation import Conversation, Turn, Usage
    from memory.documents import AttachedDocument, Passage
    from memory.images import ImageFiles
    from memory.store import ConversationStore, Owner, answer_record
    from memory.summary import SUMMARY_PREFIX
    from memory.usage import UsageLedger, to_nano

    engine = database_engine(url, data, "conversations.db")
    files = ImageFiles(data / "images")
    store, ledger, statistics = ConversationStore(engine, files), UsageLedger(engine), ChainStatistics(engine)
    sessions = SessionStore(database_engine(url, data, "sessions.db"), SECRET, timedelta(hours=8))
    ada, grace, ada_elsewhere = (Owner(*o) for o in OWNERS)

    def commit(owner, conversation, user, answer, records=(), **kwargs):
        records = [{"event": "model_call", "conversation_id": conversation.id, "deployment": "gpt-4o",
                    "chain": "assistant@1", "purpose": "answer", "prompt_tokens": 10, "completion_tokens": 5,
                    "cost_usd": "0.0001", **r} for r in records]
        reservation = ledger.reserve(owner.oid, owner.tenant_id, to_nano("0.01"), to_nano("100")) if records else None
        store.commit_turn(owner, conversation, user, answer, usage=(ledger, records, reservation), **kwargs)
        for record in records:
            statistics.record(record)

    shared = files.save(sha(PICTURES["shared"]), "png", PICTURES["shared"])
    own = files.save(sha(PICTURES["own"]), "png", PICTURES["own"])
    pdf = files.save(sha(PDF), "pdf", PDF)

    # Ada: pictures in her message and in memory, a document with passages and vectors, steps, sources, usage.
    leave = Conversation(settings={"deployment": "gpt-4o", "chain": "agent@2", "temperature": 0.2})
    user = leave.add(Turn("user", "What do these pictures and the handbook say about leave?", attachments=[
        {"ref": shared, "name": "team.png", "width": 640, "height": 480, "detail": "low", "tokens": 85},
        {"ref": own, "name": "form.png", "width": 800, "height": 600, "detail": "high", "tokens": 765},
        {"ref": pdf, "name": "handbook.pdf", "kind": "document", "summary": "handbook.pdf · 2 pages"}]))
    answer = leave.add(Turn(
        "assistant", "Leave is **25 days** a year [1], says the handbook.", deployment="gpt-4o", chain="agent@2",
        usage=Usage(1200, 80, Decimal("0.004120"), model_calls=2, embedding_tokens=30),
        steps=[{"kind": "tool", "name": "search_documents", "input": {"query": "leave"}, "output": "[1] …",
                "duration_ms": 12, "error": None}],
        sources=[{"n": 1, "file": "handbook.pdf", "where": "page 2", "text": "Leave: 25 days.", "ref": pdf}]))
    document = AttachedDocument(
        name="handbook.pdf", kind="pdf", ref=pdf, mode="retrieved", tokens=900, pages=2,
        embedding_deployment="text-embedding-3-small", embedding_tokens=30, embedding_cost=Decimal("0.0000006"),
        message_id=user.id, passages=[Passage(0, "page 1", "Welcome to the handbook.", 5,
                                              np.array([0.5, 0.5, 0.5, 0.5], dtype="<f4")),
                                      Passage(1, "page 2", "Leave: 25 days.", 5,
                                              np.array([1.0, 0.0, 0.0, 0.0], dtype="<f4"))])
    remembered = "data:image/png;base64," + base64.b64encode(PICTURES["memory"]).decode()
    leave.memory = [
        HumanMessage(SUMMARY_PREFIX + "Ada asked about leave.", additional_kwargs={"lc_source": "summarization"}),
        HumanMessage([{"type": "text", "text": user.content},
                      {"type": "image_url", "image_url": {"url": remembered, "detail": "low"}}], id=user.id),
        AIMessage(answer.content, id=answer.id)]
    commit(ada, leave, user, answer, [{"chain": "agent@2"}, {"chain": "agent@2", "purpose": "embedding",
                                                             "deployment": "text-embedding-3-small"}],
           documents=[document])
    store.set_feedback(ada, leave.id, answer.id, 1)
    stopped_user = leave.add(Turn("user", "And sick days?"))
    stopped = leave.add(Turn("assistant", "Sick days are", deployment="gpt-4o-mini", chain="assistant@1",
                             status="stopped", usage=Usage(300, 4, Decimal("0.000050"), estimated=True)))
    leave.memory += [HumanMessage(stopped_user.content, id=stopped_user.id), AIMessage(stopped.content, id=stopped.id)]
    commit(ada, leave, stopped_user, stopped, [{"deployment": "gpt-4o-mini", "outcome": "stopped"}])
    failed_user = leave.add(Turn("user", "Try again", notice="Not sent: scan.png is too large."))
    failed = leave.add(Turn("assistant", "", status="failed", notice="The service is busy.", deployment="gpt-4o",
                            chain="assistant@1"))
    commit(ada, leave, failed_user, failed)
    assert store.rename(ada, leave.id, "Leave and glaciers")

    # Ada: a side-by-side comparison she voted on.
    duel = Conversation()
    asked = duel.add(Turn("user", "Which walrus is bigger?"))
    a = duel.add(Turn("assistant", "The Pacific walrus.", deployment="gpt-4o", chain="assistant@1"))
    b = Turn("assistant", "The Atlantic one is smaller.", deployment="gpt-4o-mini", chain="concise@1")
    comparison = Comparison(comparison_id(duel.id), duel.id, a.id, "assistant@1", "gpt-4o", "concise@1", "gpt-4o-mini",
                            answer_record(a), answer_record(b), None)
    commit(ada, duel, asked, a, [{}], comparison=comparison)
    assert store.record_vote(ada, duel, comparison, "b", None)

    # Grace sends the picture Ada sent (one shared file); the same oid in another tenant is another person.
    mine = Conversation()
    user = mine.add(Turn("user", "Is this my team by the glaciers?", attachments=[
        {"ref": shared, "name": "same.png", "width": 640, "height": 480, "detail": "low", "tokens": 85}]))
    answer = mine.add(Turn("assistant", "Yes, by the glaciers.", deployment="gpt-4o", chain="assistant@1",
                           usage=Usage(100, 2, Decimal("0.0003"))))
    mine.memory = [HumanMessage([{"type": "text", "text": user.content},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(
                                     PICTURES["shared"]).decode(), "detail": "low"}}], id=user.id),
                   AIMessage(answer.content, id=answer.id)]
    commit(grace, mine, user, answer, [{}])
    elsewhere = Conversation()
    commit(ada_elsewhere, elsewhere, elsewhere.add(Turn("user", "Hello from the other tenant")),
           elsewhere.add(Turn("assistant", "Hello.", deployment="gpt-4o", chain="assistant@1")))

    # Many plain conversations: every one of them must be there afterwards.
    for n in range(40):
        plain = Conversation()
        question = plain.add(Turn("user", f"Question {n} about glaciers" if n % 7 == 0 else f"Question {n}"))
        reply = plain.add(Turn("assistant", f"Answer {n}", deployment="gpt-4o-mini", chain="assistant@1"))
        plain.memory = [HumanMessage(question.content, id=question.id), AIMessage(reply.content, id=reply.id)]
        commit(ada if n % 2 else grace, plain, question, reply, [{"deployment": "gpt-4o-mini"}] if n % 3 == 0 else [])

    ledger.set_override("grace-oid", "tenant-1", Decimal("12.50"), "admin-oid")
    ids = [sessions.create(Identity("ada-oid", "tenant-1", "Ada", "ada@example.com", ("admin",)),
                           '{"AccessToken": {}}', draft="a message kept across sign-in").id,
           sessions.create(Identity("grace-oid", "tenant-1", "Grace", "grace@example.com"), '{"RefreshToken": {}}').id]
    assert sessions.use_state_once("a-used-sign-in-state", timedelta(minutes=10))
    found = describe_store(store, ledger, statistics, sessions, ids)
    found["session_ids"] = ids
    found["leave"] = leave.id
    found["refs"] = {"shared": shared, "own": own, "pdf": pdf}
    return found


def main() -> int:
    tree, data, manifest = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    url = sys.argv[4] if len(sys.argv) > 4 else None
    sys.path.insert(0, str(tree))
    for name in [m for m in sys.modules if m.split(".")[0] in ("memory", "auth", "callbacks", "config", "chains")]:
        del sys.modules[name]
    manifest.write_text(json.dumps(fill(data, url), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
