"""The audit handler with LangChain's fake chat models: one record per call, usage while streaming, no text by default,
stopped calls audited with estimated usage, and the chain comparison computed from the records."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from callbacks.audit import AuditContext, AuditHandler, AuditLog, session_reference
from callbacks.experiments import compare_chains
from chains.turn import AnswerStream
from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE

CONTEXT = AuditContext(user_oid="oid-1", tenant_id="tid-1", source_ip="198.51.100.4", session=session_reference("sid"),
                       conversation_id="c-1", chain="assistant@1", deployment="gpt-4o", identity_mode="app")


class UsageFakeModel(GenericFakeChatModel):
    """Streams like Azure: text chunks, then a last chunk carrying usage_metadata and the finish reason."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        from langchain_core.outputs import ChatGenerationChunk
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
            response_metadata={"finish_reason": "stop"}))


def handler(**changes) -> AuditHandler:
    from dataclasses import replace
    return AuditHandler(replace(CONTEXT, **changes), load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o"), logger=logging.getLogger("test.audit"))


def model(text="one two three four five") -> UsageFakeModel:
    return UsageFakeModel(messages=iter([AIMessage(content=text)]))


def test_one_record_per_streamed_call_with_usage_and_cost():
    audit = handler()
    chunks = list(model().stream([HumanMessage("secret question")], config={"callbacks": [audit]}))
    assert "".join(c.text for c in chunks) == "one two three four five"
    (record,) = audit.records
    assert (record["prompt_tokens"], record["completion_tokens"]) == (12, 5)
    assert Decimal(record["cost_usd"]) == load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o").cost(12, 5)
    assert record["outcome"] == "ok" and record["finish_reason"] == "stop" and record["usage_estimated"] is False
    assert record["reasoning_tokens"] == 0  # a model that does not reason
    assert record["session"] == session_reference("sid") and record["session"] != "sid"
    assert "secret question" not in json.dumps(record)


def test_text_only_when_enabled():
    audit = handler(include_text=True)
    list(model().stream([HumanMessage("secret question")], config={"callbacks": [audit]}))
    assert "secret question" in audit.records[0]["prompt_text"] and audit.records[0]["answer_text"].startswith("one")


def test_stopping_the_stream_audits_a_stopped_call_with_estimated_usage():
    audit = handler()
    stream = AnswerStream(model("alpha beta gamma delta epsilon zeta"), [HumanMessage("q")], {"callbacks": [audit]})
    pieces = stream.text_chunks()
    next(pieces), next(pieces)
    stream.close()
    assert stream.outcome().status == "stopped" and stream.outcome().text.startswith("alpha")
    (record,) = audit.records
    assert record["outcome"] == "stopped" and record["usage_estimated"] is True and record["completion_tokens"] >= 1
    assert record["reasoning_tokens"] == 0  # hidden reasoning cannot be estimated from the text


def test_errors_are_audited_with_their_kind():
    class Broken(GenericFakeChatModel):
        def _stream(self, *args, **kwargs):
            yield from ()
            raise TimeoutError("boom")

    audit = handler()
    with pytest.raises(TimeoutError):
        list(Broken(messages=iter([])).stream("hi", config={"callbacks": [audit]}))
    assert audit.records[0]["outcome"] == "unknown"


def test_chain_comparison_from_records(caplog):
    records = [
        {"event": "model_call", "chain": "a@1", "purpose": "answer", "prompt_tokens": 10, "completion_tokens": 4,
         "cost_usd": "0.001", "latency_ms": 100, "time_to_first_token_ms": 20, "outcome": "ok"},
        {"event": "model_call", "chain": "a@1", "purpose": "answer", "prompt_tokens": 30, "completion_tokens": 8,
         "cost_usd": "0.003", "latency_ms": 300, "time_to_first_token_ms": 40, "outcome": "throttled"},
        {"event": "feedback", "chain": "a@1", "score": 1}, {"event": "feedback", "chain": "a@1", "score": 0},
        {"event": "feedback", "chain": "a@1", "score": 1},
    ]
    (stats,) = compare_chains(records)
    assert (stats.calls, stats.mean_prompt_tokens, stats.mean_ttft_ms, stats.failures) == (2, 20, 30, 1)
    assert stats.total_cost_usd == Decimal("0.004") and stats.thumbs_up_ratio == pytest.approx(2 / 3)


def test_audit_event_carries_the_context_without_text(caplog):
    caplog.set_level(logging.INFO, logger="chat.audit")
    logging.getLogger("chat.audit").propagate = True
    try:
        record = AuditLog().event("sign_in_expired", CONTEXT, outcome="not_sent")
    finally:
        logging.getLogger("chat.audit").propagate = False
    assert record["event"] == "sign_in_expired" and record["user_oid"] == "oid-1" and "include_text" not in record


def reasoning_call(usage_metadata) -> dict:
    """The record of one gpt-5-mini call that ended with this usage (as LangChain's on_llm_end hands it over)."""
    from dataclasses import replace
    from uuid import uuid4

    from langchain_core.outputs import ChatGeneration, LLMResult

    audit = AuditHandler(replace(CONTEXT, deployment="gpt-5-mini"), load_catalog(LOCAL_CATALOG_FILE).get("gpt-5-mini"),
                         logger=logging.getLogger("test.audit"))
    run_id = uuid4()
    audit.on_chat_model_start({}, [[HumanMessage("think first")]], run_id=run_id)
    message = AIMessage(content="42", usage_metadata=usage_metadata, response_metadata={"finish_reason": "stop"})
    audit.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id)
    (record,) = audit.records
    return record


