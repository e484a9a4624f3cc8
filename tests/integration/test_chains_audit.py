"""Chains, the answer stream and the audit log against the Azure OpenAI emulator: one record per model call, honest
outcomes for every failure, Stop keeps the partial answer, and no secret in any record."""
from __future__ import annotations

import json
import logging

import pytest
from langchain_core.messages import HumanMessage

from auth.credentials import app_token_provider
from callbacks.audit import AUDIT_LOGGER, AuditContext, AuditHandler, configure_audit_log
from chains.model_factory import build_chat_model
from chains.registry import REGISTRY, get_chain
from chains.turn import AnswerStream

CONTEXT = dict(user_oid="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", tenant_id="7d3b4c2a-5e6f-4a1b-9c8d-0e1f2a3b4c5d",
               source_ip="203.0.113.9", session="0123456789abcdef", conversation_id="conv-1",
               deployment="gpt-4o", identity_mode="app")


@pytest.fixture
def run(settings, emulators, monkeypatch):
    """Run one chain turn; returns (stream, outcome, audit records, recorded requests of this turn)."""
    def _run(text="Tell me about Entra ID", chain="assistant", *, stop_after=None, include_text=False, retries=None):
        if retries is not None:
            monkeypatch.setenv("AZURE_OPENAI_MAX_RETRIES", str(retries))
        from config import load_settings
        current = load_settings()
        spec, deployment = get_chain(chain), current.catalog.get("gpt-4o")
        model = build_chat_model(current, deployment, app_token_provider(current.entra), temperature=0.7)
        audit = AuditHandler(AuditContext(**CONTEXT, chain=spec.label, include_text=include_text), deployment)
        before = len(emulators.aoai.requests)
        stream = AnswerStream(spec.build(model), {"messages": [HumanMessage(text)]}, {"callbacks": [audit]})
        pieces = []
        for piece in stream.text_chunks():
            pieces.append(piece)
            if stop_after is not None and len(pieces) >= stop_after:
                break
        stream.close()
        return stream, stream.outcome(), audit.records, emulators.aoai.requests[before:], "".join(pieces)
    return _run


def test_registry_offers_four_versioned_chains():
    assert list(REGISTRY) == ["assistant", "concise", "draft_refine", "agent"]
    assert [spec.label for spec in REGISTRY.values()] == ["assistant@1", "concise@1", "draft_refine@1", "agent@1"]
    assert [spec.uses_tools for spec in REGISTRY.values()] == [False, False, False, True]
    assert get_chain("retired-chain").name == "assistant"


def test_assistant_streams_and_writes_one_complete_record(run):
    stream, outcome, records, requests, shown = run()
    assert outcome.status == "complete" and outcome.text == shown and len(requests) == 1
    (record,) = records
    assert record["outcome"] == "ok" and record["purpose"] == "answer" and record["finish_reason"] == "stop"
    assert record["prompt_tokens"] == requests[0]["usage"]["prompt_tokens"]
    assert record["completion_tokens"] == requests[0]["usage"]["completion_tokens"]
    assert record["azure_request_id"] == requests[0]["request_id"]
    assert record["chain"] == "assistant@1" and record["identity_mode"] == "app" and record["source_ip"] == "203.0.113.9"
    assert float(record["cost_usd"]) > 0 and record["time_to_first_token_ms"] <= record["latency_ms"]
    assert "prompt_text" not in record and "Entra ID" not in json.dumps(record)


def test_concise_chain_sends_its_own_temperature(run):
    *_, requests, _ = run(chain="concise")
    assert requests[0]["body"]["temperature"] == 0.2
    assert "three sentences" in requests[0]["body"]["messages"][0]["content"]
    *_, requests, _ = run(chain="assistant")
    assert requests[0]["body"]["temperature"] == 0.7


def test_draft_refine_makes_two_calls_and_streams_only_the_refined_answer(run):
    stream, outcome, records, requests, shown = run(chain="draft_refine")
    assert len(requests) == 2 and [r["purpose"] for r in records] == ["draft", "answer"]
    assert not requests[0]["body"].get("stream") and requests[1]["body"]["stream"] is True
    assert records[0]["time_to_first_token_ms"] is None  # nothing of the draft streamed anywhere
    draft_answer = requests[0]["body"]["messages"][-1]["content"]
    assert "Draft answer:" in requests[1]["body"]["messages"][0]["content"]
    assert shown == outcome.text and len(stream.chunks) > 3 and draft_answer


