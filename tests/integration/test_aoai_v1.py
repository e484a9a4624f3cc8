"""The Azure OpenAI emulator's versionless v1 API over real HTTPS with real tokens: Chat Completions and embeddings on
`/openai/v1/` through the plain `openai.OpenAI` client (the deployment in `model`), tokens for either audience on v1 and
only Cognitive Services on the classic routes, and the Responses API (`/openai/v1/responses`): the response object,
its typed SSE events validated against the openai SDK's own models, reasoning summaries, reasoning tokens in usage,
`max_output_tokens` incomplete, a function call round trip, images billed like chat, the family rules' 400s,
Responses-only models refusing chat, faults; and LangChain's ChatOpenAI on the Responses API reading it all."""
from __future__ import annotations

import base64
import io
import json
import ssl
import time
import typing

import httpx
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from PIL import Image

from config.catalog import Catalog, Deployment
from localdev.aoai import AI_AUDIENCE, AUDIENCE
from localdev.engines import ScriptedEngine
from localdev.prompt_tokens import count_prompt_tokens, encoding_for_model
from tests.integration.conftest_aoai import API_VERSION, aoai, aoai_stack, raw_post  # noqa: F401 - pytest fixtures, used by name

HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello emulator"}]
UNAUTHORIZED = {"error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
                          "(https://cognitiveservices.azure.com), or have expired."}}
OPERATION_UNSUPPORTED = {"error": {"code": "OperationNotSupported", "message": "The requested operation is unsupported."}}
CALCULATOR = {"type": "function", "name": "calculator", "description": "Evaluate an arithmetic expression.",
              "parameters": {"type": "object", "required": ["expression"],
                             "properties": {"expression": {"type": "string"}}}}
SUMMARY = ("**Considering the question**\n\nThe person asks about “Hello emulator”. I will answer briefly and directly, "
           "repeating what they said, as the scripted emulator does.")
ANSWER = "You said: Hello emulator. This is the scripted emulator answering on deployment {}."
# Every Responses stream event type the openai SDK knows, by its `type` literal: each raw event is validated against
# its own model (the SDK itself builds them without validation, so this is where a wrong field name shows).
EVENT_MODELS = {typing.get_args(model.model_fields["type"].annotation)[0]: model
                for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])}


# ---- helpers ----
def v1(aoai, token: str | None = None) -> openai.OpenAI:
    """The plain openai client on the v1 endpoint, with a token provider as `api_key` (as Microsoft's docs show)."""
    token = token or aoai.signer.token()
    client = openai.OpenAI(base_url=f"{aoai.url}/openai/v1/", api_key=lambda: token, max_retries=0)
    aoai.clients.append(client)
    return client


def v1_post(aoai, route: str, body: dict, *, token: str | None = "default", query: str = "") -> httpx.Response:
    headers = {}
    if token == "default":
        token = aoai.signer.token()
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        return http.post(f"{aoai.url}/openai/v1/{route}{query}", json=body, headers=headers)


def respond(aoai, body: dict) -> httpx.Response:
    return v1_post(aoai, "responses", body)


def error_of(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def raw_events(aoai, body: dict) -> list[tuple[str, dict]]:
    """The raw SSE of a streamed response as (event line, parsed data) pairs; each data validated by the SDK's model."""
    pairs, event = [], None
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        with http.stream("POST", f"{aoai.url}/openai/v1/responses", json={**body, "stream": True},
                         headers={"authorization": f"Bearer {aoai.signer.token()}"}) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    data = json.loads(line[len("data: "):])
                    EVENT_MODELS[data["type"]].model_validate(data)  # strict: every required field, right types
                    pairs.append((event, data))
                    event = None
    return pairs


def collapsed(types: list[str]) -> list[str]:
    """Event types with runs of the same delta type shown once."""
    return [t for i, t in enumerate(types) if i == 0 or t != types[i - 1] or not t.endswith(".delta")]


def tokens(text: str, model: str = "gpt-5-mini") -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def png_data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def row(name: str, model: str, **fields) -> Deployment:
    return Deployment(name=name, model=model, context_window=400000, max_output_tokens=128000, input_price_per_1m="1",
                      output_price_per_1m="1", **fields)


@pytest.fixture
def responses_only_rows(aoai, monkeypatch):
    """The local catalog plus deployments of Responses-only models (the local tenant has none)."""
    catalog = aoai.emulator.catalog
    rows = (row("gpt-5-pro", "gpt-5-pro"), row("gpt-5.3-codex", "gpt-5.3-codex"))
    monkeypatch.setattr(aoai.emulator, "catalog", Catalog(deployments=(*catalog.deployments, *rows),
                                                          default=catalog.default, embeddings=catalog.embeddings))
    return aoai


# ---- 1. Chat Completions and embeddings on /openai/v1 ----
def test_v1_chat_with_the_plain_openai_client_answers_as_the_classic_route(aoai):
    answer = v1(aoai).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert answer.choices[0].message.content == ANSWER.format("gpt-4o")
    assert answer.model == "gpt-4o-2024-11-20" and answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens == count_prompt_tokens(HELLO, "gpt-4o")
    classic = aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO)
    assert classic.choices[0].message.content == answer.choices[0].message.content
    assert classic.usage.model_dump() == answer.usage.model_dump()
    first, second = aoai.emulator.requests
    assert (first["kind"], first["api"], first["api_version"], first["deployment"]) == ("chat", "v1", None, "gpt-4o")
    assert first["body"]["model"] == "gpt-4o" and first["token_claims"]["oid"]
    assert (second["api"], second["api_version"]) == ("classic", API_VERSION)


