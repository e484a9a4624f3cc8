"""The Azure OpenAI emulator over real HTTPS: Azure's shapes, Entra token checks, limits, faults, knobs, recording."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import time
import uuid

import httpx
import openai
import pytest
from PIL import Image

from localdev.aoai import AUDIENCE
from localdev.engines import ScriptedEngine
from localdev.prompt_tokens import count_prompt_tokens
from tests.integration.conftest_aoai import (  # noqa: F401 - pytest fixtures, used by name
    API_KEY,
    API_VERSION,
    APP_ID,
    TENANT_ID,
    USER_OID,
    Signer,
    aoai,
    aoai_stack,
    raw_post,
)

HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello emulator"}]
UNAUTHORIZED = {"error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
                          "(https://cognitiveservices.azure.com), or have expired."}}
SAFE = {"filtered": False, "severity": "safe"}


def post(aoai, body: dict | None = None, *, deployment="gpt-4o", **options) -> httpx.Response:
    return raw_post(aoai, body or {"messages": HELLO}, route="chat/completions", deployment=deployment, **options)


def sse_events(aoai, body: dict, **kwargs) -> tuple[list, BaseException | None]:
    """Raw SSE `data:` payloads (parsed JSON, or the string "[DONE]"), and the error that ended the stream if any."""
    events, error = [], None
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        try:
            with http.stream("POST", f"{aoai.url}/openai/deployments/gpt-4o/chat/completions?api-version={API_VERSION}",
                             json={"messages": HELLO, "stream": True, **body},
                             headers={"authorization": f"Bearer {aoai.signer.token()}"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        data = line[len("data: "):]
                        events.append(data if data == "[DONE]" else json.loads(data))
        except httpx.HTTPError as exc:
            error = exc
    return events, error


def png_data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(width=1024, height=768, detail="high") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                         {"type": "image_url", "image_url": {"url": png_data_url(width, height),
                                                                             "detail": detail}}]}]


# ---- answers in Azure's shapes ----
def test_streaming_with_openai_sdk_reports_usage_matching_the_counter_and_chunks(aoai):
    chunks = list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,
                                                       stream_options={"include_usage": True}))
    first, usage_chunk = chunks[0], chunks[-1]
    assert first.choices == [] and first.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert chunks[1].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == "You said: Hello emulator. This is the scripted emulator answering on deployment gpt-4o."
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert usage_chunk.usage.prompt_tokens == count_prompt_tokens(HELLO, "gpt-4o")
    assert usage_chunk.usage.completion_tokens == len(content) > 5
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + len(content)
    assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 0
    assert usage_chunk.usage.completion_tokens_details.reasoning_tokens == 0
    assert {c.model for c in chunks[1:]} == {"gpt-4o-2024-11-20"} and len({c.id for c in chunks[1:]}) == 1


def test_raw_stream_order_and_done_marker(aoai):
    events, error = sse_events(aoai, {"stream_options": {"include_usage": True}})
    assert error is None
    assert events[0]["choices"] == [] and events[0]["prompt_filter_results"][0]["content_filter_results"]["violence"] == SAFE
    assert events[1]["choices"][0]["delta"] == {"content": "", "refusal": None, "role": "assistant"}
    assert events[2]["choices"][0]["content_filter_results"]["hate"] == SAFE
    assert events[-3]["choices"][0]["finish_reason"] == "stop" and events[-3]["choices"][0]["delta"] == {}
    assert events[-2]["choices"] == [] and set(events[-2]["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "chat.completion.chunk" and e["id"].startswith("chatcmpl-") for e in events[1:-1])


def test_stream_without_include_usage_has_no_usage_chunk(aoai):
    events, _ = sse_events(aoai, {})
    assert events[-1] == "[DONE]" and all("usage" not in e for e in events[:-1])


def test_non_streaming_answer_shape_and_headers(aoai):
    response = post(aoai)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-2024-11-20" and body["system_fingerprint"].startswith("fp_")
    assert abs(body["created"] - time.time()) < 60
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("You said: Hello emulator.")
    assert choice["content_filter_results"] == {c: SAFE for c in ("hate", "self_harm", "sexual", "violence")}
    assert body["prompt_filter_results"][0]["content_filter_results"]["sexual"] == SAFE
    assert body["usage"]["prompt_tokens"] == count_prompt_tokens(HELLO, "gpt-4o")
    request_id = response.headers["apim-request-id"]
    assert uuid.UUID(request_id) and response.headers["x-request-id"] == request_id
    assert response.headers["x-ms-region"]
    assert int(response.headers["x-ratelimit-remaining-requests"]) > 0
    assert int(response.headers["x-ratelimit-remaining-tokens"]) > 0
    assert aoai.emulator.requests[-1]["request_id"] == request_id


def test_langchain_stream_gets_usage_and_security_context_is_recorded(aoai):
    from langchain_core.messages import HumanMessage
    from langchain_openai import AzureChatOpenAI

    context = {"application_name": "chat-tests", "end_user_id": USER_OID, "end_user_tenant_id": TENANT_ID,
               "source_ip": "203.0.113.7"}
    token = aoai.signer.token()
    model = AzureChatOpenAI(azure_endpoint=aoai.url, azure_deployment="gpt-4o-mini", api_version=API_VERSION,
                            azure_ad_token_provider=lambda: token, model="gpt-4o-mini", max_retries=0,
                            extra_body={"user_security_context": context})
    aoai.clients.append(model.root_client)
    chunks = list(model.stream("Tell me about Entra ID"))
    final = sum(chunks[1:], chunks[0])
    assert "Tell me about Entra ID" in final.text and "gpt-4o-mini" in final.text
    assert final.usage_metadata["input_tokens"] == model.get_num_tokens_from_messages([HumanMessage("Tell me about Entra ID")])
    assert final.usage_metadata["output_tokens"] == len([c for c in chunks if c.text])
    assert final.response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"
    recorded = aoai.emulator.requests[-1]
    assert recorded["deployment"] == "gpt-4o-mini" and recorded["api_version"] == API_VERSION
    assert recorded["body"]["user_security_context"] == context
    assert recorded["body"]["stream_options"] == {"include_usage": True}
    assert recorded["token_claims"] == {"oid": USER_OID, "tid": TENANT_ID, "appid": APP_ID, "azp": None, "idtyp": "app",
                                        "scp": None, "roles": ["Chat.Use"], "aud": "https://cognitiveservices.azure.com"}
    assert not {"authorization", "api-key"} & {k.lower() for k in recorded["headers"]}
    assert recorded["headers"]["user-agent"].startswith("langchain-partner-python-azure-openai")


def test_max_completion_tokens_cuts_the_answer_with_finish_reason_length(aoai):
    chunks = list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True, max_completion_tokens=4,
                                                       stream_options={"include_usage": True}))
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert chunks[-2].choices[0].finish_reason == "length" and chunks[-1].usage.completion_tokens == 4
    legacy = post(aoai, {"messages": HELLO, "max_tokens": 2}).json()
    assert legacy["choices"][0]["finish_reason"] == "length" and legacy["usage"]["completion_tokens"] == 2


def test_max_tokens_above_the_deployment_limit_is_rejected(aoai):
    response = post(aoai, {"messages": HELLO, "max_completion_tokens": 5000}, deployment="gpt-35-turbo")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value" and "at most 4096" in response.json()["error"]["message"]


def test_images_are_counted_and_acknowledged_on_a_vision_deployment(aoai):
    messages = image_message()
    response = post(aoai, {"messages": messages})
    assert response.status_code == 200
    body = response.json()
    assert "1 image: 1024x768 px" in body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] == count_prompt_tokens(messages, "gpt-4o")
    low = post(aoai, {"messages": image_message(detail="low")}).json()
    assert body["usage"]["prompt_tokens"] - low["usage"]["prompt_tokens"] == 765 - 85


def test_image_on_a_text_only_deployment_is_a_400(aoai):
    response = post(aoai, {"messages": image_message()}, deployment="gpt-35-turbo")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "does not support image input" in error["message"]
    with pytest.raises(openai.BadRequestError):
        aoai.sdk().chat.completions.create(model="gpt-35-turbo", messages=image_message())


def test_undecodable_image_is_a_400(aoai):
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}]
    response = post(aoai, {"messages": messages})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_image_format"


def test_context_length_exceeded_when_the_prompt_is_too_long(aoai):
    long = [{"role": "user", "content": "word " * 17000}]
    response = post(aoai, {"messages": long}, deployment="gpt-35-turbo")
    assert response.status_code == 400
    error = response.json()["error"]
    tokens = count_prompt_tokens(long, "gpt-35-turbo")
    assert error == {"message": f"This model's maximum context length is 16385 tokens. However, your messages resulted in "
                                f"{tokens} tokens. Please reduce the length of the messages.",
                     "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}


def test_context_length_counts_the_requested_completion(aoai):
    prompt = [{"role": "user", "content": "word " * 14000}]
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-35-turbo", messages=prompt, max_completion_tokens=4000)
    assert caught.value.code == "context_length_exceeded" and "4000 in the completion" in caught.value.message
    ok = aoai.sdk().chat.completions.create(model="gpt-35-turbo", messages=prompt, max_completion_tokens=100)
    assert ok.choices[0].finish_reason == "stop"


# ---- who may call ----
def foreign_signed(aoai) -> str:
    return Signer.generate(kid=aoai.signer.kid).token()  # same kid, other key: the signature cannot match


def unsigned(aoai) -> str:
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()  # noqa: E731 - a one-line helper
    return f"{encode({'alg': 'none', 'typ': 'JWT', 'kid': aoai.signer.kid})}.{encode(aoai.signer.claims())}."


def hs256_with_public_key(aoai) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the (public) RSA key."""
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731 - a one-line helper
    head = encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": aoai.signer.kid}).encode())
    body = encode(json.dumps(aoai.signer.claims()).encode())
    secret = json.dumps(aoai.signer.jwks["keys"][0]).encode()
    return f"{head}.{body}.{encode(hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


