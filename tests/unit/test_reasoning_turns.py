"""Reasoning deployments in the turn engine: cut-off answers are an outcome of their own (never a blank stored turn,
never a broken memory), the effort chosen reaches the model, summaries run on their own deployment and effort, and
what the deployment refuses never leaves the model factory."""
from __future__ import annotations

from decimal import Decimal

import httpx
import openai
from langchain_core.messages import AIMessage, HumanMessage

from chains.errors import classify
from chains.request_rules import conform, lightest_effort
from config.capabilities import family_capabilities
from engine import NewMessage, Outcome
from engine.turn import NO_ANSWER
from memory.conversation import Conversation
from tests.unit.test_turn_engine import WHO, choices, model_calls, rig, settings  # noqa: F401 - fixtures


def reasoning_choices(settings, **changes):
    return choices(settings, deployment=settings.catalog.get("gpt-5-mini"), temperature=None, **changes)


def test_an_answer_cut_off_before_any_text_is_said_audited_as_length_and_keeps_the_memory_alternating(rig):
    rig.script.answers.append(("length", ""))
    conversation = Conversation()
    events = list(rig.engine.run(WHO, conversation, NewMessage("Explain expenses"), reasoning_choices(rig.settings)))
    outcome = events[-1]
    assert isinstance(outcome, Outcome) and outcome.failure is None and outcome.saved
    answer = outcome.answer
    assert answer.status == "cut_off" and answer.content == ""
    assert answer.notice.startswith("No answer: the model used its whole limit of 500 tokens (80 tokens, 80 of them "
                                    "reasoning)")
    assert answer.usage.reasoning_tokens == 80 and answer.usage.completion_tokens == 80
    (record,) = model_calls(rig)
    assert record["outcome"] == "length" and record["finish_reason"] == "length" and record["reasoning_tokens"] == 80
    assert Decimal(record["cost_usd"]) == rig.settings.catalog.get("gpt-5-mini").cost(30, 80)  # reasoning is output
    ended = [r for r in rig.audit.records if r["event"] == "turn_ended"][-1]
    assert ended["outcome"] == "length"
    # The model remembers the question and that there was no answer: user and assistant still alternate.
    assert [type(m) for m in conversation.memory] == [HumanMessage, AIMessage]
    assert conversation.memory[-1].content == NO_ANSWER
    stored = rig.store.load(WHO.owner, conversation.id)
    assert [(t.role, t.status) for t in stored.turns] == [("user", "complete"), ("assistant", "cut_off")]
    assert stored.turns[-1].notice == answer.notice


def test_a_partial_answer_at_the_limit_is_kept_and_marked_incomplete(rig):
    rig.script.answers.append(("length", "The policy says"))
    conversation = Conversation()
    outcome = list(rig.engine.run(WHO, conversation, NewMessage("Explain"), reasoning_choices(rig.settings)))[-1]
    assert outcome.answer.status == "cut_off" and outcome.answer.content.split() == ["The", "policy", "says"]
    assert "reached its limit of 500 tokens" in outcome.answer.notice and "incomplete" in outcome.answer.notice
    assert conversation.memory[-1].content == outcome.answer.content


def test_the_chosen_effort_reaches_the_model_and_summaries_use_the_lightest(rig):
    conversation = Conversation()
    for n in range(4):
        rig.script.answers.append(f"answer {n}")
        list(rig.engine.run(WHO, conversation, NewMessage(f"question {n}"),
                            reasoning_choices(rig.settings, reasoning_effort="high")))
    answers = [c for c in rig.script.calls if c["kind"] == "answer"]
    summaries = [c for c in rig.script.calls if c["kind"] == "summary"]
    assert {c["options"]["reasoning_effort"] for c in answers} == {"high"}
    assert summaries and {c["options"]["reasoning_effort"] for c in summaries} == {"minimal"}
    # An effort the deployment does not offer falls back to its default.
    assert reasoning_choices(rig.settings, reasoning_effort="none").effective_effort == "medium"
    assert choices(rig.settings, reasoning_effort="high").effective_effort is None  # gpt-4o takes none


