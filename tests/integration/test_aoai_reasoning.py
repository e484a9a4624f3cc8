"""The Azure OpenAI emulator applies each model family's December-2026 rules over real HTTPS with real tokens:
reasoning models refuse `max_tokens` and the sampling parameters with Azure's exact 400 bodies, `reasoning_effort` is
checked against the family's efforts, hidden reasoning tokens are billed per effort out of `max_completion_tokens`
(an empty answer at "length" when they use it all), a family that cannot stream refuses `stream: true`, more than 10
images is a 400, and the rules come from the MODEL's family even when a catalog row claims more. Classic models keep
accepting what they always did. The product (chains/request_rules.py) sends only what the deployment accepts."""
from __future__ import annotations

import base64
import io
import json

import httpx
import openai
import pytest
from PIL import Image

from config.catalog import Catalog, Deployment
from localdev.aoai import MODEL_VERSIONS, REASONING_TOKENS, _reported_model
from localdev.prompt_tokens import count_prompt_tokens, encoding_for_model
from tests.integration.conftest_aoai import API_VERSION, aoai, aoai_stack, raw_post  # noqa: F401 - pytest fixtures, used by name

HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello emulator"}]
REASONING_DEPLOYMENTS = ["gpt-5-mini", "gpt-5.1", "gpt-5.4-nano", "o4-mini"]
CALCULATOR = {"type": "function", "function": {"name": "calculator", "description": "Evaluate an arithmetic expression.",
                                               "parameters": {"type": "object", "required": ["expression"],
                                                              "properties": {"expression": {"type": "string"}}}}}


def post(aoai, body: dict, deployment: str) -> httpx.Response:
    return raw_post(aoai, {"messages": HELLO, **body}, route="chat/completions", deployment=deployment)


def error_of(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["error"]


def unsupported_parameter(param: str, advice: str = "") -> dict:
    return {"message": f"Unsupported parameter: '{param}' is not supported with this model.{advice}",
            "type": "invalid_request_error", "param": param, "code": "unsupported_parameter"}


def only_default(param: str, rendered: str) -> dict:
    return {"message": f"Unsupported value: '{param}' does not support {rendered} with this model. Only the default (1) "
                       "value is supported.", "type": "invalid_request_error", "param": param, "code": "unsupported_value"}


def sse(aoai, body: dict, deployment: str) -> list:
    """The raw SSE `data:` payloads of a streamed answer (parsed JSON, or "[DONE]")."""
    events = []
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        with http.stream("POST", f"{aoai.url}/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}",
                         json={"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}, **body},
                         headers={"authorization": f"Bearer {aoai.signer.token()}"}) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[len("data: "):]
                    events.append(data if data == "[DONE]" else json.loads(data))
    return events


def visible_tokens(text: str, model: str) -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def call_tokens(name: str, arguments: str) -> int:
    """Completion tokens of one tool call: its name's and its arguments' (gpt-5-mini has gpt-4o's encoding)."""
    return visible_tokens(name, "gpt-5-mini") + visible_tokens(arguments, "gpt-5-mini")


def tiny_image() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "navy").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url, "detail": "low"}}


def images_message(count: int) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "Compare these."}, *[tiny_image()] * count]}]


def row(name: str, model: str, **fields) -> Deployment:
    return Deployment(name=name, model=model, context_window=fields.pop("context_window", 400000),
                      max_output_tokens=fields.pop("max_output_tokens", 100000), input_price_per_1m="1",
                      output_price_per_1m="1", **fields)


@pytest.fixture
def extra_rows(aoai, monkeypatch):
    """The local catalog plus rows the local tenant lacks: gpt-5-pro (no streaming), a small-window o4-mini, and rows
    that claim more than their model's family accepts (Azure decides by the model, so these must get its 400s)."""
    catalog = aoai.emulator.catalog
    rows = (row("gpt-5-pro", "gpt-5-pro", max_output_tokens=128000),
            row("o4-mini-small", "o4-mini", context_window=4000, max_output_tokens=1000),
            row("o4-mini-claims-classic", "o4-mini", reasoning=False, accepts_sampling=True, reasoning_efforts=(),
                default_effort=None),
            row("gpt-5-pro-claims-streaming", "gpt-5-pro", streaming=True),
            row("gpt-4o-claims-efforts", "gpt-4o", max_output_tokens=16384, reasoning=True, accepts_sampling=False,
                reasoning_efforts=("low", "medium", "high"), default_effort="low", max_images=20),
            row("gpt-35-claims-images", "gpt-35-turbo", context_window=16385, max_output_tokens=4096,
                accepts_images=True, image_rule={"kind": "tile", "base_tokens": 85, "tile_tokens": 170}))
    monkeypatch.setattr(aoai.emulator, "catalog", Catalog(deployments=(*catalog.deployments, *rows),
                                                          default=catalog.default, embeddings=catalog.embeddings))
    return aoai