BAD_TOKENS = {
    "missing": lambda aoai: None,
    "garbage": lambda aoai: "not-a-token",
    "expired": lambda aoai: aoai.signer.token(exp=int(time.time()) - 600, iat=int(time.time()) - 4200,
                                              nbf=int(time.time()) - 4200),
    "not yet valid": lambda aoai: aoai.signer.token(nbf=int(time.time()) + 600),
    "wrong audience": lambda aoai: aoai.signer.token(aud="https://graph.microsoft.com"),
    "no audience": lambda aoai: aoai.signer.token(aud=None),
    "wrong issuer": lambda aoai: aoai.signer.token(iss="https://login.microsoftonline.com/other/v2.0"),
    "foreign key, same kid": foreign_signed,
    "unknown kid": lambda aoai: Signer.generate().token(),
    "alg none": unsigned,
    "HS256 confusion": hs256_with_public_key,
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_tokens_get_azures_401(aoai, kind, caplog):
    token = BAD_TOKENS[kind](aoai)
    with caplog.at_level(logging.DEBUG):
        response = post(aoai, token=token)
    assert response.status_code == 401 and response.json() == UNAUTHORIZED
    assert not aoai.emulator.requests, "rejected requests are not recorded"
    if token:
        assert token not in caplog.text and all(part not in caplog.text for part in token.split(".") if part)


def test_sdk_sees_an_authentication_error(aoai):
    with pytest.raises(openai.AuthenticationError) as caught:
        aoai.sdk(token=aoai.signer.token(aud="api://something-else")).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.code == "401"


def test_audience_is_the_cognitive_services_resource(aoai):
    assert AUDIENCE == "https://cognitiveservices.azure.com"
    assert post(aoai, token=aoai.signer.token(aud=AUDIENCE)).status_code == 200


def test_api_key_is_accepted_when_configured_and_never_recorded(aoai):
    ok = post(aoai, token=None, headers={"api-key": API_KEY})
    assert ok.status_code == 200
    assert "api-key" not in aoai.emulator.requests[-1]["headers"]
    wrong = post(aoai, token=None, headers={"api-key": "wrong"})
    assert wrong.status_code == 401 and "invalid subscription key" in wrong.json()["error"]["message"]


def test_missing_api_version_and_unknown_routes_are_404(aoai):
    assert post(aoai, query="").status_code == 404
    assert post(aoai, query="").json() == {"error": {"code": "404", "message": "Resource not found"}}
    with httpx.Client(verify=aoai.ssl_context()) as http:
        assert http.get(f"{aoai.url}/openai/models").json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_unknown_deployment_is_a_404_deployment_not_found(aoai):
    with pytest.raises(openai.NotFoundError) as caught:
        aoai.sdk().chat.completions.create(model="not-deployed", messages=HELLO)
    assert caught.value.code == "DeploymentNotFound"
    assert "does not exist" in caught.value.message


# ---- faults ----
def test_429_carries_retry_after_and_azures_message(aoai):
    aoai.emulator.inject("429", count=1, retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "2000"
    assert f"under Azure OpenAI API version {API_VERSION} have exceeded" in caught.value.message
    assert "Please retry after 2 seconds." in caught.value.message
    assert aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO).choices, "only the next request fails"
    assert [r["fault"] for r in aoai.emulator.requests] == ["429", None]


def test_500(aoai):
    aoai.emulator.inject("500")
    with pytest.raises(openai.InternalServerError):
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO)


