"""The chat page under Streamlit's AppTest, answering through the real emulators over TLS."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "ui" / "page.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(message) -> str:
    return "\n".join([m.value for m in message.markdown] + [c.value for c in message.caption] + [e.value for e in message.error])


def test_page_offers_the_catalog_and_says_which_identity_it_uses(stack_env, settings):
    at = _page()
    assert at.sidebar.selectbox(key="deployment").options == [d.display_name for d in settings.catalog.deployments]
    assert "app's own identity" in at.sidebar.info[0].value


def test_a_message_gets_a_streamed_answer_with_usage_and_cost(stack_env, emulators):
    at = _page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o-mini")
    at.chat_input(key="draft").set_value("hello there").run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    answer = _texts(at.chat_message[1])
    assert "hello there" in answer
    assert "gpt-4o-mini ·" in answer and "completion tokens" in answer and "$" in answer
    assert emulators.aoai.requests[-1]["deployment"] == "gpt-4o-mini"


def test_failure_shows_a_clear_message_and_keeps_the_conversation(stack_env, emulators, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_MAX_RETRIES", "0")
    at = _page()
    at.chat_input(key="draft").set_value("first question").run()
    emulators.aoai.inject("429", count=1, retry_after=7)
    at.chat_input(key="draft").set_value("second question").run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    assert "first question" in _texts(at.chat_message[1])
    assert "wait 7 seconds" in _texts(at.chat_message[3])
    # The next message works, and the model sees the earlier exchange but not the error notice.
    at.chat_input(key="draft").set_value("third question").run()
    assert "third question" in _texts(at.chat_message[5])
    sent = emulators.aoai.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "user"]
    assert all("wait 7 seconds" not in str(m["content"]) for m in sent)


@pytest.mark.parametrize("fault", ["prompt_filter", "500"])
def test_other_failures_are_explained(stack_env, emulators, monkeypatch, fault):
    monkeypatch.setenv("AZURE_OPENAI_MAX_RETRIES", "0")
    at = _page()
    emulators.aoai.inject(fault, count=1)
    at.chat_input(key="draft").set_value("anything").run()
    expected = {"prompt_filter": "content filter", "500": "internal error"}[fault]
    assert expected in _texts(at.chat_message[1])


def test_bad_settings_show_one_clear_message_on_the_page(stack_env, monkeypatch):
    monkeypatch.setenv("ENTRA_TENANT_ID", "contoso")
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.run()
    assert not at.exception
    assert "ENTRA_TENANT_ID is invalid" in at.error[0].value
