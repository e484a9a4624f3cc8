"""The audit handler with LangChain's fake chat models: one record per call, usage while streaming, no text by default,
stopped calls audited with estimated usage, and the chain comparison computed from the records."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from callbacks.audit import AuditContext, AuditHandler, audit_event, session_reference
from callbacks.experiments import compare_chains
from chains.turn import AnswerStream
from config.catalog import load_catalog

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
    return AuditHandler(replace(CONTEXT, **changes), load_catalog().get("gpt-4o"), logger=logging.getLogger("test.audit"))


def model(text="one two three four five") -> UsageFakeModel:
    return UsageFakeModel(messages=iter([AIMessage(content=text)]))


def test_one_record_per_streamed_call_with_usage_and_cost():
    audit = handler()
    chunks = list(model().stream([HumanMessage("secret question")], config={"callbacks": [audit]}))
    assert "".join(c.text for c in chunks) == "one two three four five"
    (record,) = audit.records
    assert (record["prompt_tokens"], record["completion_tokens"]) == (12, 5)
    assert Decimal(record["cost_usd"]) == load_catalog().get("gpt-4o").cost(12, 5)
    assert record["outcome"] == "ok" and record["finish_reason"] == "stop" and record["usage_estimated"] is False
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
        record = audit_event("sign_in_expired", CONTEXT, outcome="not_sent")
    finally:
        logging.getLogger("chat.audit").propagate = False
    assert record["event"] == "sign_in_expired" and record["user_oid"] == "oid-1" and "include_text" not in record
