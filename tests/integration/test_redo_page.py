"""Regenerate, edit and resend, and the answer versions through the page (AppTest) and the Azure OpenAI emulator: what
the model is sent, what the page shows (1 / 2, 2 / 2), what is stored and audited."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from tests.integration.apptest import open_page as page


def ask(at: AppTest, text: str) -> None:
    at.chat_input(key="draft").set_value(text).run()
    assert not at.exception, at.exception


def click(at: AppTest, key: str) -> None:
    at.button(key=key).click().run()
    assert not at.exception, at.exception


def audit_of(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]


def test_regenerate_with_another_chain_then_move_between_versions(settings, signed_in, emulators):
    at = page()
    ask(at, "first question")
    ask(at, "What is the capital of France?")
    conversation = at.session_state["conversation"]
    answer = conversation.turns[-1]
    first_text = answer.content
    # Only the last answer has the controls.
    keys = {b.key for b in at.button}
    assert f"regenerate-{answer.id}" in keys and f"regenerate-{conversation.turns[1].id}" not in keys
    at.sidebar.selectbox(key="chain").set_value("concise").run()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o-mini").run()
    before = len(emulators.aoai.requests)
    click(at, f"regenerate-{answer.id}")
    (call,) = emulators.aoai.requests[before:]
    sent = call["body"]["messages"]
    assert sent[-1]["content"] == "What is the capital of France?" and first_text not in json.dumps(sent)
    assert "first question" in json.dumps(sent)  # what came before is remembered as it was
    conversation = at.session_state["conversation"]
    regenerated = conversation.turns[-1]
    assert len(conversation.turns) == 4 and regenerated.id == answer.id and regenerated.chain == "concise@1"
    assert regenerated.deployment == "gpt-4o-mini" and regenerated.content != first_text
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2  # the exchange drawn once
    assert any(m.value.startswith("<span aria-label='Version 2 of 2'>") for m in at.markdown)
    # Back to version 1: the page, the memory and the next call follow it.
    click(at, f"version-back-{answer.id}")
    conversation = at.session_state["conversation"]
    assert conversation.turns[-1].content == first_text and conversation.turns[-1].version_in_use == 1
    assert any(m.value.startswith("<span aria-label='Version 1 of 2'>") for m in at.markdown)
    assert at.button(key=f"version-back-{answer.id}").disabled
    ask(at, "and of Italy?")
    sent = emulators.aoai.requests[-1]["body"]["messages"]
    assert first_text in json.dumps(sent) and regenerated.content not in json.dumps(sent)
    # Both answers audited and costed; the totals count the replaced one too.
    audit = audit_of(settings)
    calls = [r for r in audit if r["event"] == "model_call" and r["conversation_id"] == conversation.id]
    assert len(calls) == 4 and [r["chain"] for r in calls][2] == "concise@1"
    assert [r["kind"] for r in audit if r["event"] == "exchange_redone"] == ["regenerate"]
    assert [r["version"] for r in audit if r["event"] == "answer_version_chosen"] == [1]
    assert conversation.totals().model_calls == 4


def test_edit_and_resend_the_last_question(settings, signed_in, emulators):
    at = page()
    ask(at, "What is the capitol of Frnace?")
    answer = at.session_state["conversation"].turns[-1]
    click(at, f"edit-{answer.id}")
    box = at.text_area(key=f"edit-text-{answer.id}")
    assert box.value == "What is the capitol of Frnace?" and len(at.chat_message) == 2
    box.set_value("What is the capital of France?")
    at.button(key="FormSubmitter:edit-" + answer.id + "-Send edited message").click().run()
    assert not at.exception, at.exception
    assert emulators.aoai.requests[-1]["body"]["messages"][-1]["content"] == "What is the capital of France?"
    conversation = at.session_state["conversation"]
    assert [t.content for t in conversation.turns if t.role == "user"] == ["What is the capital of France?"]
    assert [v.question for v in conversation.turns[-1].versions] == ["What is the capitol of Frnace?",
                                                                     "What is the capital of France?"]
    assert at.chat_message[0].markdown[0].value == "What is the capital of France?"
    # Cancel leaves everything as it was.
    click(at, f"edit-{answer.id}")
    at.button(key="FormSubmitter:edit-" + answer.id + "-Cancel").click().run()
    assert not [t for t in at.text_area if t.key == f"edit-text-{answer.id}"]
    assert len(emulators.aoai.requests) == 2


def test_an_edited_question_that_cannot_be_sent_is_handed_back_in_its_box(settings, signed_in, emulators):
    at = page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()  # a 128k window: 200,000 words are beyond it
    ask(at, "short question")
    answer = at.session_state["conversation"].turns[-1]
    click(at, f"edit-{answer.id}")
    at.text_area(key=f"edit-text-{answer.id}").set_value("word " * 200_000)  # far beyond the context window
    at.button(key="FormSubmitter:edit-" + answer.id + "-Send edited message").click().run()
    assert not at.exception, at.exception
    assert any("does not fit" in e.value or "too long" in e.value for e in at.error), [e.value for e in at.error]
    assert at.text_area(key=f"edit-text-{answer.id}").value.startswith("word word")
    assert at.session_state["conversation"].turns[0].content == "short question"
    assert len(emulators.aoai.requests) == 1  # nothing was sent
