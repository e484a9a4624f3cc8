"""The turn engine with fake models and no page: complete, stopped, failed, filtered, summarised and guard-blocked
turns, each stored once, audited per model call, and reported as events in order."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from sqlalchemy import create_engine

from auth.security_context import SecurityContext
from auth.signin import SignInExpired
from callbacks.audit import AuditLog
from callbacks.chain_stats import ChainStatistics
from chains.registry import get_chain
from config import load_settings
from engine import (
    Accepted,
    Asker,
    Blocked,
    Choices,
    NewMessage,
    Outcome,
    Status,
    StepEnded,
    StepStarted,
    TextDelta,
    TurnEngine,
    UsageUpdate,
)
from localdev import LOCAL_CATALOG_FILE
from memory.conversation import Conversation
from memory.store import ConversationStore, Owner
from memory.summary import CHAT_SUMMARY_MARKER, SummaryBufferMemory, summary_text
from store.files import FileStore

OWNER = Owner("oid-ada", "tid-contoso")
WHO = Asker(OWNER, SecurityContext("Entra Chat", "oid-ada", "tid-contoso", "198.51.100.7"), "session-hash",
            token_provider=lambda: (lambda: "token"))


class Script:
    """What the fake deployment answers next, shared by every model the factory builds, and what it was asked."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[dict] = []


class FakeAzure(BaseChatModel):
    """Streams like Azure (words, then a last chunk with usage and finish reason); `invoke` writes summaries.
    An answer is a str, ("filter", text) for a content-filtered answer, or ("cut", text) for a dropped stream."""

    script: Any
    options: dict = {}

    @property
    def _llm_type(self) -> str:
        return "fake-azure"

    def _get_invocation_params(self, stop=None, **kwargs) -> dict:
        # What callbacks (the audit) read as the call's parameters, as AzureChatOpenAI reports what it sends.
        return {**super()._get_invocation_params(stop=stop, **kwargs), **self.options}

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        prompt = " | ".join(m.text for m in messages)
        summary = CHAT_SUMMARY_MARKER in prompt  # our summary prompt (memory/summary.py); else a non-streamed call (draft)
        self.script.calls.append({"kind": "summary" if summary else "invoke", "options": self.options,
                                  "messages": messages})
        text = "SUMMARY of " + prompt if summary else self.script.answers.pop(0)
        message = AIMessage(text, usage_metadata={"input_tokens": 40, "output_tokens": 8, "total_tokens": 48},
                            response_metadata={"finish_reason": "stop"})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.script.calls.append({"kind": "answer", "options": self.options, "messages": messages})
        answer = self.script.answers.pop(0)
        kind, text = answer if isinstance(answer, tuple) else ("ok", answer)
        for word in text.split():
            if run_manager:
                run_manager.on_llm_new_token(word + " ")
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        if kind == "cut":
            raise ConnectionError("the server dropped the stream")
        if kind == "length":  # a reasoning model that reached its limit: 80 hidden tokens, then the words
            yield ChatGenerationChunk(message=AIMessageChunk(
                content="", usage_metadata={"input_tokens": 30, "output_tokens": 80 + len(text.split()),
                                            "total_tokens": 0, "output_token_details": {"reasoning": 80}},
                response_metadata={"finish_reason": "length"}))
            return
        metadata = {"finish_reason": "content_filter" if kind == "filter" else "stop"}
        if kind == "filter":
            metadata["content_filter_results"] = {"violence": {"filtered": True, "severity": "high"}}
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata={"input_tokens": 30, "output_tokens": len(text.split()), "total_tokens": 0},
            response_metadata=metadata))


