"""Tool calling in the Azure OpenAI emulator over real HTTPS: `tools`/`tool_choice`/`parallel_tool_calls` validated as
Azure does, tool calls answered non-streamed and as streamed deltas (read with the openai SDK and with LangChain),
tool results accepted back and quoted in the answer, usage counting the tool definitions and the arguments."""
from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import openai
import pytest

from localdev.engines import ChatRequest
from localdev.prompt_tokens import count_prompt_tokens, count_tool_tokens, encoding_for_model
from tests.integration.conftest_aoai import API_VERSION, aoai, aoai_stack  # noqa: F401 - pytest fixtures, used by name


def function(name: str, description: str, properties: dict | None = None, required: list[str] | None = None) -> dict:
    parameters = {"type": "object", "properties": properties or {}}
    if required:
        parameters["required"] = required
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


CALCULATOR = function("calculator", "Evaluate an arithmetic expression.",
                      {"expression": {"type": "string", "description": "The arithmetic, e.g. 2*(3+4)."}},
                      ["expression"])
CURRENT_TIME = function("current_time", "The current time in a time zone.",
                        {"timezone": {"type": "string", "description": "An IANA time zone name."}}, ["timezone"])
MY_CALENDAR = function("my_calendar", "The signed-in person's meetings between two moments.",
                       {"start": {"type": "string", "format": "date-time", "description": "From (ISO 8601)."},
                        "end": {"type": "string", "format": "date-time", "description": "Until (ISO 8601)."}},
                       ["start", "end"])
MY_MANAGER = function("my_manager", "The signed-in person's manager.")
FIND_COLLEAGUE = function("find_colleague", "Find colleagues by name.",
                          {"query": {"type": "string", "description": "Part of a name."},
                           "limit": {"type": "integer", "description": "How many at most.", "default": 5}}, ["query"])
TOOLS = [CALCULATOR, CURRENT_TIME, MY_CALENDAR, MY_MANAGER, FIND_COLLEAGUE]
CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")


def ask(text: str) -> list[dict]:
    return [{"role": "system", "content": "You help staff."}, {"role": "user", "content": text}]


def post(aoai, body: dict, deployment: str = "gpt-4o") -> httpx.Response:
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        return http.post(f"{aoai.url}/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}",
                         json=body, headers={"authorization": f"Bearer {aoai.signer.token()}"})


def accumulate(chunks) -> tuple[dict[int, dict], dict[int, list], str | None, object]:
    """Tool calls assembled from streamed deltas by index, the deltas per index, the finish reason and the usage."""
    calls, deltas, finish, usage = {}, {}, None, None
    for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                deltas.setdefault(delta.index, []).append(delta)
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = delta.id or call["id"]
                call["name"] = (delta.function.name if delta.function else None) or call["name"]
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    return calls, deltas, finish, usage


def completion_tokens(*calls: tuple[str, str]) -> int:
    encoding = encoding_for_model("gpt-4o")
    return sum(len(encoding.encode(name)) + len(encoding.encode(arguments)) for name, arguments in calls)


def day_bounds(offset: int) -> set[tuple[str, str]]:
    """(start, end) of today+offset in UTC, for both sides of a midnight that may pass during the test."""
    bounds = set()
    for now in (dt.datetime.now(dt.timezone.utc), dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)):
        day = dt.datetime.combine(now.date() + dt.timedelta(days=offset), dt.time(), dt.timezone.utc)
        bounds.add((day.isoformat(), (day + dt.timedelta(days=1)).isoformat()))
    return bounds


