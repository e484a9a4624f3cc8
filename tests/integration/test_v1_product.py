"""The product on Azure's v1 API, through the page (AppTest) and the emulator over TLS: ChatOpenAI with the deployment
as model and the Entra token provider as key, a Responses API deployment whose reasoning summary streams as a
"Thinking" step (stored, shown again, audited as a count), a Responses-only model, a classic model on the v1 route,
on-behalf-of and the newer `https://ai.azure.com/.default` scope."""
from __future__ import annotations

import json

import pytest

from config import load_settings
from localdev import LOCAL_V1_CATALOG_FILE
from tests.integration.apptest import open_page


@pytest.fixture
def v1(stack_env, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "v1")
    monkeypatch.setenv("AZURE_OPENAI_CATALOG_FILE", str(LOCAL_V1_CATALOG_FILE))
    return load_settings()


@pytest.fixture
def v1_signed_in(v1, emulators, monkeypatch):
    from tests.integration.signin import sign_in

    trip = sign_in(v1, emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: trip.session_id)
    return trip


def audit(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]


def test_a_responses_deployment_streams_its_thinking_apart_and_stores_it(v1, v1_signed_in, emulators):
    at = open_page()
    assert at.sidebar.selectbox(key="deployment").value == "gpt-5-mini-thinking"
    assert at.sidebar.toggle(key="show_thinking").value is True
    at.chat_input(key="draft").set_value("What is our travel policy?").run()
    assert not at.exception, at.exception
    request = emulators.aoai.requests[-1]
    assert request["kind"] == "responses" and request["api"] == "v1" and request["deployment"] == "gpt-5-mini-thinking"
    assert request["body"]["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert request["body"]["model"] == "gpt-5-mini-thinking" and "temperature" not in request["body"]
    assert request["token_claims"]["aud"] == "https://cognitiveservices.azure.com"
    assert request["user_security_context"]["end_user_tenant_id"] == v1.entra.tenant_id
    answer = at.session_state["conversation"].turns[-1]
    assert answer.content.startswith("You said: What is our travel policy?")
    assert answer.status == "complete" and not answer.notice, (answer.status, answer.notice)
    thinking = answer.steps[0]
    assert thinking["kind"] == "thinking" and "Considering the question" in thinking["output"]
    assert "Considering" not in answer.content  # the summary is never part of the answer
    assert answer.usage.reasoning_tokens == 256
    # Never fed back: the model's memory holds the question and the answer's text only.
    assert all("Considering the question" not in str(m.content) for m in at.session_state["conversation"].memory)
    record = [r for r in audit(v1) if r["event"] == "model_call"][-1]
    assert record["reasoning_summary_chars"] == len(thinking["output"]) and "reasoning_summary" not in record
    assert record["reasoning_effort"] == "medium" and record["reasoning_tokens"] == 256
    # Reopened: the stored thinking is shown again, collapsed.
    cid = at.session_state["conversation"].id
    fresh = open_page()
    fresh.sidebar.button(key=f"open-{cid}").click().run()
    thinking_shown = [s for s in fresh.main.chat_message[1].children.values() if type(s).__name__ == "Status"]
    assert thinking_shown and thinking_shown[0].label.startswith(":material/psychology: Thinking · ")


def test_thinking_can_be_turned_off(v1, v1_signed_in, emulators):
    at = open_page()
    at.sidebar.toggle(key="show_thinking").set_value(False).run()
    at.chat_input(key="draft").set_value("No thinking please").run()
    request = emulators.aoai.requests[-1]
    assert request["body"]["reasoning"] == {"effort": "medium"}  # no summary asked for
    assert not at.session_state["conversation"].turns[-1].steps


def test_a_responses_only_model_and_a_classic_model_answer_on_v1(v1, v1_signed_in, emulators):
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-5-pro").run()
    at.chat_input(key="draft").set_value("A hard question").run()
    assert not at.exception, at.exception
    pro = emulators.aoai.requests[-1]
    assert pro["kind"] == "responses" and pro["deployment"] == "gpt-5-pro" and not pro["body"].get("stream")
    assert at.session_state["conversation"].turns[-1].content.startswith("You said: A hard question")
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o").run()
    at.chat_input(key="draft").set_value("A classic question").run()
    classic = emulators.aoai.requests[-1]
    assert classic["kind"] == "chat" and classic["api"] == "v1" and classic["body"]["model"] == "gpt-4o"
    assert classic["body"]["user_security_context"]["application_name"] == v1.app.name
    assert classic["usage"]["completion_tokens"] > 0
    assert at.session_state["conversation"].turns[-1].usage.prompt_tokens == classic["usage"]["prompt_tokens"]


def test_on_behalf_of_and_the_ai_azure_scope_on_v1(stack_env, emulators, monkeypatch):
    from tests.integration.signin import sign_in

    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "v1")
    monkeypatch.setenv("AZURE_OPENAI_CATALOG_FILE", str(LOCAL_V1_CATALOG_FILE))
    monkeypatch.setenv("AZURE_OPENAI_SCOPE", "https://ai.azure.com/.default")
    settings = load_settings()
    trip = sign_in(settings, emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: trip.session_id)
    at = open_page()
    at.chat_input(key="draft").set_value("As the app").run()
    app_call = emulators.aoai.requests[-1]
    assert app_call["token_claims"]["aud"] == "https://ai.azure.com" and app_call["token_claims"]["idtyp"] == "app"
    at.sidebar.toggle(key="obo").set_value(True).run()
    at.chat_input(key="draft").set_value("As myself").run()
    assert not at.exception, at.exception
    person_call = emulators.aoai.requests[-1]
    claims = person_call["token_claims"]
    assert claims["aud"] == "https://ai.azure.com" and claims["scp"] == "user_impersonation"
    assert claims["oid"] == person_call["user_security_context"]["end_user_id"]