def test_timeout_holds_the_request_until_the_client_gives_up(aoai):
    aoai.emulator.inject("timeout", seconds=1.5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        aoai.sdk(timeout=0.3).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert 0.3 <= time.monotonic() - started < 1.5


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_cut_stream_ends_without_done(aoai):
    uvicorn_errors = ListHandler()
    logging.getLogger("uvicorn.error").addHandler(uvicorn_errors)  # uvicorn's loggers do not reach caplog
    aoai.emulator.inject("cut", after_chunks=2)
    try:
        events, error = sse_events(aoai, {"stream_options": {"include_usage": True}})
    finally:
        logging.getLogger("uvicorn.error").removeHandler(uvicorn_errors)
    assert not [r for r in uvicorn_errors.records if r.levelno >= logging.ERROR], "a deliberate cut is not a server error"
    assert isinstance(error, httpx.RemoteProtocolError)
    assert "[DONE]" not in events and len([e for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]) == 2
    aoai.emulator.inject("cut")
    with pytest.raises(openai.APIConnectionError):
        list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    aoai.emulator.inject("cut")
    with pytest.raises(openai.APIConnectionError):
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO)


def test_prompt_filter_is_a_400_content_filter(aoai):
    aoai.emulator.inject("prompt_filter", category="self_harm", severity="medium")
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO)
    error = caught.value.body
    assert caught.value.code == "content_filter" and error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["self_harm"] == {"filtered": True, "severity": "medium"}
    assert error["innererror"]["content_filter_result"]["violence"] == SAFE