def test_v1_chat_streams_with_reasoning_usage(aoai):
    chunks = list(v1(aoai).chat.completions.create(model="gpt-5-mini", messages=HELLO, stream=True,
                                                     reasoning_effort="low", max_completion_tokens=2000,
                                                     stream_options={"include_usage": True}))
    assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER.format("gpt-5-mini") and chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage.completion_tokens_details.reasoning_tokens == 64
    assert usage.completion_tokens == 64 + tokens(text)
    assert aoai.emulator.requests[-1]["reasoning_effort"] == "low"


def test_v1_chat_applies_the_family_rules_and_tools(aoai):
    refused = error_of(v1_post(aoai, "chat/completions", {"model": "gpt-5-mini", "messages": HELLO, "max_tokens": 50}))
    assert refused == {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                  "'max_completion_tokens' instead.", "type": "invalid_request_error",
                       "param": "max_tokens", "code": "unsupported_parameter"}
    calculator = {"type": "function", "function": {k: v for k, v in CALCULATOR.items() if k != "type"}}
    answer = v1(aoai).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "What is 12*(3+4)?"}],
                                              tools=[calculator])
    [call] = answer.choices[0].message.tool_calls
    assert answer.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {
        "expression": "12*(3+4)"}
    assert aoai.emulator.requests[-1]["tool_calls"][0]["id"] == call.id


def test_v1_faults_behave_as_on_the_classic_route(aoai):
    aoai.emulator.inject("429", retry_after=3)
    with pytest.raises(openai.RateLimitError) as caught:
        v1(aoai).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "3"
    assert "under Azure OpenAI API version v1 have exceeded" in caught.value.message
    aoai.emulator.inject("500")
    with pytest.raises(openai.InternalServerError):
        v1(aoai).chat.completions.create(model="gpt-4o", messages=HELLO)
    cut = [{"role": "user", "content": "Hello [[fault:cut after_chunks=2]]"}]
    with pytest.raises(openai.APIConnectionError):
        list(v1(aoai).chat.completions.create(model="gpt-4o", messages=cut, stream=True))
    assert [r["fault"] for r in aoai.emulator.requests] == ["429", "500", "cut"]
    assert v1(aoai).chat.completions.create(model="gpt-4o", messages=HELLO).choices


def test_v1_model_is_the_deployment_name(aoai):
    assert error_of(v1_post(aoai, "chat/completions", {"messages": HELLO})) == {
        "message": "Missing required parameter: 'model'.", "type": "invalid_request_error", "param": "model",
        "code": "missing_required_parameter"}
    missing = v1_post(aoai, "chat/completions", {"model": "not-deployed", "messages": HELLO})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"
    with pytest.raises(openai.NotFoundError):
        v1(aoai).responses.create(model="not-deployed", input="Hello")
    chat_on_embeddings = error_of(v1_post(aoai, "chat/completions", {"model": "text-embedding-3-small",
                                                                      "messages": HELLO}))
    assert chat_on_embeddings["code"] == "OperationNotSupported"
    assert chat_on_embeddings["message"].startswith("The chatCompletion operation does not work with the specified "
                                                    "model, text-embedding-3-small.")
    assert error_of(v1_post(aoai, "embeddings", {"model": "gpt-4o", "input": "x"}))["code"] == "OperationNotSupported"
    assert error_of(v1_post(aoai, "responses", {"model": "text-embedding-3-small", "input": "x"}))[
        "code"] == "OperationNotSupported"
    assert not aoai.emulator.requests, "requests refused at admission are not recorded"


def test_v1_takes_no_dated_api_version(aoai):
    body = {"model": "gpt-4o", "messages": HELLO}
    for query in ("", "?api-version=v1", "?api-version=preview"):
        assert v1_post(aoai, "chat/completions", body, query=query).status_code == 200, query
    dated = v1_post(aoai, "chat/completions", body, query=f"?api-version={API_VERSION}")
    assert dated.status_code == 400
    assert dated.json() == {"error": {"code": "BadRequest", "message": "API version not supported"}}
    assert v1_post(aoai, "responses", {"model": "gpt-4o", "input": "Hi"}, query="?api-version=2025-04-01-preview"
                   ).json()["error"]["message"] == "API version not supported"


