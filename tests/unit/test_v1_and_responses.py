"""The v1 endpoint and the Responses API on the product side: settings, the model factory's choice of class and
parameters, what a Responses payload may carry, the reasoning summary read from LangChain's blocks."""
from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage

from chains.model_factory import AzureChatOpenAIWithFilterResults, ChatOpenAIOnAzureV1, build_chat_model
from chains.request_rules import conform
from chains.turn import reasoning_summary
from config import ConfigError, load_settings
from config.catalog import Deployment
from tests.unit.test_turn_engine import settings  # noqa: F401 - the fixture

MINI = dict(name="mini", model="gpt-5-mini", context_window=400000, max_output_tokens=128000,
            input_price_per_1m="0.25", output_price_per_1m="2")


def test_the_v1_base_url_in_the_endpoint_means_the_v1_api(settings, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/openai/v1/")
    azure = load_settings().azure_openai
    assert (azure.endpoint, azure.style, azure.v1_base_url) == ("https://res.openai.azure.com", "v1",
                                                                 "https://res.openai.azure.com/openai/v1/")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2024-10-21")
    with pytest.raises(ConfigError, match="set AZURE_OPENAI_API_VERSION=v1"):
        load_settings()
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "v1")
    assert load_settings().azure_openai.style == "v1"
    monkeypatch.setenv("AZURE_OPENAI_SCOPE", "https://example.com/.default")
    with pytest.raises(ConfigError, match="AZURE_OPENAI_SCOPE"):
        load_settings()


def test_the_factory_builds_chatopenai_on_v1_and_azurechatopenai_on_classic(settings, monkeypatch):
    mini = Deployment(**MINI)
    classic = build_chat_model(settings, mini, lambda: "token", max_output_tokens=300)
    assert isinstance(classic, AzureChatOpenAIWithFilterResults)
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "v1")
    v1 = load_settings()
    model = build_chat_model(v1, mini, lambda: "token", max_output_tokens=300, temperature=0.2)
    assert isinstance(model, ChatOpenAIOnAzureV1) and model.model_name == "mini"  # the deployment is the model
    assert str(model.openai_api_base) == "https://contoso.openai.azure.com/openai/v1/"
    payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["model"] == "mini" and "temperature" not in payload and payload["max_completion_tokens"] == 300
    responses = build_chat_model(v1, Deployment(**MINI, api="responses"), lambda: "token", max_output_tokens=300,
                                 reasoning_effort="low").bind(temperature=0.3)
    payload = responses.bound._get_request_payload([HumanMessage("hi")], **responses.kwargs)
    assert "input" in payload and "messages" not in payload
    assert payload["reasoning"] == {"effort": "low", "summary": "auto"} and payload["max_output_tokens"] == 300
    assert "temperature" not in payload and "reasoning_effort" not in payload
    quiet = build_chat_model(v1, Deployment(**MINI, api="responses"), lambda: "token", thinking=False)
    assert quiet._get_request_payload([HumanMessage("hi")])["reasoning"] == {"effort": "medium"}


def test_a_responses_payload_carries_only_what_the_deployment_takes():
    mini, gpt4o = Deployment(**MINI), Deployment(**{**MINI, "model": "gpt-4o", "max_output_tokens": 16384,
                                                      "context_window": 128000})
    sent = conform({"input": [], "temperature": 0.2, "max_output_tokens": 10**6, "reasoning_effort": "turbo",
                    "reasoning": {"summary": "auto"}}, mini)
    assert sent == {"input": [], "max_output_tokens": 128000, "reasoning": {"summary": "auto", "effort": "medium"}}
    assert conform({"input": [], "temperature": 0.2, "reasoning": {"effort": "low", "summary": "auto"}}, gpt4o) == {
        "input": [], "temperature": 0.2}


def test_the_reasoning_summary_is_read_from_langchains_blocks():
    responses = AIMessageChunk(content=[{"type": "reasoning", "index": 0, "summary": [
        {"type": "summary_text", "index": 0, "text": "Weighing the options"}]}, {"type": "text", "text": "Hi"}])
    standard = AIMessageChunk(content=[{"type": "reasoning", "reasoning": " carefully."}])
    assert reasoning_summary(responses) == "Weighing the options" and responses.text == "Hi"
    assert reasoning_summary(standard) == " carefully." and reasoning_summary(AIMessageChunk(content="plain")) == ""


def test_a_responses_deployment_is_called_on_v1_even_from_a_classic_app(settings):
    pro = Deployment(**{**MINI, "name": "pro", "model": "gpt-5-pro"})
    assert pro.api == "responses" and pro.responses_only and not pro.streaming
    assert settings.azure_openai.style == "classic"
    model = build_chat_model(settings, pro, lambda: "token")
    assert isinstance(model, ChatOpenAIOnAzureV1) and model.use_responses_api
    assert str(model.openai_api_base) == "https://contoso.openai.azure.com/openai/v1/"
    with pytest.raises(ValueError, match='set api = "responses"'):
        Deployment(**{**MINI, "name": "pro", "model": "gpt-5-pro", "api": "chat_completions"})


def test_the_thinking_is_quoted_in_the_markdown_export_and_kept_in_json():
    from memory.conversation import Conversation, Turn
    from memory.export import conversation_json, conversation_markdown

    conversation = Conversation()
    conversation.add(Turn(role="user", content="Why?"))
    conversation.add(Turn(role="assistant", content="Because.", steps=[
        {"kind": "thinking", "name": "Thinking", "input": None, "output": "**Considering**\n\nThe person asks why.",
         "duration_ms": 1200}]))
    markdown = conversation_markdown(conversation)
    assert "> **Thinking** (the model's summary of its reasoning)" in markdown
    assert "> The person asks why." in markdown and markdown.index("> The person") < markdown.index("Because.")
    exported = conversation_json(conversation, None)
    assert exported["turns"][1]["steps"][0]["output"] == "**Considering**\n\nThe person asks why."
