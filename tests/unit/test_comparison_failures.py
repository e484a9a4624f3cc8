"""Side by side when a side fails (engine and store, fake models): a failed answer (a 400, a cut or filtered answer,
an empty answer, one stopped before any text) is never kept and never voted for. With one failed side the good answer
is kept at once (also when A failed), every vote is refused by the engine and the store, and the audit record of the
comparison says which side failed and why; with both failed there is no vote and the person's message is kept."""
from __future__ import annotations

import httpx2
import openai
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from engine import Compared, NewMessage, Outcome, SideBySide, Sided
from engine.comparison import side_failure
from memory.conversation import Conversation, Turn
from store.comparisons import VOTES
from tests.unit.test_side_by_side import ANSWERS, PacedFake, pair
from tests.unit.test_turn_engine import OWNER, WHO, choices, rig, settings  # noqa: F401 - pytest fixtures, used by name

REQUEST = httpx2.Request("POST", "https://localhost/openai/deployments/gpt-4o/chat/completions")


def bad_request() -> openai.BadRequestError:
    body = {"error": {"code": "unsupported_parameter", "param": "temperature",
                      "message": "Unsupported value: 'temperature' does not support 0.7 with this model."}}
    response = httpx2.Response(400, request=REQUEST, json=body)
    return openai.BadRequestError("error", response=response, body=body)


def failing(rig, broken: dict):
    """Deployments in `broken` answer as said there: "400" (Azure's 400), or "length" (no text, finish "length")."""

    class Fake(PacedFake):
        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            how = broken.get(self.options["deployment"])
            if how == "400":
                self.script.calls.append({"kind": "answer", "options": self.options, "messages": messages})
                raise bad_request()
            if how == "length":
                self.script.calls.append({"kind": "answer", "options": self.options, "messages": messages})
                yield ChatGenerationChunk(message=AIMessageChunk(
                    content="", usage_metadata={"input_tokens": 30, "output_tokens": 500, "total_tokens": 530},
                    response_metadata={"finish_reason": "length"}))
                return
            yield from super()._stream(messages, stop, run_manager, **kwargs)

    def factory(settings, deployment, provider, *, user_security_context=None, temperature=None,
                max_output_tokens=None, callbacks=None, **_reasoning):
        return Fake(script=rig.script, options={"deployment": deployment.name}, callbacks=callbacks)

    rig.engine.model_factory = factory
    return SideBySide(rig.engine)


def run(rig, conversation, broken, text="Which is better?"):
    a, b = pair(rig)  # A: assistant on gpt-4o, B: concise on gpt-4o-mini
    return list(failing(rig, broken).run(WHO, conversation, NewMessage(text), a, b))


def ended(rig) -> list[dict]:
    return [r for r in rig.audit.records if r["event"] == "comparison_ended"]


def test_a_400_on_a_keeps_b_at_once_and_every_vote_is_refused(rig):
    conversation = Conversation()
    events = run(rig, conversation, {"gpt-4o": "400"})
    compared = events[-1]
    assert isinstance(compared, Compared) and compared.saved
    assert set(compared.failed) == {"A"} and compared.failed["A"].kind == "bad_request"
    assert not compared.votable and compared.kept == "B"
    failed = compared.answers["A"]
    assert failed.status == "failed" and "400" in failed.notice and "temperature" in failed.notice  # shown, not blank
    # A's failed outcome arrives as its own event while B still streams: the page shows the failure at once
    assert any(isinstance(e, Sided) and e.side == "A" and isinstance(e.event, Outcome) and e.event.failure
               for e in events)
    good = ANSWERS["gpt-4o-mini"]
    assert conversation.turns[-1].content.strip() == good and conversation.memory[-1].content.strip() == good
    stored = rig.store.load(OWNER, conversation.id)
    assert stored.turns[-1].content.strip() == good and stored.turns[-1].chain == "concise@1"

    side_by_side = SideBySide(rig.engine)
    for vote in ("a", "tie", "both_bad", "b"):  # A's side failed: never kept, and nothing to choose between
        assert side_by_side.vote(WHO, conversation, compared.comparison_id, vote, choices(rig.settings)) is None
    comparison = rig.store.comparison(OWNER, compared.comparison_id)
    assert comparison.vote is None and comparison.failed == {"a": "bad_request"}
    assert comparison.message_id == conversation.turns[-1].id
    assert not rig.store.record_vote(OWNER, conversation, comparison, "a", None)  # the store refuses it too
    assert rig.store.comparison(OWNER, compared.comparison_id).vote is None and rig.store.voted_comparisons() == []
    assert conversation.turns[-1].content.strip() == good
    assert rig.store.load(OWNER, conversation.id).turns[-1].content.strip() == good
    assert not [r for r in rig.audit.records if r["event"] == "comparison_vote"]
    [record] = ended(rig)
    assert (record["failed_a"], record["failed_b"], record["kept"], record["vote_open"]) == (
        "bad_request", None, "b", False)
    assert (record["chain_a"], record["deployment_a"]) == ("assistant@1", "gpt-4o")
    assert record["comparison_id"] == compared.comparison_id and len(record["question_sha256"]) == 64


