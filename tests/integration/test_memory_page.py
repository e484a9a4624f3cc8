"""Memory and saved conversations through the page and the emulator: the model's prompt holds system + summary +
recent messages only, the summary call is audited and never streamed, the page keeps the whole history, and
conversations survive a restart and stay private."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from localdev.entra import Knobs
from localdev.stack import OTHER_USER, TENANT_ID
from tests.integration.apptest import open_page as page
from tests.integration.signin import sign_in


def ask(at: AppTest, text: str) -> None:
    at.chat_input(key="draft").set_value(text).run()
    assert not at.exception, at.exception


def test_summary_after_seven_messages_and_prompt_holds_summary_plus_recent(settings, signed_in, emulators):
    at = page()
    for n in range(1, 4):
        ask(at, f"question {n}")
    assert len(emulators.aoai.requests) and not any("summary" in str(r["body"]["messages"][0]) for r in emulators.aoai.requests[-1:])
    before = len(emulators.aoai.requests)
    ask(at, "question 4")  # 6 remembered + this one = 7: the oldest are folded into a summary first
    summary_call, answer_call = emulators.aoai.requests[before:]
    assert not summary_call["body"].get("stream") and "question 1" in json.dumps(summary_call["body"]["messages"])
    assert summary_call["body"]["user_security_context"]["end_user_id"] == answer_call["body"]["user_security_context"]["end_user_id"]
    sent = answer_call["body"]["messages"]
    assert sent[0]["role"] == "system"
    # The summary is the app's context, not the person's words: a system message, written with our chat prompt.
    assert sent[1]["role"] == "system"
    assert sent[1]["content"].startswith("Summary of the earlier part of this conversation")
    prompt = summary_call["body"]["messages"][-1]["content"]
    assert prompt.startswith("You keep the memory of a conversation") and "Decisions and conclusions" in prompt
    assert "SESSION INTENT" not in prompt and "ARTIFACTS" not in prompt  # not LangChain's coding-agent prompt
    assert "temperature" not in summary_call["body"]  # gpt-5-mini: the summariser's temperature 0 is never sent
    assert summary_call["body"]["reasoning_effort"] == "minimal"
    assert [m["content"] for m in sent[2:]][-1] == "question 4" and len(sent) == 5  # system, summary, 2 kept, new
    assert "question 1" not in json.dumps(sent[2:])
    # The page still shows everything, and says what the model remembers.
    assert len(at.chat_message) == 8
    assert any("Summary of earlier messages" in m.value for m in at.markdown)  # drawn after this run's answer
    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    assert [r["purpose"] for r in audit if r["event"] == "model_call"][-2:] == ["summary", "answer"]


def test_conversations_survive_a_restart_and_resume_with_their_choices(settings, signed_in, emulators):
    at = page()
    at.sidebar.selectbox(key="chain").set_value("concise").run()
    ask(at, "remember the blue door")
    conversation_id = at.session_state["conversation"].id
    fresh = page()  # a new browser session (or a restarted app): nothing in memory
    assert not fresh.chat_message
    fresh.sidebar.button(key=f"open-{conversation_id}").click().run()
    assert [m.name for m in fresh.chat_message] == ["user", "assistant"]
    assert "remember the blue door" in fresh.chat_message[0].markdown[0].value
    assert fresh.sidebar.selectbox(key="chain").value == "concise"
    ask(fresh, "and the red one")
    assert "remember the blue door" in json.dumps(emulators.aoai.requests[-1]["body"]["messages"])


def test_rename_and_delete_with_confirmation(settings, signed_in, emulators):
    at = page()
    ask(at, "a conversation to rename")
    cid = at.session_state["conversation"].id
    assert at.sidebar.button(key=f"open-{cid}").label == "a conversation to rename"  # listed in the same run
    at.sidebar.text_input(key=f"title-{cid}").set_value("Renamed").run()
    at.sidebar.button(key=f"rename-{cid}").click().run()
    assert at.sidebar.button(key=f"open-{cid}").label == "Renamed"
    at.sidebar.checkbox(key=f"confirm-{cid}").check().run()
    at.sidebar.button(key=f"delete-{cid}").click().run()
    assert not [b for b in at.sidebar.button if b.key == f"open-{cid}"] and not at.chat_message


def test_another_person_never_sees_or_opens_it(settings, signed_in, emulators, monkeypatch):
    at = page()
    ask(at, "Ada's private question")
    cid = at.session_state["conversation"].id
    emulators.entra.knobs = Knobs(default_user=OTHER_USER.oid)
    grace = sign_in(settings, emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: grace.session_id)
    other = page()
    assert not [b for b in other.sidebar.button if b.key == f"open-{cid}"]
    # Even with Ada's id handed to the page's open action directly, nothing opens.
    from memory.store import Owner
    from ui.conversations import conversation_store
    assert conversation_store(settings).load(Owner(OTHER_USER.oid, TENANT_ID), cid) is None
    assert conversation_store(settings).delete(Owner(OTHER_USER.oid, TENANT_ID), cid) is False


def test_the_sidebar_lists_the_recent_conversations_and_finds_older_ones(settings, signed_in, emulators):
    from localdev.stack import TEST_USER
    from memory.conversation import Conversation, Turn
    from memory.store import Owner
    from ui.conversations import RECENT, conversation_store

    store, owner = conversation_store(settings), Owner(TEST_USER.oid, TENANT_ID)
    for n in range(RECENT + 5):
        conversation = Conversation()
        title = "the oldest one about penguins" if n == 0 else f"conversation {n}"
        store.commit_turn(owner, conversation, conversation.add(Turn("user", title)),
                          conversation.add(Turn("assistant", "ok")))
    at = page()
    listed = [b for b in at.sidebar.button if b.key.startswith("open-")]
    assert len(listed) == RECENT and listed[0].label == f"conversation {RECENT + 4}"
    assert "penguins" not in " ".join(b.label for b in listed)
    at.sidebar.text_input(key="conversation_search").set_value("PENGUINS").run()
    (found,) = [b for b in at.sidebar.button if b.key.startswith("open-")]
    found.click().run()
    assert at.chat_message[0].markdown[0].value == "the oldest one about penguins"


def test_a_long_conversation_shows_its_newest_messages_and_earlier_ones_on_request(settings, signed_in, emulators):
    from localdev.stack import TEST_USER
    from memory.conversation import Conversation, Turn
    from memory.store import Owner
    from ui.conversations import conversation_store
    from ui.turn_view import SHOWN_MESSAGES

    conversation = Conversation()
    for n in range(60):
        conversation_store(settings).commit_turn(Owner(TEST_USER.oid, TENANT_ID), conversation,
                                                 conversation.add(Turn("user", f"question {n}")),
                                                 conversation.add(Turn("assistant", f"answer {n}")))
    at = page()
    at.sidebar.button(key=f"open-{conversation.id}").click().run()
    assert len(at.chat_message) == SHOWN_MESSAGES == 50
    assert at.chat_message[-1].markdown[0].value == "answer 59" and at.chat_message[0].markdown[0].value == "question 35"
    at.button(key=f"earlier-{conversation.id}").click().run()
    assert len(at.chat_message) == 100
    at.button(key=f"earlier-{conversation.id}").click().run()
    assert len(at.chat_message) == 120 and at.chat_message[0].markdown[0].value == "question 0"
    assert not [b for b in at.button if b.key == f"earlier-{conversation.id}"]
    ask(at, "one more")  # a new turn still lands at the end
    assert at.chat_message[-2].markdown[0].value == "one more"