def test_v1_embeddings(aoai):
    result = v1(aoai).embeddings.create(model="text-embedding-3-small", input=["first text", "second text"],
                                        dimensions=512)
    assert [len(item.embedding) for item in result.data] == [512, 512]
    assert result.usage.prompt_tokens == 4
    recorded = aoai.emulator.requests[-1]
    assert (recorded["kind"], recorded["api"], recorded["inputs"]) == ("embeddings", "v1", 2)
    classic = raw_post(aoai, {"input": "first text", "dimensions": 512}, route="embeddings",
                       deployment="text-embedding-3-small")
    assert classic.json()["data"][0]["embedding"] == result.data[0].embedding
    assert aoai.emulator.requests[-1]["api"] == "classic"


# ---- 2. tokens: two audiences on v1, one on the classic routes ----
def test_ai_azure_tokens_are_accepted_on_v1_and_refused_on_the_classic_routes(aoai):
    ai_token = aoai.signer.token(aud=AI_AUDIENCE)
    assert v1(aoai, ai_token).chat.completions.create(model="gpt-4o", messages=HELLO).choices
    assert v1(aoai, ai_token).responses.create(model="gpt-4o", input="Hello").status == "completed"
    assert v1(aoai, aoai.signer.token(aud=AUDIENCE)).responses.create(model="gpt-4o", input="Hello").output_text
    classic = raw_post(aoai, {"messages": HELLO}, route="chat/completions", deployment="gpt-4o", token=ai_token)
    assert classic.status_code == 401 and classic.json() == UNAUTHORIZED
    for token in (aoai.signer.token(aud="https://graph.microsoft.com"), aoai.signer.token(aud=AI_AUDIENCE, exp=1)):
        refused = v1_post(aoai, "responses", {"model": "gpt-4o", "input": "Hi"}, token=token)
        assert refused.status_code == 401 and refused.json() == UNAUTHORIZED
    assert v1_post(aoai, "responses", {"model": "gpt-4o", "input": "Hi"}, token=None).status_code == 401
    assert [r["token_claims"]["oid"] for r in aoai.emulator.requests] == [aoai.signer.claims()["oid"]] * 3


def test_the_entra_emulator_issues_ai_azure_tokens_that_only_v1_accepts(emulators, monkeypatch):
    from azure.identity import ClientSecretCredential, OnBehalfOfCredential, get_bearer_token_provider

    from localdev.stack import CLIENT_ID, TENANT_ID, TEST_USER

    for name, value in emulators.tls.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(emulators.aoai.engine, "time_to_first_token", 0.0)
    monkeypatch.setattr(emulators.aoai.engine, "tokens_per_second", None)
    authority = {"authority": emulators.entra_server.url, "disable_instance_discovery": True}
    app = ClientSecretCredential(TENANT_ID, CLIENT_ID, emulators.client_secret, **authority)
    provider = get_bearer_token_provider(app, "https://ai.azure.com/.default")
    client = openai.OpenAI(base_url=f"{emulators.aoai_server.url}/openai/v1/", api_key=provider, max_retries=0)
    try:
        answer = client.responses.create(model="gpt-4o", input="Hello with the newer scope")
        assert answer.output_text.startswith("You said: Hello with the newer scope.")
        claims = emulators.aoai.requests[-1]["token_claims"]
        assert claims["idtyp"] == "app" and claims["appid"] == CLIENT_ID
        classic = httpx.post(f"{emulators.aoai_server.url}/openai/deployments/gpt-4o/chat/completions"
                             f"?api-version={API_VERSION}", json={"messages": HELLO},
                             headers={"authorization": f"Bearer {provider()}"},
                             verify=ssl.create_default_context(cafile=str(emulators.tls.ca_file)))
        assert classic.status_code == 401
        # On-behalf-of a signed-in person, for the newer scope too: a delegated token with the person's oid.
        assertion = emulators.entra.mint_token(user=TEST_USER.oid, resource=f"api://{CLIENT_ID}")
        person = OnBehalfOfCredential(TENANT_ID, CLIENT_ID, client_secret=emulators.client_secret,
                                      user_assertion=assertion, **authority)
        delegated = client.with_options(api_key=get_bearer_token_provider(person, "https://ai.azure.com/.default"))
        assert delegated.chat.completions.create(model="gpt-4o", messages=HELLO).choices
        claims = emulators.aoai.requests[-1]["token_claims"]
        assert claims["oid"] == TEST_USER.oid and claims["scp"] == "user_impersonation"
    finally:
        client.close()