# ---- answers with tool calls ----
def test_non_streamed_tool_call_has_azures_shape_and_usage(aoai):
    messages = ask("What is 12*(3+4)?")
    answer = aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.role == "assistant"
    [call] = choice.message.tool_calls
    assert CALL_ID.match(call.id) and call.type == "function" and call.function.name == "calculator"
    assert json.loads(call.function.arguments) == {"expression": "12*(3+4)"}
    assert choice.model_extra["content_filter_results"]["violence"] == {"filtered": False, "severity": "safe"}
    assert answer.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert answer.usage.prompt_tokens == count_prompt_tokens(messages, "gpt-4o", TOOLS)
    assert answer.usage.prompt_tokens > count_prompt_tokens(messages, "gpt-4o") + 60, "the tool definitions count"
    assert answer.usage.completion_tokens == completion_tokens(("calculator", call.function.arguments))
    recorded = aoai.emulator.requests[-1]
    assert recorded["tools"] == [t["function"]["name"] for t in TOOLS] and recorded["tool_choice"] is None
    assert recorded["tool_calls"] == [{"id": call.id, "type": "function",
                                       "function": {"name": "calculator", "arguments": call.function.arguments}}]


def test_streamed_tool_call_deltas_read_by_the_openai_sdk(aoai):
    messages = ask("What is 12*(3+4)?")
    chunks = list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, stream=True,
                                                       stream_options={"include_usage": True}))
    calls, deltas, finish, usage = accumulate(chunks)
    assert finish == "tool_calls" and list(calls) == [0]
    first, *fragments = deltas[0]
    assert CALL_ID.match(first.id) and first.type == "function" and first.function.name == "calculator"
    assert first.function.arguments == "" and len(fragments) > 3, "arguments arrive in several chunks"
    assert all(d.id is None and d.type is None and d.function.name is None for d in fragments)
    assert json.loads(calls[0]["arguments"]) == {"expression": "12*(3+4)"}
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"]
    assert chunks[-1].choices == [] and usage.prompt_tokens == count_prompt_tokens(messages, "gpt-4o", TOOLS)
    assert usage.completion_tokens == completion_tokens(("calculator", calls[0]["arguments"]))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_raw_stream_of_a_tool_call_is_shaped_like_azures(aoai):
    events = []
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        with http.stream("POST", f"{aoai.url}/openai/deployments/gpt-4o/chat/completions?api-version={API_VERSION}",
                         json={"messages": ask("who is my manager?"), "tools": TOOLS, "stream": True},
                         headers={"authorization": f"Bearer {aoai.signer.token()}"}) as response:
            assert response.status_code == 200
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    first = payloads[1]["choices"][0]
    call_id = first["delta"]["tool_calls"][0]["id"]
    assert first["delta"] == {"content": None, "refusal": None, "role": "assistant", "tool_calls": [
        {"index": 0, "id": call_id, "type": "function", "function": {"name": "my_manager", "arguments": ""}}]}
    assert payloads[2]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    assert payloads[-1]["choices"][0] == {"content_filter_results": {}, "finish_reason": "tool_calls", "index": 0,
                                          "logprobs": None, "delta": {}}


def test_several_matching_tools_are_called_in_parallel(aoai):
    messages = ask("What time is it in Tokyo, and what is in my calendar tomorrow?")
    chunks = list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, stream=True,
                                                       stream_options={"include_usage": True}))
    calls, deltas, finish, usage = accumulate(chunks)
    assert finish == "tool_calls" and sorted(calls) == [0, 1]
    assert [calls[0]["name"], calls[1]["name"]] == ["current_time", "my_calendar"]
    assert all(deltas[i][0].id and deltas[i][0].function.name for i in (0, 1)) and calls[0]["id"] != calls[1]["id"]
    assert json.loads(calls[0]["arguments"]) == {"timezone": "Asia/Tokyo"}
    calendar = json.loads(calls[1]["arguments"])
    assert (calendar["start"], calendar["end"]) in day_bounds(1)
    assert usage.completion_tokens == completion_tokens(*((c["name"], c["arguments"]) for c in calls.values()))

    answer = aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    assert [c.function.name for c in answer.choices[0].message.tool_calls] == ["current_time", "my_calendar"]
    single = aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS,
                                                parallel_tool_calls=False)
    assert [c.function.name for c in single.choices[0].message.tool_calls] == ["current_time"]
    assert aoai.emulator.requests[-1]["body"]["parallel_tool_calls"] is False