def test_completion_filter_ends_the_answer_with_finish_reason_content_filter(aoai):
    aoai.emulator.inject("completion_filter", after_chunks=3)
    events, error = sse_events(aoai, {"stream_options": {"include_usage": True}})
    assert error is None and events[-1] == "[DONE]"
    finish = events[-3]["choices"][0]
    assert finish["finish_reason"] == "content_filter"
    assert finish["content_filter_results"]["violence"] == {"filtered": True, "severity": "high"}
    assert events[-2]["usage"]["completion_tokens"] == 3
    aoai.emulator.inject("completion_filter")
    body = post(aoai).json()
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["content_filter_results"]["violence"]["filtered"] is True


def test_forced_context_length_exceeded(aoai):
    aoai.emulator.inject("context_length")
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 128000 tokens" in caught.value.message


def test_marker_in_the_last_user_message_triggers_a_fault(aoai):
    with pytest.raises(openai.RateLimitError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi [[fault:429 retry_after=7]]"}])
    assert caught.value.response.headers["retry-after"] == "7"
    answer = aoai.sdk().chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "old [[fault:500]]"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "fine [[fault:completion_filter after_chunks=1]]"}])
    assert answer.choices[0].finish_reason == "content_filter" and answer.choices[0].message.content == "You"


def test_queued_faults_then_recovery(aoai):
    aoai.emulator.inject("500", count=2)
    outcomes = [post(aoai).status_code for _ in range(3)]
    assert outcomes == [500, 500, 200]