# ---- 3. the Responses API ----
def test_a_non_streamed_response_has_the_reasoning_summary_the_answer_and_usage(aoai):
    raw = respond(aoai, {"model": "gpt-5-mini", "input": "Hello emulator", "instructions": "You are terse.",
                         "reasoning": {"effort": "low", "summary": "auto"}, "max_output_tokens": 2000})
    assert raw.status_code == 200 and raw.headers["x-ms-deployment-name"] == "gpt-5-mini"
    body = raw.json()
    Response.model_validate(body)  # every field the SDK requires, with the right types
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert body["model"] == "gpt-5-mini-2025-08-07" and body["incomplete_details"] is None
    assert body["reasoning"] == {"effort": "low", "summary": "auto"} and body["instructions"] == "You are terse."
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": SUMMARY}]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    [part] = message["content"]
    assert part["type"] == "output_text" and part["annotations"] == [] and part["text"] == ANSWER.format("gpt-5-mini")
    usage = body["usage"]
    assert usage["input_tokens"] == count_prompt_tokens(HELLO, "gpt-5-mini")
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"] == {"reasoning_tokens": 64}
    assert usage["output_tokens"] == 64 + tokens(part["text"])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    recorded = aoai.emulator.requests[-1]
    assert (recorded["kind"], recorded["api"], recorded["reasoning_effort"], recorded["reasoning_tokens"]) == (
        "responses", "v1", "low", 64)
    assert recorded["summary"] == [SUMMARY] and recorded["usage"] == usage and recorded["messages"] == HELLO


def test_the_sdk_reads_the_response_and_summaries_do_not_add_to_the_bill(aoai):
    client = v1(aoai)
    plain = client.responses.create(model="gpt-5-mini", input="Hello emulator", reasoning={"effort": "medium"})
    summarised = client.responses.create(model="gpt-5-mini", input="Hello emulator",
                                         reasoning={"effort": "medium", "summary": "detailed"})
    assert isinstance(summarised.output[0], ResponseReasoningItem) and isinstance(summarised.output[1],
                                                                                  ResponseOutputMessage)
    assert [s.text.split("\n")[0] for s in summarised.output[0].summary] == ["**Considering the question**",
                                                                             "**Planning the answer**"]
    assert plain.output[0].summary == [] and plain.output_text == summarised.output_text == ANSWER.format("gpt-5-mini")
    assert plain.usage.model_dump() == summarised.usage.model_dump()
    assert summarised.usage.output_tokens_details.reasoning_tokens == 256


def test_no_reasoning_item_without_reasoning_and_no_summary_at_minimal(aoai):
    client = v1(aoai)
    none = client.responses.create(model="gpt-5.1", input="Hello", reasoning={"summary": "auto"})  # default: none
    assert [item.type for item in none.output] == ["message"] and none.usage.output_tokens_details.reasoning_tokens == 0
    minimal = client.responses.create(model="gpt-5-mini", input="Hello", reasoning={"effort": "minimal",
                                                                                    "summary": "auto"})
    assert minimal.output[0].type == "reasoning" and minimal.output[0].summary == []
    assert minimal.usage.output_tokens_details.reasoning_tokens == 16
    classic = client.responses.create(model="gpt-4o", input="Hello", temperature=0.2)
    assert [item.type for item in classic.output] == ["message"] and classic.reasoning.effort is None
    assert classic.usage.output_tokens_details.reasoning_tokens == 0


def test_streamed_events_in_openais_order_and_shapes(aoai):
    pairs = raw_events(aoai, {"model": "gpt-5-mini", "input": HELLO[1:], "instructions": "You are terse.",
                              "reasoning": {"effort": "low", "summary": "auto"}})
    events = [data for _, data in pairs]
    assert all(line == data["type"] for line, data in pairs), "each data line follows its event line"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert collapsed([e["type"] for e in events]) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    reasoning_id = events[2]["item"]["id"]
    summary_deltas = [e for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert len(summary_deltas) >= 3 and "".join(e["delta"] for e in summary_deltas) == SUMMARY
    assert all((e["item_id"], e["output_index"], e["summary_index"]) == (reasoning_id, 0, 0) for e in summary_deltas)
    [message_id] = [e["item"]["id"] for e in events
                    if e["type"] == "response.output_item.added" and e["item"]["type"] == "message"]
    text_deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert message_id.startswith("msg_") and all(e["item_id"] == message_id for e in text_deltas)
    assert all((e["output_index"], e["content_index"]) == (1, 0) for e in text_deltas)
    text = "".join(e["delta"] for e in text_deltas)
    assert text == ANSWER.format("gpt-5-mini") and len(text_deltas) == tokens(text), "one delta per token"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["id"] == created["id"]
    assert final["output"][0]["summary"][0]["text"] == SUMMARY and final["output"][1]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] == 64 + len(text_deltas)
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 64