def test_arguments_follow_each_tools_schema(aoai):
    answer = aoai.sdk().chat.completions.create(model="gpt-4o", tools=TOOLS,
                                                messages=ask("Please find my colleague Grace Hopper."))
    [call] = answer.choices[0].message.tool_calls
    assert call.function.name == "find_colleague"
    assert json.loads(call.function.arguments) == {"query": "Grace Hopper"}, "required properties only"
    answer = aoai.sdk().chat.completions.create(model="gpt-4o", tools=TOOLS, messages=ask("Check my calendar"))
    calendar = json.loads(answer.choices[0].message.tool_calls[0].function.arguments)
    assert (calendar["start"], calendar["end"]) in day_bounds(0), "required start/end default to today"
    answer = aoai.sdk().chat.completions.create(model="gpt-4o", tools=TOOLS, messages=ask("what time is it?"))
    assert json.loads(answer.choices[0].message.tool_calls[0].function.arguments) == {"timezone": "UTC"}


# ---- tool_choice ----
def test_tool_choice_none_answers_in_text_and_auto_without_a_match_too(aoai):
    for choice in ("none", "auto"):
        text = "What is 2+2?" if choice == "none" else "Hello there"
        answer = aoai.sdk().chat.completions.create(model="gpt-4o", messages=ask(text), tools=TOOLS, tool_choice=choice)
        assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.tool_calls is None
        assert answer.choices[0].message.content.startswith(f"You said: {text}.")
        assert answer.usage.prompt_tokens == count_prompt_tokens(ask(text), "gpt-4o", TOOLS)


def test_tool_choice_required_and_named_force_a_call(aoai):
    required = aoai.sdk().chat.completions.create(model="gpt-4o", messages=ask("Hello there"), tools=TOOLS,
                                                  tool_choice="required")
    assert [c.function.name for c in required.choices[0].message.tool_calls] == ["calculator"]
    assert required.choices[0].finish_reason == "tool_calls"
    named = aoai.sdk().chat.completions.create(
        model="gpt-4o", messages=ask("What is 2+2 and what time is it?"), tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "find_colleague"}})
    [call] = named.choices[0].message.tool_calls
    assert call.function.name == "find_colleague" and set(json.loads(call.function.arguments)) == {"query"}
    assert aoai.emulator.requests[-1]["tool_choice"] == {"type": "function", "function": {"name": "find_colleague"}}


# ---- tool results back ----
def test_tool_results_are_accepted_and_quoted_in_the_answer(aoai):
    messages = ask("What time is it in Tokyo, and what is in my calendar tomorrow?")
    first = aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    results = {"current_time": "2025-03-05T09:30:00+09:00", "my_calendar": '[{"subject": "Design review"}]'}
    history = messages + [first.choices[0].message.model_dump(exclude_none=True, exclude={"annotations"})]
    history += [{"role": "tool", "tool_call_id": c.id, "content": results[c.function.name]} for c in calls]
    chunks = list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=history, tools=TOOLS, stream=True,
                                                       stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert 'current_time returned "2025-03-05T09:30:00+09:00"' in text
    assert 'my_calendar returned "[{"subject": "Design review"}]"' in text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.prompt_tokens == count_prompt_tokens(history, "gpt-4o", TOOLS)
    recorded = aoai.emulator.requests[-1]
    assert [m["content"] for m in recorded["tool_messages"]] == [results[c.function.name] for c in calls]
    assert recorded["tool_calls"] == []


# ---- Azure's 400s ----
def _assistant_calls(*ids: str) -> dict:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "my_manager", "arguments": "{}"}} for i in ids]}


def _tool(call_id: str | None, content: str = "Grace") -> dict:
    return {"role": "tool", "content": content, **({"tool_call_id": call_id} if call_id else {})}


