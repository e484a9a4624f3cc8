"""Response controls and the context-window guard, through the page and the emulator."""
from __future__ import annotations

import json
from pathlib import Path

from langchain_core.messages import HumanMessage

from chains.guard import check_context
from chains.registry import get_chain
from config import load_settings
from tests.integration.apptest import open_page

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Please explain, in plain words, how our staff should rotate the client secret of an app registration safely."


def audit_records(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]


def test_answer_limit_follows_the_deployment_and_the_choice_survives_switches(signed_in, settings):
    at = open_page()
    # Before any choice: a reasoning deployment's default leaves room for its reasoning; a classic one the app's.
    assert at.sidebar.selectbox(key="deployment").value == "gpt-5-mini"
    assert at.sidebar.slider(key="max_output_tokens").value == 8000
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()
    assert at.sidebar.slider(key="max_output_tokens").value == settings.app.default_max_output_tokens
    at.sidebar.slider(key="max_output_tokens").set_value(10_000).run()
    assert at.sidebar.slider(key="max_output_tokens").max == settings.catalog.get("gpt-4o").max_output_tokens
    at.sidebar.selectbox(key="deployment").set_value("gpt-35-turbo").run()
    slider = at.sidebar.slider(key="max_output_tokens")
    assert slider.max == settings.catalog.get("gpt-35-turbo").max_output_tokens == slider.value == 4096
    assert slider.min == 100
    # Back: the person's 10,000 again (the measured bug: it fell to 100, all reasoning on a reasoning model).
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()
    assert at.sidebar.slider(key="max_output_tokens").value == 10_000
    at.sidebar.selectbox(key="deployment").set_value("o4-mini").run()
    assert at.sidebar.slider(key="max_output_tokens").value == 10_000
    at.sidebar.selectbox(key="deployment").set_value("gpt-5-mini").run()
    assert at.sidebar.slider(key="max_output_tokens").value == 10_000


def test_effort_replaces_temperature_on_reasoning_deployments_and_reaches_the_request(signed_in, settings, emulators):
    at = open_page()
    assert not [s for s in at.sidebar.slider if s.key == "temperature"]
    effort = at.sidebar.select_slider(key="reasoning_effort")
    assert effort.options == ["Minimal", "Low", "Medium", "High"] and effort.value == "medium"
    assert any("is a reasoning model: it takes no temperature" in c.value for c in at.sidebar.caption)
    at.sidebar.select_slider(key="reasoning_effort").set_value("low")
    at.sidebar.slider(key="max_output_tokens").set_value(777).run()
    at.chat_input(key="draft").set_value("hello").run()
    body = emulators.aoai.requests[-1]["body"]
    assert body["max_completion_tokens"] == 777 and body["reasoning_effort"] == "low"
    assert "temperature" not in body and "max_tokens" not in body
    record = [r for r in audit_records(settings) if r["event"] == "model_call"][-1]
    assert record["reasoning_effort"] == "low" and record["temperature"] is None
    assert record["max_completion_tokens"] == 777 and record["reasoning_tokens"] == 64  # the emulator's "low"
    # o4-mini offers no "minimal"; the chosen "low" stays, a choice it lacks falls back to its default.
    at.sidebar.selectbox(key="deployment").set_value("o4-mini").run()
    assert at.sidebar.select_slider(key="reasoning_effort").options == ["Low", "Medium", "High"]
    assert at.sidebar.select_slider(key="reasoning_effort").value == "low"


def test_limit_and_temperature_reach_the_request_and_the_audit(signed_in, settings, emulators):
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()
    at.sidebar.slider(key="max_output_tokens").set_value(777)
    at.sidebar.slider(key="temperature").set_value(0.3).run()
    at.chat_input(key="draft").set_value("hello").run()
    body = emulators.aoai.requests[-1]["body"]
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 777 and body["temperature"] == 0.3
    record = [r for r in audit_records(settings) if r["event"] == "model_call"][-1]
    assert record["max_output_tokens"] == 777 and record["temperature"] == 0.3


def test_temperature_is_hidden_where_the_chain_fixes_it(signed_in):
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()
    at.sidebar.selectbox(key="chain").set_value("concise").run()
    assert not [s for s in at.sidebar.slider if s.key == "temperature"]
    assert any("fixed by the concise answerer chain" in c.value for c in at.sidebar.caption)


def _small_window_catalog(tmp_path, monkeypatch, window: int) -> None:
    text = (ROOT / "localdev" / "deployments.toml").read_text()
    start = text.index('name = "gpt-4o-mini"')
    section = text[start:].replace("context_window = 128000", f"context_window = {window}", 1)
    section = section.replace("max_output_tokens = 16384", "max_output_tokens = 200", 1)
    (tmp_path / "small.toml").write_text(text[:start] + section)
    monkeypatch.setenv("AZURE_OPENAI_CATALOG_FILE", str(tmp_path / "small.toml"))


def test_guard_blocks_exactly_at_the_boundary(signed_in, emulators, monkeypatch, tmp_path):
    deployment = load_settings().catalog.get("gpt-4o-mini")
    prompt = check_context(get_chain("assistant").system_prompt, [HumanMessage(QUESTION)], deployment, 0).prompt_tokens
    _small_window_catalog(tmp_path, monkeypatch, window=prompt + 150)

    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o-mini").run()
    at.sidebar.slider(key="max_output_tokens").set_value(151).run()
    before = len(emulators.aoai.requests)
    at.chat_input(key="draft").set_value(QUESTION).run()
    assert len(emulators.aoai.requests) == before  # over by one: nothing sent
    assert "1 token over" in at.error[0].value and not at.chat_message
    assert at.session_state["unsent_kept"].text == QUESTION  # kept (with any files) to send again
    at.button(key="fix_shorten").click().run()
    assert at.sidebar.slider(key="max_output_tokens").value == 150
    at.button(key="send_kept").click().run()  # fits exactly now: sent
    assert len(emulators.aoai.requests) == before + 1
    body = emulators.aoai.requests[-1]["body"]
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 150
    assert emulators.aoai.requests[-1]["prompt_tokens"] == prompt  # the estimate is the emulator's (Azure's) count


def test_azure_context_length_error_gets_the_same_message(signed_in, emulators):
    at = open_page()
    emulators.aoai.inject("context_length", count=1)
    at.chat_input(key="draft").set_value("anything").run()
    assert "does not fit in gpt-5-mini's context window" in at.chat_message[1].error[0].value
    assert at.session_state["kept_draft"] == "anything"


def test_resumed_conversation_restores_its_controls(signed_in, emulators):
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()
    at.sidebar.slider(key="max_output_tokens").set_value(555)
    at.sidebar.slider(key="temperature").set_value(1.1).run()
    at.chat_input(key="draft").set_value("remember my settings").run()
    cid = at.session_state["conversation"].id
    fresh = open_page()
    assert fresh.sidebar.slider(key="max_output_tokens").value != 555
    fresh.sidebar.button(key=f"open-{cid}").click().run()
    assert fresh.sidebar.slider(key="max_output_tokens").value == 555
    assert fresh.sidebar.slider(key="temperature").value == 1.1