def test_side_by_side_compares_the_classic_api_with_the_responses_api(stack_env, emulators, monkeypatch):
    """What moving to the new API changes, measured on one question: gpt-5-mini on the classic API (AzureChatOpenAI)
    against gpt-5-mini on the Responses API (v1), both answered, both costed."""
    from tests.integration.signin import sign_in

    monkeypatch.setenv("AZURE_OPENAI_CATALOG_FILE", str(LOCAL_V1_CATALOG_FILE))  # the app itself stays classic
    settings = load_settings()
    assert settings.azure_openai.style == "classic"
    trip = sign_in(settings, emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: trip.session_id)
    at = open_page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-5-mini").run()
    at.sidebar.toggle(key="side_by_side").set_value(True).run()
    at.sidebar.selectbox(key="chain_b").set_value("assistant")
    at.sidebar.selectbox(key="deployment_b").set_value("gpt-5-mini-thinking").run()
    before = len(emulators.aoai.requests)
    at.chat_input(key="draft").set_value("Which is better?").run()
    assert not at.exception, at.exception
    calls = {(r["kind"], r["api"], r["deployment"]) for r in emulators.aoai.requests[before:]}
    assert calls == {("chat", "classic", "gpt-5-mini"), ("responses", "v1", "gpt-5-mini-thinking")}
    records = [r for r in audit(settings) if r["event"] == "model_call"][-2:]
    assert {r["deployment"] for r in records} == {"gpt-5-mini", "gpt-5-mini-thinking"}
    assert all(float(r["cost_usd"]) > 0 and r["reasoning_tokens"] == 256 for r in records)


def test_the_agent_calls_its_tools_on_the_responses_api(v1, v1_signed_in, emulators):
    """Tools through the Responses API: the function_call item, the tool's result back as function_call_output, the
    final answer; the step on the page and the tool call audited, as on Chat Completions."""
    at = open_page()
    at.sidebar.selectbox(key="chain").set_value("agent").run()
    at.chat_input(key="draft").set_value("What is on my calendar tomorrow?").run()
    assert not at.exception, at.exception
    calls = [r for r in emulators.aoai.requests if r["kind"] == "responses"]
    assert calls[0]["body"]["tools"] and calls[0]["output"] and any(
        item.get("type") == "function_call" for item in calls[0]["output"])
    assert any(item.get("type") == "function_call_output" for item in calls[-1]["body"]["input"])
    answer = at.session_state["conversation"].turns[-1]
    assert "Design review" in answer.content and any(s["name"] == "my_calendar" for s in answer.steps)
    tool = [r for r in audit(v1) if r["event"] == "tool_call"][-1]
    assert tool["tool"] == "my_calendar" and tool["outcome"] == "ok"


def test_embeddings_go_through_the_v1_api(v1, emulators):
    from auth.credentials import app_token_provider
    from documents.embeddings import build_client

    client = build_client(v1, app_token_provider(v1.entra, v1.azure_openai.scope))
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["travel policy"], dimensions=8)
    assert len(vectors.data[0].embedding) == 8
    request = emulators.aoai.requests[-1]
    assert request["kind"] == "embeddings" and request["api"] == "v1" and request["deployment"] == "text-embedding-3-small"