def test_a_400_on_b_keeps_a_and_the_failure_is_in_the_record(rig):
    conversation = Conversation()
    compared = run(rig, conversation, {"gpt-4o-mini": "400"})[-1]
    assert set(compared.failed) == {"B"} and compared.kept == "A"
    assert conversation.turns[-1].content.strip() == ANSWERS["gpt-4o"]
    assert SideBySide(rig.engine).vote(WHO, conversation, compared.comparison_id, "b", choices(rig.settings)) is None
    comparison = rig.store.comparison(OWNER, compared.comparison_id)
    assert comparison.answer_b["failure"] == "bad_request" and "400" in comparison.answer_b["notice"]
    assert "failure" not in comparison.answer_a and comparison.vote is None
    [record] = ended(rig)
    assert (record["failed_a"], record["failed_b"], record["kept"]) == (None, "bad_request", "a")


def test_both_failed_no_vote_and_the_message_is_kept(rig):
    conversation = Conversation()
    compared = run(rig, conversation, {"gpt-4o": "400", "gpt-4o-mini": "length"})[-1]
    assert set(compared.failed) == {"A", "B"} and not compared.votable
    empty = compared.answers["B"]  # no text and finish "length": failed, never a blank "complete" bubble
    assert compared.failed["B"].kind == "empty_answer" and empty.notice and empty.status != "complete"
    user, answer = conversation.turns[-2:]
    assert user.role == "user" and user.content == "Which is better?"
    assert answer.status == "failed" and answer.notice
    for vote in VOTES:
        assert SideBySide(rig.engine).vote(WHO, conversation, compared.comparison_id, vote,
                                           choices(rig.settings)) is None
    assert rig.store.comparison(OWNER, compared.comparison_id).failed == {"a": "bad_request", "b": "empty_answer"}
    [record] = ended(rig)
    assert (record["failed_a"], record["failed_b"], record["vote_open"]) == ("bad_request", "empty_answer", False)


def test_two_good_answers_still_take_a_vote(rig):
    conversation = Conversation()
    compared = run(rig, conversation, {})[-1]
    assert compared.votable and compared.failed == {}
    kept = SideBySide(rig.engine).vote(WHO, conversation, compared.comparison_id, "b", choices(rig.settings))
    assert kept.content.strip() == ANSWERS["gpt-4o-mini"]
    [record] = ended(rig)
    assert (record["failed_a"], record["failed_b"], record["vote_open"]) == (None, None, True)


def test_what_counts_as_a_failed_side():
    def outcome(content, status="complete", notice=None):
        user = Turn(role="user", content="q")
        return Outcome(user, Turn(role="assistant", content=content, status=status, notice=notice), False)

    assert side_failure(outcome("a partial answer", "stopped", "Stopped: partial.")) is None  # partial: votable
    assert side_failure(outcome("a complete answer")) is None
    assert side_failure(outcome("", "stopped", "Stopped before the answer began.")).kind == "stopped"
    assert side_failure(outcome("")).kind == "empty_answer"
    length = side_failure(outcome(""), [{"event": "model_call", "finish_reason": "length"}])
    assert length.kind == "empty_answer" and "length" in length.message
    assert side_failure(outcome("", "cut_off", "No answer: the limit.")).message == "No answer: the limit."
    assert side_failure(outcome("some words", "filtered", "Filtered.")) is not None  # filtered even with text
    assert side_failure(None).kind == "stopped"