def test_reasoning_tokens_are_audited_apart_and_priced_as_the_output_they_are_part_of():
    record = reasoning_call({"input_tokens": 200, "output_tokens": 1000, "total_tokens": 1200,
                             "output_token_details": {"reasoning": 880}})
    assert (record["prompt_tokens"], record["completion_tokens"], record["reasoning_tokens"]) == (200, 1000, 880)
    gpt5 = load_catalog(LOCAL_CATALOG_FILE).get("gpt-5-mini")
    assert Decimal(record["cost_usd"]) == gpt5.cost(200, 1000)  # reasoning is in the 1,000: never billed twice
    assert Decimal(record["cost_usd"]) != gpt5.cost(200, 1880) and record["usage_estimated"] is False


@pytest.mark.parametrize("tier", [None, "priority", "flex"])
def test_reasoning_tokens_from_azures_usage_as_langchain_reads_it(tier):
    """Azure's `usage.completion_tokens_details.reasoning_tokens`, through langchain-openai's own conversion (a
    priority or flex tier files them under "<tier>_reasoning")."""
    from langchain_openai.chat_models.base import _create_usage_metadata

    azure = {"prompt_tokens": 200, "completion_tokens": 1000, "total_tokens": 1200,
             "completion_tokens_details": {"reasoning_tokens": 880, "audio_tokens": 0},
             "prompt_tokens_details": {"cached_tokens": 0}}
    record = reasoning_call(_create_usage_metadata(azure, tier))
    assert (record["completion_tokens"], record["reasoning_tokens"]) == (1000, 880)


def test_reasoning_tokens_of_a_streamed_azure_answer_reach_the_record():
    """Azure's stream as it comes over the wire (text chunks, then a usage chunk naming the reasoning tokens), read by
    AzureChatOpenAI itself: the record the page, the ledger and the metrics all sum."""
    import httpx
    from langchain_openai import AzureChatOpenAI

    def azure(request: httpx.Request) -> httpx.Response:
        base = {"id": "c-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5-mini"}
        chunks = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": "42"},
                                       "finish_reason": "stop"}]),
                  dict(base, choices=[], usage={"prompt_tokens": 200, "completion_tokens": 1000, "total_tokens": 1200,
                                                "completion_tokens_details": {"reasoning_tokens": 880}})]
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})

    gpt5 = load_catalog(LOCAL_CATALOG_FILE).get("gpt-5-mini")
    audit = AuditHandler(CONTEXT, gpt5, logger=logging.getLogger("test.audit"))
    model_ = AzureChatOpenAI(azure_endpoint="https://contoso.openai.azure.com", api_key="not-a-key",
                             api_version="2024-10-21", azure_deployment="gpt-5-mini", stream_usage=True,
                             http_client=httpx.Client(transport=httpx.MockTransport(azure)))
    assert "".join(c.text for c in model_.stream([HumanMessage("q")], config={"callbacks": [audit]})) == "42"
    (record,) = audit.records
    assert (record["completion_tokens"], record["reasoning_tokens"]) == (1000, 880)
    assert Decimal(record["cost_usd"]) == gpt5.cost(200, 1000) == Decimal("0.00205")