# ---- 1. reasoning models refuse max_tokens and the sampling parameters ----
@pytest.mark.parametrize("deployment", REASONING_DEPLOYMENTS)
def test_max_tokens_is_an_unsupported_parameter_on_reasoning_models(aoai, deployment):
    error = error_of(post(aoai, {"max_tokens": 100}, deployment))
    assert error == unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
    assert post(aoai, {"max_completion_tokens": 2000}, deployment).status_code == 200


@pytest.mark.parametrize("value, rendered", [(0.7, "0.7"), (0, "0"), (0.0, "0"), (0.2, "0.2"), (2, "2"), (1.5, "1.5")])
def test_temperature_other_than_1_is_an_unsupported_value(aoai, value, rendered):
    assert error_of(post(aoai, {"temperature": value}, "gpt-5-mini")) == only_default("temperature", rendered)


def test_the_exact_body_for_temperature_0_7_as_azure_sends_it(aoai):
    response = post(aoai, {"temperature": 0.7}, "gpt-5.1")
    assert response.status_code == 400
    assert response.json() == {"error": {"message": "Unsupported value: 'temperature' does not support 0.7 with this "
                                                    "model. Only the default (1) value is supported.",
                                         "type": "invalid_request_error", "param": "temperature",
                                         "code": "unsupported_value"}}
    assert response.headers["apim-request-id"] and response.headers["x-ms-deployment-name"] == "gpt-5.1"


def test_top_p_other_than_1_is_an_unsupported_value(aoai):
    assert error_of(post(aoai, {"top_p": 0.5}, "gpt-5-mini")) == only_default("top_p", "0.5")
    assert error_of(post(aoai, {"top_p": 0}, "o4-mini")) == only_default("top_p", "0")


@pytest.mark.parametrize("deployment", REASONING_DEPLOYMENTS)
def test_the_default_values_and_nulls_are_accepted_on_reasoning_models(aoai, deployment):
    for body in ({"temperature": 1, "top_p": 1}, {"temperature": 1.0, "top_p": 1.0},
                 {"temperature": None, "top_p": None, "max_tokens": None, "presence_penalty": None}):
        assert post(aoai, {**body, "max_completion_tokens": 2000}, deployment).status_code == 200, body


@pytest.mark.parametrize("param, value", [("presence_penalty", 0.5), ("frequency_penalty", 0), ("logprobs", True),
                                          ("logprobs", False), ("top_logprobs", 2), ("logit_bias", {"1234": -100})])
@pytest.mark.parametrize("deployment", ["gpt-5-mini", "o4-mini"])
def test_penalties_logprobs_and_logit_bias_are_unsupported_parameters(aoai, deployment, param, value):
    assert error_of(post(aoai, {param: value}, deployment)) == unsupported_parameter(param)


def test_the_sdk_raises_bad_request_with_azures_message(aoai):
    with pytest.raises(openai.BadRequestError) as raised:
        aoai.sdk().chat.completions.create(model="gpt-5-mini", messages=HELLO, max_tokens=50)
    assert raised.value.code == "unsupported_parameter" and raised.value.param == "max_tokens"
    assert "Use 'max_completion_tokens' instead." in raised.value.message


def test_the_limit_errors_name_the_parameter_actually_sent(aoai):
    too_large = error_of(post(aoai, {"max_completion_tokens": 100001}, "o4-mini"))
    assert too_large == {"message": "max_completion_tokens is too large: 100001. This model supports at most 100000 "
                                    "completion tokens, whereas you provided 100001.",
                         "type": "invalid_request_error", "param": "max_completion_tokens", "code": "invalid_value"}
    below = error_of(post(aoai, {"max_completion_tokens": 0}, "gpt-5-mini"))
    assert below["param"] == "max_completion_tokens" and below["code"] == "integer_below_min_value"
    assert below["message"].startswith("Invalid 'max_completion_tokens': integer below minimum value.")
    classic = error_of(post(aoai, {"max_tokens": 5000}, "gpt-35-turbo"))
    assert classic["param"] == "max_tokens" and classic["message"].startswith("max_tokens is too large: 5000.")