BAD = {
    "tool without type": ({"tools": [{"function": {"name": "x"}}]}, "tools[0].type", "missing_required_parameter"),
    "tool of another type": ({"tools": [{"type": "retrieval", "function": {"name": "x"}}]}, "tools[0].type",
                             "invalid_value"),
    "tool without function": ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
    "function without name": ({"tools": [{"type": "function", "function": {"description": "d"}}]},
                              "tools[0].function.name", "missing_required_parameter"),
    "name with a space": ({"tools": [function("my tool", "d")]}, "tools[0].function.name", "invalid_value"),
    "name too long": ({"tools": [function("x" * 65, "d")]}, "tools[0].function.name", "string_above_max_length"),
    "parameters not an object schema": (
        {"tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}}]},
        "tools[0].function.parameters", "invalid_function_parameters"),
    "parameters not a JSON schema": (
        {"tools": [{"type": "function",
                    "function": {"name": "x", "parameters": {"type": "object", "properties": []}}}]},
        "tools[0].function.parameters", "invalid_function_parameters"),
    "empty tools": ({"tools": []}, "tools", "empty_array"),
    "tool_choice unknown": ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    "tool_choice names no offered tool": (
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "weather"}}}, "tool_choice",
        "invalid_value"),
    "tool_choice without tools": ({"tool_choice": "auto"}, "tool_choice", None),
    "parallel_tool_calls without tools": ({"parallel_tool_calls": True}, "parallel_tool_calls", None),
    "parallel_tool_calls not a boolean": ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls",
                                          "invalid_type"),
    "tool message without a call before it": (
        {"messages": ask("hi") + [_tool("call_1")]}, "messages.[2].role", None),
    "tool message answering an unknown call": (
        {"messages": ask("hi") + [_assistant_calls("call_1"), _tool("call_1"), _tool("call_2")]},
        "messages.[4].tool_call_id", None),
    "tool message without tool_call_id": (
        {"messages": ask("hi") + [_assistant_calls("call_1"), _tool(None)]}, "messages[3].tool_call_id",
        "missing_required_parameter"),
    "a call left unanswered": (
        {"messages": ask("hi") + [_assistant_calls("call_1", "call_2"), _tool("call_1"),
                                  {"role": "user", "content": "?"}]},
        "messages.[2].role", None),
    "a tool message after the conversation moved on": (
        {"messages": ask("hi") + [_assistant_calls("call_1"), _tool("call_1"), {"role": "assistant", "content": "ok"},
                                  _tool("call_1")]}, "messages.[5].role", None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_tools_and_tool_messages_get_azures_400(aoai, case):
    extra, param, code = BAD[case]
    response = post(aoai, {"messages": ask("What is 2+2?"), **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code), error
    assert aoai.emulator.requests[-1]["body"]["messages"], "a refused request is still recorded"


def test_the_sdk_sees_a_bad_request_with_azures_messages(aoai):
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=ask("hi") + [_tool("call_9")], tools=TOOLS)
    assert caught.value.body["message"] == ("Invalid parameter: messages with role 'tool' must be a response to a "
                                            "preceeding message with 'tool_calls'.")
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=ask("hi") + [_assistant_calls("call_7")],
                                           tools=TOOLS)
    assert caught.value.body["message"].endswith("did not have response messages: call_7")
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=ask("hi"), tool_choice="auto")
    assert "'tool_choice' is only allowed when 'tools' are specified" in caught.value.body["message"]


def test_a_tool_call_cut_by_the_token_limit_ends_with_length(aoai):
    chunks = list(aoai.sdk().chat.completions.create(model="gpt-4o", messages=ask("What is 12*(3+4)?"), tools=TOOLS,
                                                       stream=True, max_completion_tokens=3,
                                                       stream_options={"include_usage": True}))
    calls, _, finish, usage = accumulate(chunks)
    assert finish == "length" and usage.completion_tokens == 3 and calls[0]["name"] == "calculator"