def test_the_sdk_streams_typed_events(aoai):
    events = list(v1(aoai).responses.create(model="o4-mini", input="Hello emulator", stream=True,
                                            reasoning={"effort": "high", "summary": "concise"}))
    summary = "".join(e.delta for e in events if isinstance(e, ResponseReasoningSummaryTextDeltaEvent))
    text = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
    assert summary == SUMMARY and text == ANSWER.format("o4-mini")
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent) and final.response.output_text == text
    assert final.response.usage.output_tokens_details.reasoning_tokens == 1024
    assert final.response.usage.output_tokens == 1024 + tokens(text, "o4-mini")


def test_streaming_is_paced_like_the_chat_stream(aoai):
    aoai.emulator.engine.time_to_first_token, aoai.emulator.engine.tokens_per_second = 0.3, 50.0
    with v1(aoai).responses.create(model="gpt-4o", input="Hello emulator", stream=True) as stream:
        start, arrivals = time.monotonic(), []
        for event in stream:
            if event.type == "response.output_text.delta":
                arrivals.append(time.monotonic() - start)
    assert arrivals[0] >= 0.25 and arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / 50.0 * 0.8


class WatchedEngine(ScriptedEngine):
    """The scripted engine, noting how many pieces it yielded and whether its generator was closed."""

    def generate(self, request):
        self.yielded, self.closed = 0, False
        try:
            for piece in super().generate(request):
                self.yielded += 1
                yield piece
        finally:
            self.closed = True


def test_a_client_leaving_a_stream_stops_the_engine(aoai):
    engine = aoai.emulator.engine = WatchedEngine(tokens_per_second=20.0)
    with v1(aoai).responses.create(model="gpt-4o", input="Hello emulator", stream=True) as stream:
        deltas = 0
        for event in stream:
            deltas += event.type == "response.output_text.delta"
            if deltas == 2:
                break
    deadline = time.monotonic() + 3
    while not engine.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.closed and engine.yielded < tokens(ANSWER.format("gpt-4o"), "gpt-4o")


@pytest.mark.parametrize("stream", [False, True])
def test_max_output_tokens_leaves_the_response_incomplete(aoai, stream):
    body = {"model": "gpt-5-mini", "input": "Hello emulator", "reasoning": {"effort": "low"}, "max_output_tokens": 69}
    if stream:
        final = raw_events(aoai, body)[-1][1]
        assert final["type"] == "response.incomplete"
        final = final["response"]
    else:
        final = respond(aoai, body).json()
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    reasoning, message = final["output"]
    assert message["status"] == "incomplete" and tokens(message["content"][0]["text"]) == 5
    assert final["usage"]["output_tokens"] == 69 and final["usage"]["output_tokens_details"]["reasoning_tokens"] == 64


def test_reasoning_that_uses_the_whole_limit_leaves_only_the_reasoning_item(aoai):
    answer = v1(aoai).responses.create(model="gpt-5-mini", input="Hello", max_output_tokens=50)  # medium: 256
    assert answer.status == "incomplete" and answer.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in answer.output] == ["reasoning"] and answer.output_text == ""
    assert answer.usage.output_tokens == 50 == answer.usage.output_tokens_details.reasoning_tokens
    events = list(v1(aoai).responses.create(model="gpt-5-mini", input="Hello", max_output_tokens=50, stream=True))
    assert isinstance(events[-1], ResponseIncompleteEvent) and not any(e.type.startswith("response.output_text")
                                                                      for e in events)


def test_a_function_call_round_trip(aoai):
    client = v1(aoai)
    question = {"role": "user", "content": [{"type": "input_text", "text": "What is 12*(3+4)?"}]}
    first = client.responses.create(model="gpt-5-mini", input=[question], tools=[CALCULATOR],
                                    reasoning={"effort": "minimal"})
    [call] = first.output[1:]
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "calculator" and call.status == "completed"
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert json.loads(call.arguments) == {"expression": "12*(3+4)"}
    assert first.status == "completed" and first.output_text == ""
    assert first.usage.output_tokens == 16 + tokens("calculator") + tokens(call.arguments)
    recorded = aoai.emulator.requests[-1]
    assert recorded["tools"] == ["calculator"] and recorded["tool_calls"][0]["id"] == call.call_id
    follow_up = [question, call.model_dump(exclude_none=True),
                 {"type": "function_call_output", "call_id": call.call_id, "output": "84"}]
    second = client.responses.create(model="gpt-5-mini", input=follow_up, tools=[CALCULATOR],
                                     reasoning={"effort": "low", "summary": "auto"})
    assert second.output_text == ('Here is what the tools returned: calculator returned "84". This is the scripted '
                                  "emulator answering with 1 tool result.")
    assert second.output[0].summary[0].text.startswith("**Reading the tool results**")
    recorded = aoai.emulator.requests[-1]
    assert recorded["tool_messages"] == [{"role": "tool", "tool_call_id": call.call_id, "content": "84"}]
    assert recorded["messages"][1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": call.arguments}


def test_streamed_function_calls_send_argument_deltas(aoai):
    calendar = {"type": "function", "name": "my_calendar", "parameters": {"type": "object", "properties": {}}}
    events = [data for _, data in raw_events(aoai, {"model": "gpt-4o", "tools": [CALCULATOR, calendar],
                                                    "input": "What is 6*7, and what is in my calendar?"})]
    assert collapsed([e["type"] for e in events]) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    first_added = events[2]["item"]
    assert first_added["arguments"] == "" and first_added["status"] == "in_progress"
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
                        and e["output_index"] == 0)
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [json.loads(e["arguments"]) for e in done] == [{"expression": "6*7"}, {}]
    assert done[0]["arguments"] == arguments and done[0]["item_id"] == first_added["id"]
    final = events[-1]["response"]
    assert [(item["type"], item["name"]) for item in final["output"]] == [("function_call", "calculator"),
                                                                          ("function_call", "my_calendar")]
    no_parallel = respond(aoai, {"model": "gpt-4o", "tools": [CALCULATOR, calendar], "parallel_tool_calls": False,
                                 "input": "What is 6*7, and what is in my calendar?"}).json()
    assert len(no_parallel["output"]) == 1 and no_parallel["parallel_tool_calls"] is False
    forced = respond(aoai, {"model": "gpt-4o", "tools": [CALCULATOR, calendar], "input": "Hello",
                            "tool_choice": {"type": "function", "name": "my_calendar"}}).json()
    assert [item["name"] for item in forced["output"]] == ["my_calendar"]