# ---- 2. reasoning_effort ----
def test_reasoning_effort_on_a_model_without_efforts_is_an_unsupported_parameter(aoai):
    for deployment in ("gpt-4o", "gpt-4o-mini", "gpt-35-turbo"):
        assert error_of(post(aoai, {"reasoning_effort": "low"}, deployment)) == unsupported_parameter("reasoning_effort")


def test_o4_mini_refuses_minimal_with_the_supported_values(aoai):
    response = post(aoai, {"reasoning_effort": "minimal"}, "o4-mini")
    assert response.status_code == 400
    assert response.json() == {"error": {"message": "Unsupported value: 'reasoning_effort' does not support 'minimal' "
                                                    "with this model. Supported values are: 'low', 'medium', and 'high'.",
                                         "type": "invalid_request_error", "param": "reasoning_effort",
                                         "code": "unsupported_value"}}


def test_o4_mini_refuses_temperature_0(aoai):
    assert error_of(post(aoai, {"temperature": 0}, "o4-mini")) == only_default("temperature", "0")


@pytest.mark.parametrize("deployment, effort, supported", [
    ("gpt-5-mini", "none", "'minimal', 'low', 'medium', and 'high'"),
    ("gpt-5.1", "minimal", "'none', 'low', 'medium', and 'high'"),
    ("gpt-5.1", "xhigh", "'none', 'low', 'medium', and 'high'"),
    ("o4-mini", "none", "'low', 'medium', and 'high'"),
])
def test_an_effort_the_family_does_not_offer_is_an_unsupported_value(aoai, deployment, effort, supported):
    error = error_of(post(aoai, {"reasoning_effort": effort}, deployment))
    assert error == {"message": f"Unsupported value: 'reasoning_effort' does not support '{effort}' with this model. "
                                f"Supported values are: {supported}.",
                     "type": "invalid_request_error", "param": "reasoning_effort", "code": "unsupported_value"}


# ---- 3. reasoning tokens ----
@pytest.mark.parametrize("deployment, effort, expected", [
    ("gpt-5-mini", "minimal", 16), ("gpt-5-mini", "low", 64), ("gpt-5-mini", "medium", 256),
    ("gpt-5-mini", "high", 1024), ("gpt-5.1", "none", 0), ("gpt-5.4-nano", "xhigh", 2048), ("o4-mini", "low", 64),
    ("gpt-5-mini", None, 256), ("gpt-5.1", None, 0), ("gpt-5.4-nano", None, 0), ("o4-mini", None, 256),
])
def test_reasoning_tokens_are_billed_per_effort_in_usage_and_the_record(aoai, deployment, effort, expected):
    body = {"max_completion_tokens": 4000, **({"reasoning_effort": effort} if effort else {})}
    answer = post(aoai, body, deployment).json()
    content = answer["choices"][0]["message"]["content"]
    assert content.startswith("You said: Hello emulator.") and answer["choices"][0]["finish_reason"] == "stop"
    visible = visible_tokens(content, deployment)
    usage = answer["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == expected
    assert usage["completion_tokens"] == expected + visible
    assert usage["total_tokens"] == usage["prompt_tokens"] + expected + visible
    assert usage["prompt_tokens"] == count_prompt_tokens(HELLO, deployment)
    recorded = aoai.emulator.requests[-1]
    used = effort or aoai.emulator.catalog.get(deployment).default_effort
    assert recorded["reasoning_effort"] == used and recorded["reasoning_tokens"] == expected
    assert recorded["usage"] == usage


def test_streamed_usage_counts_the_reasoning_tokens(aoai):
    events = sse(aoai, {"reasoning_effort": "high", "max_completion_tokens": 4000}, "gpt-5-mini")
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[1:-2] if e["choices"])
    assert events[-3]["choices"][0]["finish_reason"] == "stop" and events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    assert events[-2]["choices"] == []
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 1024
    assert usage["completion_tokens"] == 1024 + visible_tokens(content, "gpt-5-mini")


