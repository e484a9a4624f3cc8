"""The conversation store on SQLite (and the same tests on Postgres in tests/integration): persistence across a
restart, one transaction per turn, automatic titles, marked stopped/failed turns, and strict per-person isolation."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from decimal import Decimal

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from config.database import database_engine
from memory.conversation import Conversation, Turn, Usage, Version
from memory.store import ConversationStore, Owner, auto_title
from store.files import FileStore

ADA, GRACE = Owner("ada-oid", "tenant-1"), Owner("grace-oid", "tenant-1")
ADA_ELSEWHERE = Owner("ada-oid", "tenant-2")  # same oid string in another tenant is another person


def exchange(conversation: Conversation, question: str, answer: str = "an answer", status: str = "complete"):
    user = conversation.add(Turn("user", question))
    reply = conversation.add(Turn("assistant", answer, deployment="gpt-4o", chain="assistant@1", status=status,
                                  usage=Usage(10, 5, Decimal("0.0001"))))
    conversation.memory = [*conversation.memory, HumanMessage(question, id=user.id), AIMessage(answer, id=reply.id)]
    return user, reply


@pytest.fixture(params=["sqlite"])
def store_factory(request, tmp_path):
    return lambda: ConversationStore(database_engine(None, tmp_path, "conversations.db"))


def run_store_contract(make_store):
    store = make_store()
    conversation = Conversation()
    user, reply = exchange(conversation, "How do I rotate a client secret in Entra ID before it expires next week?")
    store.commit_turn(ADA, conversation, user, reply)
    stopped_user, stopped = exchange(conversation, "second", "partial", status="stopped")
    store.commit_turn(ADA, conversation, stopped_user, stopped)
    failed_user = conversation.add(Turn("user", "third"))
    failed = conversation.add(Turn("assistant", "", status="failed", notice="The service is busy."))
    store.commit_turn(ADA, conversation, failed_user, failed)

    again = make_store()  # a restart: a new engine on the same database
    (listed,) = again.list(ADA)
    assert listed.title == "How do I rotate a client secret in Entra ID before it…"
    loaded = again.load(ADA, conversation.id)
    assert [t.content for t in loaded.turns] == [t.content for t in conversation.turns]
    assert loaded.turns[3].status == "stopped" and loaded.turns[1].usage.prompt_tokens == 10
    # A failed answer is kept marked, and so is the person's message it answered.
    assert (loaded.turns[4].content, loaded.turns[5].status, loaded.turns[5].notice) == (
        "third", "failed", "The service is busy.")
    assert [m.id for m in loaded.memory] == [m.id for m in conversation.memory]

    # Isolation: nothing of Ada's is visible or changeable for Grace, whatever id she uses.
    for other in (GRACE, ADA_ELSEWHERE):
        assert again.list(other) == [] and again.load(other, conversation.id) is None
        assert again.rename(other, conversation.id, "mine now") is False
        assert again.delete(other, conversation.id) is False
        assert again.set_feedback(other, conversation.id, reply.id, 0) is False
        with pytest.raises(LookupError):
            intruder = Conversation(id=conversation.id, persisted=True)
            u, r = exchange(intruder, "append to someone else's conversation")
            again.commit_turn(other, intruder, u, r)
    assert len(again.load(ADA, conversation.id).turns) == 6

    # Versions of the last exchange (regenerate / edit): the new one in use, the old one kept whole, owner only.
    resumed = again.load(ADA, conversation.id)
    old_user, old_answer = resumed.turns[-2:]
    asked = replace(old_user, content="third, edited")
    redone = Turn("assistant", "a new answer", id=old_answer.id, usage=Usage(5, 2, Decimal("0.001")))
    redone.versions = [Version(1, old_user.content, old_answer, memory_tail=[HumanMessage("third", id=old_user.id)]),
                       Version(2, asked.content, redone, active=True)]
    resumed.turns[-2:] = [asked, redone]
    with pytest.raises(LookupError):
        again.use_version(GRACE, resumed, asked, redone, redone.versions)
    again.use_version(ADA, resumed, asked, redone, redone.versions)
    back = make_store().load(ADA, conversation.id)
    assert [t.content for t in back.turns[-2:]] == ["third, edited", "a new answer"]
    assert [(v.n, v.active, v.question, v.answer.status) for v in back.turns[-1].versions] == [
        (1, False, "third", "failed"), (2, True, "third, edited", "complete")]
    assert [m.text for m in back.turns[-1].versions[0].memory_tail] == ["third"]
    assert back.totals().cost_usd == resumed.totals().cost_usd

    assert again.rename(ADA, conversation.id, "  Secret   rotation ") and again.list(ADA)[0].title == "Secret rotation"
    assert again.set_feedback(ADA, conversation.id, reply.id, 1) and again.load(ADA, conversation.id).turns[1].feedback == 1
    assert again.delete(ADA, conversation.id) and again.list(ADA) == [] and again.load(ADA, conversation.id) is None


def run_image_cleanup_contract(store: ConversationStore) -> None:
    """Deleting a conversation deletes its image files, except those another conversation (anyone's) still uses."""
    files = store.files
    shared_bytes, own_bytes = b"\x89PNG shared picture", b"\x89PNG Ada's own picture"
    shared = files.save(hashlib.sha256(shared_bytes).hexdigest(), "png", shared_bytes)
    own_url = "data:image/png;base64," + base64.b64encode(own_bytes).decode()

    adas, graces = Conversation(), Conversation()
    user, reply = exchange(adas, "what is in these?")
    user.attachments = [{"ref": shared, "name": "a.png", "width": 1, "height": 1, "detail": "low", "tokens": 85}]
    adas.memory[0] = HumanMessage([{"type": "text", "text": "what is in these?"},
                                   {"type": "image_url", "image_url": {"url": own_url, "detail": "low"}}], id=user.id)
    store.commit_turn(ADA, adas, user, reply)  # the memory's data URL becomes a file of its own
    user, reply = exchange(graces, "and this?")
    user.attachments = [{"ref": shared, "name": "b.png", "width": 1, "height": 1, "detail": "low", "tokens": 85}]
    store.commit_turn(GRACE, graces, user, reply)
    own = "stored:" + hashlib.sha256(own_bytes).hexdigest() + ".png"
    assert files.load(own) == own_bytes

    assert store.delete(GRACE, adas.id) is False and files.load(own) == own_bytes
    assert store.delete(ADA, adas.id)
    assert files.load(own) is None and files.load(shared) == shared_bytes  # Grace still has the shared picture
    assert store.load(GRACE, graces.id).turns[0].attachments[0]["ref"] == shared
    assert store.delete(GRACE, graces.id) and files.load(shared) is None


def test_store_contract_on_sqlite(store_factory):
    run_store_contract(store_factory)


def test_deleting_a_conversation_deletes_its_unshared_images(tmp_path):
    run_image_cleanup_contract(ConversationStore(database_engine(None, tmp_path, "conversations.db"),
                                                 FileStore(tmp_path / "images")))


def test_a_turn_is_all_or_nothing(store_factory):
    store = store_factory()
    conversation = Conversation()
    store.commit_turn(ADA, conversation, *exchange(conversation, "first"))
    user, reply = exchange(conversation, "second")
    reply.id = conversation.turns[0].id  # a duplicate key: the database refuses the answer row
    with pytest.raises(Exception):
        store.commit_turn(ADA, conversation, user, reply)
    loaded = store.load(ADA, conversation.id)
    assert [t.content for t in loaded.turns] == ["first", "an answer"]  # the person's message was not half-stored
    assert len(loaded.memory) == 2


def test_auto_title_cuts_on_a_word_boundary():
    assert auto_title("  short   question ") == "short question"
    assert auto_title("word " * 30).endswith("…") and len(auto_title("word " * 30)) <= 61
    assert auto_title("") == "New conversation"


def run_recent_and_search_contract(store: ConversationStore) -> None:
    """The sidebar reads a bounded page: the most recent first, at most `limit`, older ones found by title search
    (case-insensitive, LIKE wildcards taken literally), and never someone else's."""
    titles = [f"Question {n:02d} about {'budgets' if n % 5 == 0 else 'calendars'}" for n in range(30)]
    for title in titles:
        conversation = Conversation()
        user, reply = exchange(conversation, title)
        store.commit_turn(ADA, conversation, user, reply)
    other = Conversation()
    store.commit_turn(GRACE, other, *exchange(other, "Grace asks about budgets"))
    percent = Conversation()
    store.commit_turn(ADA, percent, *exchange(percent, "Raise of 100% for interns_2026"))

    recent = store.list(ADA, limit=5)
    assert [c.title for c in recent] == ["Raise of 100% for interns_2026", *reversed(titles[-4:])]
    assert len(store.list(ADA)) == 31
    found = store.list(ADA, limit=20, search="BUDGETS")
    assert [c.title for c in found] == [t for t in reversed(titles) if "budgets" in t]
    assert [c.title for c in store.list(ADA, search="100%")] == ["Raise of 100% for interns_2026"]
    assert store.list(ADA, search="_20") == [c for c in store.list(ADA) if "_20" in c.title]
    assert store.list(ADA, search="%") == [percent_row for percent_row in store.list(ADA) if "%" in percent_row.title]
    assert store.list(GRACE, search="budgets")[0].title == "Grace asks about budgets"


def test_recent_conversations_and_search_on_sqlite(tmp_path):
    run_recent_and_search_contract(ConversationStore(database_engine(None, tmp_path, "conversations.db")))