# ---- token counting of tool definitions ----
def test_tool_definitions_count_with_openais_documented_approximation():
    enc = encoding_for_model("gpt-4o")
    tool = function("get_weather", "Weather in a city.", {
        "city": {"type": "string", "description": "The city."},
        "unit": {"type": "string", "description": "Unit", "enum": ["celsius", "fahrenheit"]}}, ["city"])
    expected = (7 + len(enc.encode("get_weather:Weather in a city")) + 3
                + 3 + len(enc.encode("city:string:The city"))
                + 3 - 3 + 3 + len(enc.encode("celsius")) + 3 + len(enc.encode("fahrenheit"))
                + len(enc.encode("unit:string:Unit"))
                + 12)
    assert count_tool_tokens([tool], "gpt-4o") == expected
    assert count_tool_tokens(None, "gpt-4o") == 0
    cl100k = encoding_for_model("gpt-35-turbo")
    plain = function("ping", "Ping.")
    assert count_tool_tokens([plain], "gpt-35-turbo") == 10 + len(cl100k.encode("ping:Ping")) + 12


# ---- LangChain round trip ----
def test_langchain_bind_tools_stream_round_trips_the_wire_format(aoai):
    from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import AzureChatOpenAI

    @tool
    def current_time(timezone: str) -> str:
        """The current time in an IANA time zone."""
        return "09:30"

    @tool
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return "84"

    token = aoai.signer.token()
    model = AzureChatOpenAI(azure_endpoint=aoai.url, azure_deployment="gpt-4o", api_version=API_VERSION,
                            azure_ad_token_provider=lambda: token, model="gpt-4o", max_retries=0, timeout=10)
    aoai.clients.append(model.root_client)
    bound = model.bind_tools([current_time, calculator])
    question = HumanMessage("What is 12*7 and what time is it in Europe/Paris?")
    chunks = list(bound.stream([question]))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert any(len(c.tool_call_chunks) == 1 and c.tool_call_chunks[0]["args"] for c in chunks), "argument fragments"
    final = sum(chunks[1:], chunks[0])
    assert [(c["name"], c["args"]) for c in final.tool_calls] == [
        ("current_time", {"timezone": "Europe/Paris"}), ("calculator", {"expression": "12*7"})]
    assert all(CALL_ID.match(c["id"]) for c in final.tool_calls) and not final.invalid_tool_calls
    assert final.response_metadata["finish_reason"] == "tool_calls"
    assert final.usage_metadata["output_tokens"] == completion_tokens(
        *((c["name"], json.dumps(c["args"], separators=(",", ":"))) for c in final.tool_calls))
    assert aoai.emulator.requests[-1]["tools"] == ["current_time", "calculator"]

    results = [ToolMessage(t.invoke(c["args"]), tool_call_id=c["id"])
               for c, t in zip(final.tool_calls, (current_time, calculator))]
    answer = bound.invoke([question, final, *results])
    assert 'current_time returned "09:30"' in answer.text and 'calculator returned "84"' in answer.text
    assert not answer.tool_calls
    recorded = aoai.emulator.requests[-1]["tool_messages"]
    assert [m["tool_call_id"] for m in recorded] == [c["id"] for c in final.tool_calls]


# ---- the local model ----
def test_the_local_model_says_honestly_that_it_cannot_call_tools(aoai):
    from localdev.llama_engine import local_engine_available

    if local_engine_available() is not None:
        pytest.skip(f"the local model is not installed here: {local_engine_available()}")
    from localdev.llama_engine import LlamaEngine

    engine = LlamaEngine(max_waiting=0)
    request = ChatRequest(deployment=aoai.emulator.catalog.get("gpt-4o"), messages=ask("What time is it?"),
                          tools=TOOLS, tool_choice="auto")
    assert engine.admit()
    text = "".join(engine.generate(request))
    assert "cannot call tools" in text and "current_time" in text and "my_calendar" in text