@pytest.mark.parametrize("limit", [100, 256])
def test_reasoning_that_uses_the_whole_limit_leaves_an_empty_answer_at_length(aoai, limit):
    answer = post(aoai, {"max_completion_tokens": limit}, "gpt-5-mini").json()  # medium: 256 reasoning tokens
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "length"
    assert "tool_calls" not in choice["message"]
    usage = answer["usage"]
    assert usage["completion_tokens"] == limit and usage["completion_tokens_details"]["reasoning_tokens"] == limit
    assert usage["total_tokens"] == usage["prompt_tokens"] + limit
    assert aoai.emulator.requests[-1]["reasoning_tokens"] == limit


def test_streamed_empty_answer_at_length_has_the_role_chunk_and_reasoning_usage(aoai):
    events = sse(aoai, {"max_completion_tokens": 50, "reasoning_effort": "low"}, "gpt-5-mini")
    filters, role, finish, usage, done = events
    assert filters["choices"] == [] and filters["prompt_filter_results"][0]["prompt_index"] == 0
    assert role["choices"][0]["delta"] == {"content": "", "refusal": None, "role": "assistant"}
    assert finish["choices"][0]["finish_reason"] == "length" and finish["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["model"] == "gpt-5-mini-2025-08-07"
    assert usage["usage"]["completion_tokens"] == 50
    assert usage["usage"]["completion_tokens_details"]["reasoning_tokens"] == 50
    assert done == "[DONE]"


def test_the_sdk_reads_an_empty_streamed_answer_at_length(aoai):
    chunks = list(aoai.sdk().chat.completions.create(model="o4-mini", messages=HELLO, stream=True,
                                                       max_completion_tokens=64, reasoning_effort="high",
                                                       stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 64
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 64


def test_visible_tokens_get_what_reasoning_leaves_of_the_limit(aoai):
    answer = post(aoai, {"max_completion_tokens": 64 + 5, "reasoning_effort": "low"}, "gpt-5-mini").json()
    content = answer["choices"][0]["message"]["content"]
    assert content and visible_tokens(content, "gpt-5-mini") == 5
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 69
    assert answer["usage"]["completion_tokens_details"]["reasoning_tokens"] == 64
    events = sse(aoai, {"max_completion_tokens": 64 + 5, "reasoning_effort": "low"}, "gpt-5-mini")
    pieces = [e["choices"][0]["delta"]["content"] for e in events[2:-3]]
    assert len(pieces) == 5 and events[-3]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens"] == 69


def test_tool_call_answers_bill_reasoning_too(aoai):
    messages = [{"role": "user", "content": "What is 12*(3+4)?"}]
    answer = aoai.sdk().chat.completions.create(model="gpt-5-mini", messages=messages, tools=[CALCULATOR],
                                                reasoning_effort="minimal", max_completion_tokens=2000)
    choice = answer.choices[0]
    [call] = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"expression": "12*(3+4)"}
    assert answer.usage.completion_tokens_details.reasoning_tokens == 16
    assert answer.usage.completion_tokens == 16 + call_tokens("calculator", call.function.arguments)
    streamed = list(aoai.sdk().chat.completions.create(model="gpt-5-mini", messages=messages, tools=[CALCULATOR],
                                                         reasoning_effort="low", max_completion_tokens=2000,
                                                         stream=True, stream_options={"include_usage": True}))
    assert streamed[-2].choices[0].finish_reason == "tool_calls"
    assert streamed[-1].usage.completion_tokens_details.reasoning_tokens == 64
    assert streamed[-1].usage.completion_tokens == answer.usage.completion_tokens - 16 + 64
    cut = aoai.sdk().chat.completions.create(model="gpt-5-mini", messages=messages, tools=[CALCULATOR],
                                             reasoning_effort="low", max_completion_tokens=60)
    assert cut.choices[0].finish_reason == "length" and not cut.choices[0].message.tool_calls
    assert cut.usage.completion_tokens == 60 and cut.usage.completion_tokens_details.reasoning_tokens == 60


def test_reasoning_adds_no_delay(aoai):
    answer = post(aoai, {"reasoning_effort": "xhigh", "max_completion_tokens": 4000}, "gpt-5.4-nano")
    assert answer.status_code == 200 and answer.elapsed.total_seconds() < 2


# ---- 4. streaming refused where the family cannot stream ----
def test_a_responses_only_family_refuses_chat_completions(extra_rows):
    """gpt-5-pro answers only on the Responses API (tests/integration/test_aoai_v1.py covers its rules there, the
    stream refusal included); Chat Completions is Azure's OperationNotSupported, whatever the catalog row claims."""
    expected = {"code": "OperationNotSupported", "message": "The requested operation is unsupported."}
    for deployment in ("gpt-5-pro", "gpt-5-pro-claims-streaming"):
        for body in ({"stream": True}, {"stream": False, "max_completion_tokens": 4000}):
            answer = post(extra_rows, body, deployment)
            assert answer.status_code == 400 and answer.json()["error"] == expected


# ---- 5. at most 10 images ----
@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-5-mini", "o4-mini"])
def test_more_than_ten_images_is_a_400(aoai, deployment):
    error = error_of(post(aoai, {"messages": images_message(11)}, deployment))
    assert error == {"message": "Too many images in request. Max is 10.", "type": "invalid_request_error",
                     "param": "messages", "code": "BadRequest"}
    accepted = post(aoai, {"messages": images_message(10), "max_completion_tokens": 4000}, deployment)
    assert accepted.status_code == 200 and "I received 10 images" in accepted.json()["choices"][0]["message"]["content"]


def test_images_split_over_several_messages_count_together(aoai):
    messages = images_message(6) + [{"role": "assistant", "content": "Seen."}] + images_message(5)
    assert error_of(post(aoai, {"messages": messages}, "gpt-4o"))["message"] == "Too many images in request. Max is 10."


# ---- the family decides, not the catalog row ----
def test_a_row_claiming_more_than_its_model_family_still_gets_azures_400s(extra_rows):
    assert error_of(post(extra_rows, {"temperature": 0.2}, "o4-mini-claims-classic")) == only_default("temperature", "0.2")
    assert error_of(post(extra_rows, {"max_tokens": 50}, "o4-mini-claims-classic"))["param"] == "max_tokens"
    claimed_efforts = post(extra_rows, {"reasoning_effort": "low"}, "gpt-4o-claims-efforts")
    assert error_of(claimed_efforts) == unsupported_parameter("reasoning_effort")
    assert error_of(post(extra_rows, {"messages": images_message(11)}, "gpt-4o-claims-efforts"))["message"] == (
        "Too many images in request. Max is 10.")
    assert "does not support image input" in error_of(
        post(extra_rows, {"messages": images_message(1)}, "gpt-35-claims-images"))["message"]
    # And the family's reasoning applies to a row that says it has none: o4-mini bills medium by default.
    answer = post(extra_rows, {"max_completion_tokens": 4000}, "o4-mini-claims-classic").json()
    assert answer["usage"]["completion_tokens_details"]["reasoning_tokens"] == 256
    # A classic model stays classic whatever the row says: temperature and max_tokens are accepted, no reasoning.
    classic = post(extra_rows, {"temperature": 0.2, "max_tokens": 30}, "gpt-4o-claims-efforts").json()
    assert classic["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


# ---- order of checks: parameters, then context length, then faults ----
def test_parameter_checks_come_before_the_context_length_check(extra_rows):
    long = [{"role": "user", "content": "word " * 5000}]
    refused = error_of(post(extra_rows, {"messages": long, "max_tokens": 10}, "o4-mini-small"))
    assert refused["code"] == "unsupported_parameter"
    assert error_of(post(extra_rows, {"messages": long}, "o4-mini-small"))["code"] == "context_length_exceeded"


def test_parameter_checks_come_before_faults_and_leave_queued_faults_queued(aoai):
    marked = [{"role": "user", "content": "Hello [[fault:500]]"}]
    assert error_of(post(aoai, {"messages": marked, "temperature": 0.5}, "gpt-5-mini"))["code"] == "unsupported_value"
    aoai.emulator.inject("500")
    assert error_of(post(aoai, {"presence_penalty": 1}, "o4-mini"))["code"] == "unsupported_parameter"
    assert post(aoai, {}, "o4-mini").status_code == 500


# ---- 6. classic models as before ----
def test_gpt_4o_still_accepts_temperature_max_tokens_and_sampling(aoai):
    body = {"temperature": 0.2, "top_p": 0.5, "presence_penalty": 0.5, "frequency_penalty": 0.1, "max_tokens": 40,
            "logit_bias": {"1234": -5}}
    answer = post(aoai, body, "gpt-4o").json()
    content = answer["choices"][0]["message"]["content"]
    assert content.startswith("You said: Hello emulator.") and answer["model"] == "gpt-4o-2024-11-20"
    assert answer["usage"]["completion_tokens"] == visible_tokens(content, "gpt-4o")
    assert answer["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    recorded = aoai.emulator.requests[-1]
    assert recorded["reasoning_effort"] is None and recorded["reasoning_tokens"] == 0
    limited = post(aoai, {"temperature": 0, "max_tokens": 3}, "gpt-4o-mini").json()
    assert limited["choices"][0]["finish_reason"] == "length" and limited["usage"]["completion_tokens"] == 3


# ---- 7. dated model versions ----
@pytest.mark.parametrize("deployment, reported", [("gpt-5-mini", "gpt-5-mini-2025-08-07"),
                                                  ("gpt-5.1", "gpt-5.1-2025-11-13"),
                                                  ("gpt-5.4-nano", "gpt-5.4-nano-2026-03-17"),
                                                  ("o4-mini", "o4-mini-2025-04-16")])
def test_reasoning_models_report_their_dated_version(aoai, deployment, reported):
    assert post(aoai, {"max_completion_tokens": 2000}, deployment).json()["model"] == reported


def test_the_dated_versions_of_the_current_models():
    assert {model: _reported_model(model) for model in ("gpt-5", "gpt-5-nano", "gpt-5.4", "gpt-5.4-mini", "gpt-5.5",
                                                        "o3", "a-model-nobody-dated")} == {
        "gpt-5": "gpt-5-2025-08-07", "gpt-5-nano": "gpt-5-nano-2025-08-07", "gpt-5.4": "gpt-5.4-2026-03-05",
        "gpt-5.4-mini": "gpt-5.4-mini-2026-03-17", "gpt-5.5": "gpt-5.5-2026-04-24", "o3": "o3-2025-04-16",
        "a-model-nobody-dated": "a-model-nobody-dated"}
    assert MODEL_VERSIONS["gpt-4o"] == "2024-11-20"
    assert REASONING_TOKENS == {"none": 0, "minimal": 16, "low": 64, "medium": 256, "high": 1024, "xhigh": 2048}


# ---- the product conforms (through LangChain and the model factory) ----
@pytest.fixture
def unpaced(emulators, monkeypatch):
    monkeypatch.setattr(emulators.aoai.engine, "time_to_first_token", 0.0)
    monkeypatch.setattr(emulators.aoai.engine, "tokens_per_second", None)
    return emulators


def test_the_model_factory_sends_gpt_5_mini_only_what_it_accepts(settings, unpaced):
    from auth.credentials import app_token_provider
    from chains.model_factory import build_chat_model

    deployment = settings.catalog.get("gpt-5-mini")
    model = build_chat_model(settings, deployment, app_token_provider(settings.entra), temperature=0.2,
                             max_output_tokens=50).bind(temperature=0.3, top_p=0.5)
    answer = model.invoke("Hello through LangChain")

    sent = unpaced.aoai.requests[-1]["body"]
    assert not {"temperature", "top_p", "max_tokens"} & set(sent)
    assert sent["max_completion_tokens"] == 50 and sent["reasoning_effort"] == "medium"
    # Accepted; medium reasoning (256 tokens) uses all 50, so the answer is empty at "length", billed as reasoning.
    assert answer.content == "" and answer.response_metadata["finish_reason"] == "length"
    assert answer.response_metadata["model_name"] == "gpt-5-mini-2025-08-07"
    assert answer.usage_metadata["output_tokens"] == 50
    assert answer.usage_metadata["output_token_details"]["reasoning"] == 50

    light = build_chat_model(settings, deployment, app_token_provider(settings.entra), temperature=0.2,
                             max_output_tokens=50, reasoning_effort="minimal").bind(temperature=0.3, top_p=0.5)
    chunks = list(light.stream("Hello through LangChain"))
    final = sum(chunks[1:], chunks[0])
    recorded = unpaced.aoai.requests[-1]
    assert recorded["body"]["stream"] is True and recorded["reasoning_effort"] == "minimal"
    assert not {"temperature", "top_p", "max_tokens"} & set(recorded["body"])
    assert final.text.startswith("You said: Hello through LangChain")
    assert final.usage_metadata["output_tokens"] == 16 + len([c for c in chunks if c.text])
    assert final.usage_metadata["output_token_details"]["reasoning"] == 16