def test_unpaired_function_call_items_are_400s(aoai):
    call = {"type": "function_call", "call_id": "call_1", "name": "calculator", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "1"}
    question = {"role": "user", "content": "What is 1*1?"}
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": [question, output]})) == {
        "message": "No tool call found for function call output with call_id call_1.", "type": "invalid_request_error",
        "param": "input", "code": None}
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": [question, call]}))["message"] == (
        "No tool output found for function call call_1.")
    wrong_part = {"role": "assistant", "content": [{"type": "input_text", "text": "Hi"}]}
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": [question, wrong_part]})) == {
        "message": "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.",
        "type": "invalid_request_error", "param": "input[1].content[0].type", "code": "invalid_value"}
    bad_tool = error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi", "tools": [{"type": "function"}]}))
    assert bad_tool["message"] == "Missing required parameter: 'tools[0].name'." and bad_tool["param"] == "tools[0].name"


def test_an_assistant_turn_and_reasoning_items_of_earlier_turns_are_read(aoai):
    earlier = respond(aoai, {"model": "gpt-5-mini", "input": "Hello emulator",
                             "reasoning": {"effort": "low", "summary": "auto"}}).json()
    history = [{"role": "user", "content": "Hello emulator"}, *earlier["output"],
               {"role": "user", "content": [{"type": "input_text", "text": "And again"}]}]
    answer = respond(aoai, {"model": "gpt-5-mini", "input": history}).json()
    assert answer["output"][-1]["content"][0]["text"] == ANSWER.replace("Hello emulator", "And again").format(
        "gpt-5-mini")
    messages = aoai.emulator.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "text", "text": ANSWER.format("gpt-5-mini")}]


def test_an_image_input_is_billed_like_chat(aoai):
    url = png_data_url(1024, 768)
    chat = v1(aoai).chat.completions.create(model="gpt-5-mini", max_completion_tokens=2000, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                     {"type": "image_url", "image_url": {"url": url, "detail": "high"}}]}])
    chat_record = aoai.emulator.requests[-1]
    answer = v1(aoai).responses.create(model="gpt-5-mini", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "What is in this picture?"},
                                     {"type": "input_image", "image_url": url, "detail": "high"}]}])
    record = aoai.emulator.requests[-1]
    assert answer.usage.input_tokens == chat.usage.prompt_tokens
    assert record["image_tokens"] == chat_record["image_tokens"] > 0
    assert "I received 1 image: 1024x768 px, detail high" in answer.output_text
    text_only = error_of(respond(aoai, {"model": "gpt-35-turbo", "input": [
        {"role": "user", "content": [{"type": "input_image", "image_url": url, "detail": "low"}]}]}))
    assert text_only["param"] == "input" and "does not support image input" in text_only["message"]


# ---- the family rules on Responses ----
@pytest.mark.parametrize("param, value", [("temperature", 0.7), ("temperature", 0), ("top_p", 0.5)])
def test_sampling_parameters_are_refused_on_reasoning_models(aoai, param, value):
    assert error_of(respond(aoai, {"model": "gpt-5-mini", "input": "Hi", param: value})) == {
        "message": f"Unsupported parameter: '{param}' is not supported with this model.",
        "type": "invalid_request_error", "param": param, "code": None}
    assert respond(aoai, {"model": "gpt-5-mini", "input": "Hi", param: 1}).status_code == 200
    assert respond(aoai, {"model": "gpt-4o", "input": "Hi", param: value}).status_code == 200