def test_text_goes_into_records_only_when_enabled(run):
    *_, records, _, _ = run(include_text=True)
    assert "Tell me about Entra ID" in records[0]["prompt_text"] and records[0]["answer_text"]


def test_stop_keeps_the_partial_answer_and_still_records_estimated_usage(run):
    stream, outcome, records, requests, shown = run("Please write a long answer " * 5, stop_after=3)
    assert outcome.status == "stopped" and outcome.text == shown and shown
    (record,) = records
    assert record["outcome"] == "stopped" and record["usage_estimated"] is True
    assert record["completion_tokens"] >= 1 and record["prompt_tokens"] > 0


@pytest.mark.parametrize("fault, kind, status", [
    ("500", "server_error", "failed"),
    ("context_length", "context_too_long", "failed"),
    ("cut", "stream_cut", "failed"),
])
def test_failures_are_classified_and_audited(run, emulators, fault, kind, status):
    emulators.aoai.inject(fault, count=3)
    stream, outcome, records, requests, shown = run(retries=0)
    assert outcome.status == status and outcome.failure.kind == kind
    assert [r["outcome"] for r in records] == [kind]
    if fault == "cut":
        assert shown and outcome.text == shown  # the partial answer is kept
        assert records[0]["usage_estimated"] is True


def test_prompt_filter_names_the_category(run, emulators):
    emulators.aoai.inject("prompt_filter", count=1, category="hate")
    _, outcome, records, _, _ = run(retries=0)
    assert outcome.failure.kind == "prompt_filtered" and outcome.failure.categories == ("hate",)
    assert "(hate)" in outcome.failure.message
    assert records[0]["outcome"] == "prompt_filtered" and records[0]["content_filter"] == {"prompt": ["hate"]}
    assert records[0]["status_code"] == 400 and records[0]["azure_request_id"]


def test_answer_filter_keeps_the_partial_answer(run, emulators):
    emulators.aoai.inject("completion_filter", count=1, category="violence")
    _, outcome, records, _, shown = run()
    assert outcome.status == "filtered" and outcome.text == shown and shown
    assert outcome.failure.kind == "answer_filtered" and "violence" in outcome.failure.message
    assert records[0]["outcome"] == "answer_filtered" and records[0]["finish_reason"] == "content_filter"
    assert records[0]["content_filter"] == {"answer": ["violence"]}


def test_429_is_retried_honouring_retry_after(run, emulators):
    emulators.aoai.inject("429", count=1, retry_after=1)
    _, outcome, records, requests, _ = run(retries=2)
    assert outcome.status == "complete" and len(requests) == 2  # one refused, one answered
    assert [r["outcome"] for r in records] == ["ok"]


def test_429_after_retries_says_how_long_to_wait(run, emulators):
    emulators.aoai.inject("429", count=3, retry_after=9)
    _, outcome, records, _, _ = run(retries=0)
    assert outcome.failure.kind == "throttled" and outcome.failure.retry_after_seconds == 9
    assert "wait 9 seconds" in outcome.failure.message and records[0]["status_code"] == 429


def test_timeout_is_classified(run, emulators, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_TIMEOUT_SECONDS", "1")
    emulators.aoai.inject("timeout", count=1, seconds=3)
    _, outcome, records, _, _ = run(retries=0)
    assert outcome.failure.kind == "timeout" and records[0]["outcome"] == "timeout"


def test_audit_file_is_json_lines_without_tokens(run, settings, emulators, tmp_path):
    logger = configure_audit_log(tmp_path)
    try:
        run()
        line = (tmp_path / "audit" / "audit.jsonl").read_text().strip().splitlines()[-1]
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    record = json.loads(line)
    assert record["event"] == "model_call" and record["user_oid"] == CONTEXT["user_oid"]
    assert not any(token in line for token in emulators.entra.issued)
    assert logging.getLogger(AUDIT_LOGGER).propagate is False
