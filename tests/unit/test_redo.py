"""Regenerate the last answer and edit-and-resend the last question (engine/redo.py): the new exchange is stored in
place, the replaced one stays as a version that can be put back in use, the memory follows the version in use, and
every call is audited and costed."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from sqlalchemy import text

from engine import Accepted, Blocked, NewMessage, Outcome, Redo, TextDelta
from memory.conversation import Conversation
from memory.export import conversation_from_json, conversation_json, conversation_markdown
from tests.unit.test_turn_engine import OWNER, WHO, choices, model_calls, rig, settings  # noqa: F401 - pytest fixtures, used by name


def first_turn(rig, question="What is Entra ID?", answer="Entra ID is an identity service") -> Conversation:
    rig.script.answers.append(answer)
    conversation = Conversation()
    list(rig.engine.run(WHO, conversation, NewMessage(question), choices(rig.settings)))
    return conversation


def texts(messages) -> list[str]:
    return [m.text.strip() for m in messages]


def test_regenerate_replaces_the_answer_keeps_the_old_one_as_version_1_and_the_memory_follows(rig):
    conversation = first_turn(rig)
    old_answer_id = conversation.turns[1].id
    rig.script.answers.append("Microsoft Entra ID signs people in")
    events = list(Redo(rig.engine).run(WHO, conversation, choices(rig.settings, chain="concise")))

    assert isinstance(events[0], Accepted) and events[0].turn.content == "What is Entra ID?"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).split() == "Microsoft Entra ID signs people in".split()
    outcome = events[-1]
    assert isinstance(outcome, Outcome) and outcome.saved and outcome.answer.id == old_answer_id
    assert outcome.answer.chain == "concise@1" and outcome.answer.version_in_use == 2
    # The model was sent the question again, with nothing of the replaced answer.
    sent = rig.script.calls[-1]["messages"]
    assert "Entra ID is an identity service" not in " ".join(m.text for m in sent)
    assert sent[-1].text == "What is Entra ID?"
    # Stored: two turns still, the new answer in use, the old one as version 1; memory follows the new one.
    stored = rig.store.load(OWNER, conversation.id)
    assert [t.role for t in stored.turns] == ["user", "assistant"]
    answer = stored.turns[1]
    assert answer.content.split() == "Microsoft Entra ID signs people in".split()
    assert [(v.n, v.active, v.answer.content.split()[0]) for v in answer.versions] == [
        (1, False, "Entra"), (2, True, "Microsoft")]
    assert texts(stored.memory)[-1].split() == "Microsoft Entra ID signs people in".split()
    assert [m.id for m in stored.memory] == [conversation.turns[0].id, old_answer_id]
    # Both calls audited and costed; the conversation's totals include the replaced answer.
    assert len(model_calls(rig)) == 2
    assert stored.totals().cost_usd == sum((Decimal(r["cost_usd"]) for r in model_calls(rig)), Decimal(0))
    assert stored.totals().model_calls == 2
    (redone,) = [r for r in rig.audit.records if r["event"] == "exchange_redone"]
    assert redone["kind"] == "regenerate" and redone["version"] == 2 and redone["chain"] == "concise@1"


def test_edit_and_resend_changes_the_question_and_switching_versions_restores_question_answer_and_memory(rig):
    conversation = first_turn(rig, "What is Entra?", "Entra is a family of identity products")
    user_id, answer_id = conversation.turns[0].id, conversation.turns[1].id
    rig.script.answers.append("Entra ID is the directory")
    events = list(Redo(rig.engine).run(WHO, conversation, choices(rig.settings), edited="  What is Entra ID?  "))
    outcome = events[-1]
    assert outcome.user.content == "What is Entra ID?" and outcome.user.id == user_id
    assert rig.script.calls[-1]["messages"][-1].text == "What is Entra ID?"
    stored = rig.store.load(OWNER, conversation.id)
    assert stored.turns[0].content == "What is Entra ID?"
    assert [v.question for v in stored.turns[1].versions] == ["What is Entra?", "What is Entra ID?"]
    # Thumbs on version 2, then back to version 1: question, answer and memory are version 1's; the thumbs stay.
    rig.engine.record_feedback(WHO, stored, stored.turns[1], 1, choices(rig.settings))
    assert Redo(rig.engine).use(WHO, stored, 1, choices(rig.settings))
    again = rig.store.load(OWNER, conversation.id)
    assert again.turns[0].content == "What is Entra?" and again.turns[1].id == answer_id
    assert again.turns[1].content.split() == "Entra is a family of identity products".split()
    assert again.turns[1].feedback is None and again.turns[1].version_in_use == 1
    assert [m.text.split()[:2] for m in again.memory] == [["What", "is"], ["Entra", "is"]]
    assert texts(again.memory)[0] == "What is Entra?"
    # And forward to version 2: its thumbs are back.
    assert Redo(rig.engine).use(WHO, again, 2, choices(rig.settings))
    last = rig.store.load(OWNER, conversation.id)
    assert last.turns[1].feedback == 1 and last.turns[0].content == "What is Entra ID?"
    assert texts(last.memory) == ["What is Entra ID?", last.turns[1].content.strip()]
    assert [r["version"] for r in rig.audit.records if r["event"] == "answer_version_chosen"] == [1, 2]
    # Search finds the question in use, not the replaced one.
    assert [h.conversation_id for h in rig.store.search(OWNER, "directory")] == [conversation.id]


def test_a_third_version_and_a_next_turn_build_on_the_version_in_use(rig):
    conversation = first_turn(rig, "Name a colour", "Red")
    for answer in ("Green", "Blue"):
        rig.script.answers.append(answer)
        list(Redo(rig.engine).run(WHO, conversation, choices(rig.settings)))
    assert [v.n for v in conversation.turns[1].versions] == [1, 2, 3]
    assert Redo(rig.engine).use(WHO, conversation, 2, choices(rig.settings))
    rig.script.answers.append("Because it is green")
    list(rig.engine.run(WHO, conversation, NewMessage("Why?"), choices(rig.settings)))
    sent = texts(rig.script.calls[-1]["messages"])
    assert sent[-3:] == ["Name a colour", "Green", "Why?"]  # the version in use, nothing of the others
    stored = rig.store.load(OWNER, conversation.id)
    assert len(stored.turns) == 4 and [v.active for v in stored.turns[1].versions] == [False, True, False]
    # The exchange is not the last any more: redo applies to the new last one.
    rig.script.answers.append("Because")
    list(Redo(rig.engine).run(WHO, stored, choices(rig.settings)))
    again = rig.store.load(OWNER, conversation.id)
    assert [len(t.versions) for t in again.turns] == [0, 3, 0, 2]


def test_stop_during_a_regenerated_answer_keeps_the_partial_version_and_the_old_one(rig):
    conversation = first_turn(rig, "count", "one two")
    rig.script.answers.append("three four five six seven eight nine")
    events = Redo(rig.engine).run(WHO, conversation, choices(rig.settings))
    for event in events:
        if isinstance(event, TextDelta):
            break
    events.close()
    stored = rig.store.load(OWNER, conversation.id)
    answer = stored.turns[1]
    assert answer.status == "stopped" and answer.content.split()[0] == "three"
    assert [v.answer.content.split() for v in answer.versions][0] == ["one", "two"]
    assert texts(stored.memory)[-1] == answer.content.strip()


def test_what_cannot_be_redone_is_refused_clearly_and_audited(rig):
    empty = Conversation()
    (blocked,) = Redo(rig.engine).run(WHO, empty, choices(rig.settings))
    assert isinstance(blocked, Blocked) and "no answer" in blocked.message
    conversation = first_turn(rig)
    (blocked,) = Redo(rig.engine).run(WHO, conversation, choices(rig.settings), edited="   ")
    assert "empty" in blocked.message and blocked.draft == "   "
    conversation.turns[0].excluded = True
    (blocked,) = Redo(rig.engine).run(WHO, conversation, choices(rig.settings))
    assert "content filter" in blocked.message and "edit" in blocked.message
    refused = [r["reason"] for r in rig.audit.records if r["event"] == "message_not_sent"]
    assert refused == ["regenerate_refused", "edit_refused", "regenerate_refused"]
    assert len(model_calls(rig)) == 1  # nothing sent


def test_a_store_failure_keeps_the_new_answer_on_the_page_and_says_so(rig, monkeypatch):
    conversation = first_turn(rig)
    rig.script.answers.append("Another answer")

    def broken(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(rig.store, "use_version", broken)
    outcome = list(Redo(rig.engine).run(WHO, conversation, choices(rig.settings)))[-1]
    assert not outcome.saved and "could not be saved" in outcome.answer.notice
    assert rig.store.load(OWNER, conversation.id).turns[1].content.split() == "Entra ID is an identity service".split()


def test_exports_carry_every_version_and_deleting_the_conversation_removes_them(rig):
    conversation = first_turn(rig, "Name a colour", "Red")
    rig.script.answers.append("Green")
    list(Redo(rig.engine).run(WHO, conversation, choices(rig.settings), edited="Name a warm colour"))
    stored = rig.store.load(OWNER, conversation.id)
    back = conversation_from_json(conversation_json(stored, rig.store.files))
    # Everything but what the model remembered of each version (the export has the summary, not the messages).
    assert back.turns[0] == stored.turns[0]
    assert back.turns[1].versions == [replace(v, memory_tail=[]) for v in stored.turns[1].versions]
    assert replace(back.turns[1], versions=[]) == replace(stored.turns[1], versions=[])
    markdown = conversation_markdown(stored)
    assert "*Answer 2 of 2; the others:*" in markdown and "> **Version 1.** You: Name a colour" in markdown
    assert "> Red" in markdown
    assert rig.store.delete(OWNER, conversation.id)
    with rig.store._engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM answer_versions")).scalar() == 0