def test_reasoning_settings_are_checked_against_the_family(aoai):
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi", "reasoning": {"effort": "low"}})) == {
        "message": "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
        "type": "invalid_request_error", "param": "reasoning.effort", "code": "unsupported_parameter"}
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi", "reasoning": {"summary": "auto"}}))[
        "param"] == "reasoning.summary"
    assert error_of(respond(aoai, {"model": "o4-mini", "input": "Hi", "reasoning": {"effort": "minimal"}})) == {
        "message": "Unsupported value: 'reasoning.effort' does not support 'minimal' with this model. Supported values "
                   "are: 'low', 'medium', and 'high'.", "type": "invalid_request_error", "param": "reasoning.effort",
        "code": "unsupported_value"}
    assert error_of(respond(aoai, {"model": "gpt-5-mini", "input": "Hi", "reasoning": {"summary": "concise"}})) == {
        "message": "Unsupported value: 'reasoning.summary' does not support 'concise' with this model. Supported "
                   "values are: 'auto' and 'detailed'.", "type": "invalid_request_error",
        "param": "reasoning.summary", "code": "unsupported_value"}
    assert error_of(respond(aoai, {"model": "o4-mini", "input": "Hi", "reasoning": {"summary": "verbose"}})) == {
        "message": "Invalid value: 'verbose'. Supported values are: 'auto', 'concise', and 'detailed'.",
        "type": "invalid_request_error", "param": "reasoning.summary", "code": "invalid_value"}
    assert respond(aoai, {"model": "gpt-5.4-nano", "input": "Hi", "reasoning": {"effort": "xhigh"}}).status_code == 200
    assert respond(aoai, {"model": "gpt-4o", "input": "Hi", "reasoning": None}).status_code == 200


def test_chat_completions_parameters_and_bad_limits_are_400s(aoai):
    for param, value in (("max_tokens", 50), ("max_completion_tokens", 50), ("reasoning_effort", "low"),
                         ("messages", HELLO)):
        assert error_of(respond(aoai, {"model": "gpt-5-mini", "input": "Hi", param: value})) == {
            "message": f"Unknown parameter: '{param}'.", "type": "invalid_request_error", "param": param,
            "code": "unknown_parameter"}
    below = error_of(respond(aoai, {"model": "gpt-5-mini", "input": "Hi", "max_output_tokens": 15}))
    assert below["code"] == "integer_below_min_value" and "Expected a value >= 16, but got 15" in below["message"]
    above = error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi", "max_output_tokens": 16385}))
    assert above["param"] == "max_output_tokens" and above["message"].startswith("max_output_tokens is too large")
    assert error_of(respond(aoai, {"model": "gpt-4o"})) == {
        "message": "Missing required parameter: 'input'.", "type": "invalid_request_error", "param": "input",
        "code": "missing_required_parameter"}
    long = error_of(respond(aoai, {"model": "gpt-35-turbo", "input": "word " * 17000}))
    assert long["code"] == "context_length_exceeded" and long["param"] == "input"
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi", "previous_response_id": "resp_x"}))[
        "code"] == "previous_response_not_found"


def test_responses_only_models_refuse_chat_completions(responses_only_rows):
    aoai = responses_only_rows
    for deployment in ("gpt-5-pro", "gpt-5.3-codex"):
        classic = raw_post(aoai, {"messages": HELLO}, route="chat/completions", deployment=deployment)
        assert classic.status_code == 400 and classic.json() == OPERATION_UNSUPPORTED
        assert v1_post(aoai, "chat/completions", {"model": deployment, "messages": HELLO}).json() == OPERATION_UNSUPPORTED
        answer = respond(aoai, {"model": deployment, "input": "Hello emulator"}).json()
        assert answer["status"] == "completed" and answer["output"][-1]["content"][0]["text"] == ANSWER.format(
            deployment)
    with pytest.raises(openai.BadRequestError) as caught:
        v1(aoai).chat.completions.create(model="gpt-5-pro", messages=HELLO)
    assert caught.value.code == "OperationNotSupported"
    # gpt-5-pro: high effort only, no streaming, on Responses too.
    pro = respond(aoai, {"model": "gpt-5-pro", "input": "Hi"}).json()
    assert pro["usage"]["output_tokens_details"]["reasoning_tokens"] == 1024 and pro["reasoning"]["effort"] == "high"
    assert error_of(respond(aoai, {"model": "gpt-5-pro", "input": "Hi", "stream": True}))["param"] == "stream"
    assert error_of(respond(aoai, {"model": "gpt-5-pro", "input": "Hi", "reasoning": {"effort": "medium"}}))[
        "message"].endswith("Supported values are: 'high'.")
    assert [r["kind"] for r in aoai.emulator.requests] == ["responses"] * 5, "refused chat calls are not recorded"