@pytest.fixture
def settings(monkeypatch, tmp_path):
    """Settings from a known environment only: whatever the machine sets for the app is removed first."""
    for name in [n for n in os.environ if n.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_"))]:
        monkeypatch.delenv(name)
    for name, value in {"ENTRA_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                        "ENTRA_CLIENT_ID": "3f8a9b1c-2d4e-4f6a-8b0c-1d2e3f4a5b6c",
                        "ENTRA_CLIENT_SECRET": "not-a-real-secret-value",
                        "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com",
                        "APP_SESSION_SECRET": "a-test-session-secret-of-at-least-32-chars",
                        "APP_DATA_DIR": str(tmp_path / "data"),
                        # the local tenant's catalog: reasoning deployments and the classic ones
                        "AZURE_OPENAI_CATALOG_FILE": str(LOCAL_CATALOG_FILE)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return load_settings()


class Audit(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


@pytest.fixture
def rig(settings, tmp_path):
    """An engine on a SQLite store, an audit log captured in memory with the chain statistics listening, and a
    factory of fake models."""
    database = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = ConversationStore(database, FileStore(tmp_path / "images"))
    statistics = ChainStatistics(database)
    logger = logging.getLogger(f"test.engine.{tmp_path.name}")
    logger.propagate, captured = False, Audit()
    logger.setLevel(logging.INFO)
    logger.addHandler(captured)
    script = Script()

    def factory(settings, deployment, provider, *, user_security_context=None, temperature=None,
                max_output_tokens=None, callbacks=None, **reasoning):
        options = {"deployment": deployment.name, "context": user_security_context, "temperature": temperature,
                   "max_output_tokens": max_output_tokens, "token": provider(), **reasoning}
        return FakeAzure(script=script, options=options, callbacks=callbacks)

    engine = TurnEngine(settings, store, AuditLog(logger, [statistics.record]), model_factory=factory)

    class Rig:
        pass

    rig = Rig()
    rig.engine, rig.store, rig.statistics, rig.audit, rig.script, rig.settings = (
        engine, store, statistics, captured, script, settings)
    return rig


def choices(settings, chain="assistant", **changes) -> Choices:
    values = dict(deployment=settings.catalog.get("gpt-4o"), chain=get_chain(chain), max_output_tokens=500,
                  temperature=0.7)
    values.update(changes)
    return Choices(**values)


def model_calls(rig) -> list[dict]:
    return [r for r in rig.audit.records if r["event"] == "model_call"]


def test_a_complete_turn_streams_then_is_stored_and_audited_once(rig):
    rig.script.answers.append("Entra ID is Microsoft's identity service")
    conversation = Conversation()
    events = list(rig.engine.run(WHO, conversation, NewMessage("What is Entra ID?"), choices(rig.settings)))

    assert isinstance(events[0], Accepted) and events[0].turn.content == "What is Entra ID?"
    assert isinstance(events[-1], Outcome)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.split() == "Entra ID is Microsoft's identity service".split()
    assert len([e for e in events if isinstance(e, TextDelta)]) == 6  # streamed word by word, not at the end
    outcome = events[-1]
    assert outcome.saved and outcome.status == "complete" and outcome.failure is None
    assert outcome.answer.usage.prompt_tokens == 30 and outcome.answer.usage.completion_tokens == 6
    assert [e.usage.model_calls for e in events if isinstance(e, UsageUpdate)] == [1]
    # The model call is a step with a duration; the answer step is the one the text came from.
    started = [e for e in events if isinstance(e, StepStarted)]
    ended = [e for e in events if isinstance(e, StepEnded)]
    assert [(s.kind, s.name) for s in started] == [("model", "answer")] and ended[0].id == started[0].id
    assert started[0].input == "What is Entra ID?" and ended[0].duration_ms >= 0 and not ended[0].error
    # Stored in one piece, with the choices it was made with.
    stored = rig.store.load(OWNER, conversation.id)
    assert [(t.role, t.status) for t in stored.turns] == [("user", "complete"), ("assistant", "complete")]
    assert stored.settings == {"deployment": "gpt-4o", "chain": "assistant", "max_output_tokens": 500,
                               "reasoning_effort": None, "show_thinking": True,
                               "temperature": 0.7}
    (record,) = model_calls(rig)
    assert record["outcome"] == "ok" and record["user_oid"] == "oid-ada" and record["source_ip"] == "198.51.100.7"
    assert record["purpose"] == "answer" and record["temperature"] == 0.7
    # The model got the person's identity and security context, and the chain statistics moved.
    call = rig.script.calls[0]["options"]
    assert call["context"]["end_user_id"] == "oid-ada" and call["max_output_tokens"] == 500
    (stats,) = rig.statistics.all()
    assert stats.chain == "assistant@1" and stats.calls == 1 and stats.mean_prompt_tokens == 30


def test_closing_the_events_is_stop_and_keeps_the_partial_answer(rig):
    rig.script.answers.append("one two three four five six seven eight")
    conversation = Conversation()
    events = rig.engine.run(WHO, conversation, NewMessage("count"), choices(rig.settings))
    seen = []
    for event in events:
        seen.append(event)
        if len([e for e in seen if isinstance(e, TextDelta)]) == 2:
            break
    events.close()  # the person pressed Stop

    stored = rig.store.load(OWNER, conversation.id)
    answer = stored.turns[1]
    words = answer.content.split()
    assert answer.status == "stopped" and 2 <= len(words) <= 4 and words == "one two three four".split()[:len(words)]
    assert answer.usage.estimated and "partial" in answer.notice
    (record,) = model_calls(rig)
    assert record["outcome"] == "stopped" and record["usage_estimated"]
    assert conversation.memory[-1].text.split() == words  # the model remembers the partial answer


def test_a_cut_stream_fails_with_a_clear_message_and_the_conversation_intact(rig):
    rig.script.answers.extend(["first answer", ("cut", "half an")])
    conversation = Conversation()
    list(rig.engine.run(WHO, conversation, NewMessage("first"), choices(rig.settings)))
    events = list(rig.engine.run(WHO, conversation, NewMessage("second"), choices(rig.settings)))

    outcome = events[-1]
    assert outcome.status == "failed" and outcome.failure.kind == "stream_cut"
    assert "cut before the answer was complete" in outcome.answer.notice
    assert outcome.answer.content.split() == ["half", "an"]
    stored = rig.store.load(OWNER, conversation.id)
    assert [t.content.strip() for t in stored.turns] == ["first", "first answer", "second", "half an"]
    assert [r["outcome"] for r in model_calls(rig)] == ["ok", "stream_cut"]
    assert rig.statistics.all()[0].failures == 1


def test_an_answer_stopped_by_the_content_filter_is_marked_filtered(rig):
    rig.script.answers.append(("filter", "the start of"))
    conversation = Conversation()
    outcome = list(rig.engine.run(WHO, conversation, NewMessage("tell me"), choices(rig.settings)))[-1]
    assert outcome.status == "filtered" and outcome.failure.kind == "answer_filtered"
    assert "violence" in outcome.answer.notice
    (record,) = model_calls(rig)
    assert record["outcome"] == "answer_filtered" and record["content_filter"] == {"answer": ["violence"]}


def test_memory_is_summarised_when_due_and_the_summary_call_is_audited_not_streamed(rig):
    rig.engine.memory = SummaryBufferMemory(trigger_messages=3, keep_messages=1)
    rig.script.answers.extend(["answer one", "answer two"])
    conversation = Conversation()
    first = list(rig.engine.run(WHO, conversation, NewMessage("question one"), choices(rig.settings)))
    assert not [e for e in first if isinstance(e, Status)]
    events = list(rig.engine.run(WHO, conversation, NewMessage("question two"), choices(rig.settings)))

    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Status") < kinds.index("TextDelta")
    assert next(e for e in events if isinstance(e, Status)).kind == "summarising"
    assert [s.name for s in events if isinstance(s, StepStarted)] == ["summary", "answer"]
    assert "SUMMARY" not in "".join(e.text for e in events if isinstance(e, TextDelta))
    assert [r["purpose"] for r in model_calls(rig)] == ["answer", "summary", "answer"]
    assert events[-1].answer.usage.model_calls == 2  # the summary is part of this turn's cost
    assert "question one" in summary_text(conversation.memory)
    sent = rig.script.calls[-1]["messages"]
    assert "question one" not in " ".join(m.text for m in sent[2:])  # the model sees summary + recent only
    stored = rig.store.load(OWNER, conversation.id)
    assert len(stored.turns) == 4 and summary_text(stored.memory) == summary_text(conversation.memory)


def test_a_message_that_does_not_fit_is_not_sent_and_is_audited(rig):
    small = rig.settings.catalog.get("gpt-4o").model_copy(update={"context_window": 600})
    conversation = Conversation()
    events = list(rig.engine.run(WHO, conversation, NewMessage("a long question " * 40),
                                 choices(rig.settings, deployment=small)))
    (blocked,) = events
    assert isinstance(blocked, Blocked) and blocked.reason == "context_too_long"
    assert blocked.check.over_by > 0 and f"{blocked.check.over_by} tokens over" in blocked.message
    assert blocked.draft.startswith("a long question")
    assert not rig.script.calls and not conversation.turns and rig.store.load(OWNER, conversation.id) is None
    (record,) = rig.audit.records
    assert record["event"] == "context_guard" and record["over_by"] == blocked.check.over_by


def test_an_expired_sign_in_sends_nothing_keeps_the_draft_and_is_audited(rig):
    def expired():
        raise SignInExpired("refresh token revoked")

    who = Asker(OWNER, WHO.security_context, "session-hash", token_provider=expired)
    (blocked,) = list(rig.engine.run(who, Conversation(), NewMessage("still there?"), choices(rig.settings)))
    assert blocked.reason == "sign_in_expired" and blocked.draft == "still there?"
    assert rig.audit.records[0]["event"] == "sign_in_expired" and not rig.script.calls


def test_images_for_a_text_only_deployment_are_refused_naming_the_ones_that_see(rig):
    import io

    from PIL import Image

    from engine import Upload

    png = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(png, format="PNG")
    text_only = rig.settings.catalog.get("gpt-35-turbo")
    (blocked,) = list(rig.engine.run(WHO, Conversation(), NewMessage("look", [Upload("a.png", png.getvalue())]),
                                     choices(rig.settings, deployment=text_only)))
    assert blocked.reason == "images_not_accepted" and "GPT-4o" in blocked.message and blocked.draft == "look"
    assert rig.audit.records[-1]["reason"] == "images_not_accepted" and not rig.script.calls


def test_bad_files_are_named_audited_by_reason_and_the_text_still_goes(rig):
    from engine import Upload

    rig.script.answers.append("an answer without the broken file")
    conversation = Conversation()
    events = list(rig.engine.run(WHO, conversation, NewMessage("what is this?", [Upload("scan.png", b"not a png")]),
                                 choices(rig.settings)))
    user = events[0].turn
    assert "scan.png" in user.notice and events[-1].status == "complete"
    rejected = next(r for r in rig.audit.records if r["event"] == "images_rejected")
    assert rejected["accepted"] == 0 and len(rejected["reasons"]) == 1 and "scan.png" not in str(rejected)


def test_entra_unreachable_while_checking_the_sign_in_is_explained_and_audited(rig):
    def unreachable():
        raise ConnectionError("login.microsoftonline.com unreachable")

    who = Asker(OWNER, WHO.security_context, "session-hash", token_provider=unreachable)
    conversation = Conversation()
    (blocked,) = list(rig.engine.run(who, conversation, NewMessage("hello?"), choices(rig.settings)))
    assert blocked.reason == "sign_in_unavailable" and "could not be reached" in blocked.message
    assert blocked.draft == "hello?" and not conversation.turns and not rig.script.calls
    assert rig.audit.records[-1] == {**rig.audit.records[-1], "event": "message_not_sent",
                                     "reason": "sign_in_unavailable", "error": "ConnectionError"}


def test_a_two_call_chain_reports_the_draft_step_and_costs_both_calls(rig):
    rig.script.answers.extend(["a draft answer", "the refined answer"])
    events = list(rig.engine.run(WHO, Conversation(), NewMessage("explain"), choices(rig.settings, "draft_refine")))
    assert [s.name for s in events if isinstance(s, StepStarted)] == ["draft", "answer"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).split() == ["the", "refined", "answer"]
    assert events[-1].answer.usage.model_calls == 2
    assert [r["purpose"] for r in model_calls(rig)] == ["draft", "answer"]


def test_a_store_failure_still_reports_the_answer_and_says_it_was_not_saved(rig, monkeypatch):
    rig.script.answers.append("an answer")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(rig.store, "commit_turn", broken)
    outcome = list(rig.engine.run(WHO, Conversation(), NewMessage("hello"), choices(rig.settings)))[-1]
    assert not outcome.saved and "could not be saved" in outcome.answer.notice
    assert outcome.answer.content.strip() == "an answer"


def test_feedback_is_kept_audited_and_a_changed_vote_is_counted_once(rig):
    rig.script.answers.append("rate me")
    conversation = Conversation()
    outcome = list(rig.engine.run(WHO, conversation, NewMessage("q"), choices(rig.settings, "concise")))[-1]
    rig.engine.record_feedback(WHO, conversation, outcome.answer, 1, choices(rig.settings))
    rig.engine.record_feedback(WHO, conversation, outcome.answer, 0, choices(rig.settings))
    (stats,) = rig.statistics.all()
    assert stats.chain == "concise@1" and (stats.thumbs_up, stats.thumbs_down) == (0, 1)
    assert rig.store.load(OWNER, conversation.id).turns[1].feedback == 0
    votes = [r for r in rig.audit.records if r["event"] == "feedback"]
    assert [(v["score"], v["previous_score"], v["chain"]) for v in votes] == [(1, None, "concise@1"),
                                                                            (0, 1, "concise@1")]