def test_random_fault_rate_is_reproducible_with_a_seed(aoai):
    def run() -> list[int]:
        aoai.emulator.set_fault_rate(0.5, faults=["429", "500"], seed=1)
        return [post(aoai).status_code for _ in range(8)]

    first = run()
    assert first == run()
    assert 200 in first and set(first) - {200} <= {429, 500} and len(set(first)) > 1
    aoai.emulator.clear_faults()
    assert {post(aoai).status_code for _ in range(3)} == {200}


def test_unknown_faults_and_options_are_refused(aoai):
    from localdev.aoai import Fault

    with pytest.raises(ValueError):
        Fault("meteor")
    with pytest.raises(TypeError):
        Fault("429", bogus=1)
    with pytest.raises(ValueError):
        aoai.emulator.inject("prompt_filter", category="rudeness")
    response = post(aoai, {"messages": [{"role": "user", "content": "[[fault:meteor]]"}]})
    assert response.status_code == 400 and "fault marker" in response.json()["error"]["message"]


# ---- pacing ----
def test_streaming_is_incremental_over_the_wire(aoai):
    aoai.emulator.engine = ScriptedEngine(time_to_first_token=0.2, tokens_per_second=40)
    started = time.monotonic()
    arrivals = []
    for chunk in aoai.sdk().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True):
        arrivals.append((time.monotonic() - started, bool(chunk.choices and chunk.choices[0].delta.content)))
    content_times = [t for t, has_content in arrivals if has_content]
    assert content_times[0] - arrivals[0][0] >= 0.15, "the prompt-filter chunk arrives before the first token"
    assert content_times[-1] - content_times[0] >= (len(content_times) - 1) / 40 * 0.6
    gaps = [b - a for a, b in zip(content_times, content_times[1:])]
    assert sum(1 for gap in gaps if gap > 0.01) > len(gaps) / 3, "tokens arrive one by one, not in one burst"


# ---- control routes ----
def test_control_routes(aoai):
    with httpx.Client(base_url=aoai.url, verify=aoai.ssl_context(), timeout=10) as http:
        state = http.post("/_emulator/faults", json={"fault": "429", "count": 2, "retry_after": 3}).json()
        assert [f["kind"] for f in state["queued"]] == ["429", "429"] and state["queued"][0]["retry_after"] == 3
        assert post(aoai).headers["retry-after"] == "3"
        assert http.delete("/_emulator/faults").json() == {"queued": [], "rate": 0.0, "rate_faults": []}
        assert post(aoai).status_code == 200
        state = http.post("/_emulator/faults", json={"rate": 1.0, "faults": ["500"], "seed": 3}).json()
        assert state["rate"] == 1.0 and [f["kind"] for f in state["rate_faults"]] == ["500"]
        assert post(aoai).status_code == 500
        http.delete("/_emulator/faults")
        assert http.post("/_emulator/faults", json={"fault": "meteor"}).status_code == 400

        recorded = http.get("/_emulator/requests").json()["requests"]
        assert [r["fault"] for r in recorded] == ["429", None, "500"]
        assert recorded[0]["token_claims"]["oid"] == USER_OID and recorded[0]["body"]["messages"] == HELLO
        assert http.delete("/_emulator/requests").json() == {"requests": []} and aoai.emulator.requests == []

        engine = http.post("/_emulator/engine", json={"time_to_first_token": 0.05, "tokens_per_second": 500}).json()
        assert engine == {"engine": "scripted", "time_to_first_token": 0.05, "tokens_per_second": 500.0}
        assert aoai.emulator.engine.time_to_first_token == 0.05
        assert http.post("/_emulator/engine", json={"tokens_per_second": None}).json()["tokens_per_second"] is None
        assert http.post("/_emulator/engine", json={"time_to_first_token": "soon"}).status_code == 400