# ---- faults and records ----
def test_responses_faults(aoai):
    aoai.emulator.inject("429", retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        v1(aoai).responses.create(model="gpt-4o", input="Hello")
    assert caught.value.response.headers["retry-after-ms"] == "2000"
    assert "Requests to the Responses_Create Operation under Azure OpenAI API version v1" in caught.value.message
    aoai.emulator.inject("500", endpoint="chat")
    with pytest.raises(openai.InternalServerError):
        v1(aoai).responses.create(model="gpt-4o", input="Hello")
    with pytest.raises(openai.BadRequestError) as caught:
        v1(aoai).responses.create(model="gpt-4o", input="Hello [[fault:prompt_filter category=hate]]")
    assert caught.value.code == "content_filter"
    filtered = respond(aoai, {"model": "gpt-4o", "input": "Hello [[fault:completion_filter after_chunks=3]]"}).json()
    assert filtered["status"] == "incomplete" and filtered["incomplete_details"] == {"reason": "content_filter"}
    assert tokens(filtered["output"][0]["content"][0]["text"], "gpt-4o") == 3
    with pytest.raises(openai.APIConnectionError):
        list(v1(aoai).responses.create(model="gpt-4o", input="Hello [[fault:cut after_chunks=2]]", stream=True))
    with pytest.raises(openai.APIConnectionError):
        v1(aoai).responses.create(model="gpt-4o", input="Hello [[fault:cut]]")
    aoai.emulator.inject("context_length")
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi"}))["code"] == "context_length_exceeded"
    assert [r["fault"] for r in aoai.emulator.requests] == ["429", "500", "prompt_filter", "completion_filter", "cut",
                                                            "cut", "context_length"]
    assert v1(aoai).responses.create(model="gpt-4o", input="Hello").status == "completed"


def test_the_record_keeps_user_store_and_the_security_context(aoai):
    context = {"application_name": "entra-chat", "end_user_id": "9a8b7c6d", "end_user_tenant_id": "7d3b4c2a",
               "source_ip": "203.0.113.7"}
    answer = respond(aoai, {"model": "gpt-4o", "input": "Hello", "user": "person-hash", "store": False,
                            "user_security_context": context}).json()
    assert answer["store"] is False and answer["user"] == "person-hash"
    recorded = aoai.emulator.requests[-1]
    assert (recorded["user"], recorded["store"], recorded["user_security_context"]) == ("person-hash", False, context)
    assert "authorization" not in recorded["headers"] and recorded["peer"]
    assert error_of(respond(aoai, {"model": "gpt-4o", "input": "Hi", "user": 7}))["code"] == "invalid_type"


# ---- 4. LangChain's ChatOpenAI on the Responses API ----
def test_langchain_streams_reasoning_summaries_text_and_usage_from_the_responses_api(aoai):
    """Catches drift between the emulator's events and what langchain-openai parses. The shape of the reasoning
    blocks (output_version="v1") is what the UI renders as its "Thinking" step."""
    from langchain_openai import ChatOpenAI

    token = aoai.signer.token(aud=AI_AUDIENCE)
    model = ChatOpenAI(base_url=f"{aoai.url}/openai/v1/", api_key=lambda: token, model="gpt-5-mini",
                       use_responses_api=True, reasoning={"effort": "low", "summary": "auto"}, stream_usage=True,
                       output_version="v1", max_retries=0)
    chunks = list(model.stream("Hello through LangChain"))
    final = sum(chunks[1:], chunks[0])

    sent = aoai.emulator.requests[-1]
    assert (sent["kind"], sent["reasoning_effort"], sent["body"]["stream"]) == ("responses", "low", True)
    assert sent["body"]["reasoning"] == {"effort": "low", "summary": "auto"} and "temperature" not in sent["body"]
    summary = SUMMARY.replace("Hello emulator", "Hello through LangChain")
    reasoning = [block for block in final.content if block["type"] == "reasoning"]
    assert reasoning == [{"type": "reasoning", "id": reasoning[0]["id"], "index": reasoning[0]["index"],
                          "reasoning": summary}]
    assert reasoning[0]["id"].startswith("rs_") and final.content[0]["type"] == "reasoning"
    streamed = [b for c in chunks for b in c.content if isinstance(b, dict) and b.get("type") == "reasoning"
                and b.get("reasoning")]
    assert len(streamed) >= 3, "the summary arrives in several deltas"
    assert final.text == "You said: Hello through LangChain. This is the scripted emulator answering on deployment gpt-5-mini."
    assert [b["type"] for b in final.content_blocks] == ["reasoning", "text"]
    usage = final.usage_metadata
    assert usage["output_token_details"]["reasoning"] == 64
    assert usage["output_tokens"] == 64 + tokens(final.text)
    assert usage["input_tokens"] == sent["prompt_tokens"] and usage["total_tokens"] == usage["input_tokens"] + usage[
        "output_tokens"]
    assert final.response_metadata["model_name"] == "gpt-5-mini-2025-08-07"
    assert final.response_metadata["status"] == "completed"