def test_summaries_run_on_the_configured_deployment_at_its_prices(rig, monkeypatch):
    monkeypatch.setattr(rig.settings.app, "summary_deployment", "gpt-5.4-nano")
    conversation = Conversation()
    for n in range(4):
        rig.script.answers.append(f"answer {n}")
        list(rig.engine.run(WHO, conversation, NewMessage(f"question {n}"), reasoning_choices(rig.settings)))
    summaries = [c for c in rig.script.calls if c["kind"] == "summary"]
    assert summaries and {c["options"]["deployment"] for c in summaries} == {"gpt-5.4-nano"}
    assert {c["options"]["reasoning_effort"] for c in summaries} == {"none"}
    record = [r for r in model_calls(rig) if r["purpose"] == "summary"][0]
    nano = rig.settings.catalog.get("gpt-5.4-nano")
    assert record["deployment"] == "gpt-5.4-nano"
    assert Decimal(record["cost_usd"]) == nano.cost(record["prompt_tokens"], record["completion_tokens"])
    # ...and the summary's cost is in the turn's total.
    turn = conversation.turns[-1]
    assert turn.usage.model_calls == 2 and turn.usage.cost_usd == sum(
        Decimal(r["cost_usd"]) for r in model_calls(rig)[-2:])


def test_nothing_a_reasoning_deployment_refuses_is_sent_whatever_a_chain_binds(settings):
    mini = settings.catalog.get("gpt-5-mini")
    sent = conform({"temperature": 0.2, "top_p": 0.5, "presence_penalty": 1, "logit_bias": {}, "max_tokens": 999_999,
                    "reasoning_effort": "xhigh", "messages": []}, mini)
    assert sent == {"max_completion_tokens": mini.max_output_tokens, "reasoning_effort": "medium", "messages": []}
    gpt4o = settings.catalog.get("gpt-4o")
    assert conform({"temperature": 0.2, "max_tokens": 100, "reasoning_effort": "low"}, gpt4o) == {
        "temperature": 0.2, "max_completion_tokens": 100}
    assert lightest_effort(settings.catalog.get("o4-mini")) == "low" and lightest_effort(gpt4o) is None


def test_the_model_factory_sends_only_what_the_deployment_takes(settings):
    from chains.model_factory import build_chat_model

    mini = settings.catalog.get("gpt-5-mini")
    model = build_chat_model(settings, mini, lambda: "token", temperature=0.0, max_output_tokens=300,
                             reasoning_effort="low").bind(temperature=0.2, top_p=0.9)
    payload = model.bound._get_request_payload([HumanMessage("hi")], **model.kwargs)
    assert "temperature" not in payload and "top_p" not in payload and "max_tokens" not in payload
    assert payload["max_completion_tokens"] == 300 and payload["reasoning_effort"] == "low"
    params = model.bound._get_invocation_params(**model.kwargs)  # what the audit records
    assert params.get("temperature") is None and params["reasoning_effort"] == "low"


def test_azures_reason_for_a_400_is_named_for_the_person_and_the_audit():
    body = {"error": {"message": "Unsupported value: 'temperature' does not support 0 with this model. Only the "
                                 "default (1) value is supported.", "type": "invalid_request_error",
                      "param": "temperature", "code": "unsupported_value"}}
    response = httpx.Response(400, json=body, request=httpx.Request("POST", "https://x.openai.azure.com/openai"))
    failure = classify(openai.BadRequestError("bad", response=response, body=body["error"]))
    assert failure.kind == "bad_request" and failure.error_code == "unsupported_value"
    assert failure.error_param == "temperature"
    assert "(400: unsupported_value, parameter 'temperature')" in failure.message
    assert "Only the default (1) value is supported" in failure.message and "conversation is kept" in failure.message


def test_every_family_in_the_table_is_consistent():
    for model in ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.4-mini", "gpt-5.5", "o3", "o4-mini",
                  "gpt-4o", "gpt-35-turbo"):
        capabilities = family_capabilities(model)
        assert capabilities.reasoning == (not capabilities.accepts_sampling)
        assert not capabilities.reasoning_efforts or capabilities.default_effort in capabilities.reasoning_efforts
    assert family_capabilities("gpt-5.1").default_effort == "none"  # Azure: gpt-5.1 reasons only when asked
    assert "minimal" not in family_capabilities("o4-mini").reasoning_efforts
