"""Side by side through the engine with fake models: both answers stream at once, both are audited under their own
chain and deployment, the pair is stored with A kept, the vote keeps B when B wins (store, page and memory alike),
a vote counts once, Stop stores both partial answers, and deleting the conversation keeps the vote, not the text."""
from __future__ import annotations

import time

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from engine import Compared, NewMessage, SideBySide, Sided, TextDelta
from memory.conversation import Conversation
from tests.unit.test_turn_engine import OWNER, WHO, FakeAzure, choices, model_calls, rig, settings  # noqa: F401 - pytest fixtures, used by name

ANSWERS = {"gpt-4o": "alpha one two three four five six", "gpt-4o-mini": "bravo one two three four five six"}


class PacedFake(FakeAzure):
    """Answers by deployment, a word every 10 ms, so two sides are seen to stream at the same time."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.script.calls.append({"kind": "answer", "options": self.options, "messages": messages})
        text = ANSWERS[self.options["deployment"]]
        for word in text.split():
            time.sleep(0.01)
            if run_manager:
                run_manager.on_llm_new_token(word + " ")
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata={"input_tokens": 30, "output_tokens": 7, "total_tokens": 37},
            response_metadata={"finish_reason": "stop"}))


def paced(rig):
    def factory(settings, deployment, provider, *, user_security_context=None, temperature=None,
                max_output_tokens=None, callbacks=None, **_reasoning):
        return PacedFake(script=rig.script, options={"deployment": deployment.name}, callbacks=callbacks)

    rig.engine.model_factory = factory
    return SideBySide(rig.engine)


def pair(rig):
    return (choices(rig.settings), choices(rig.settings, "concise", deployment=rig.settings.catalog.get("gpt-4o-mini")))


def compare(rig, conversation, text="Which is better?"):
    a, b = pair(rig)
    return list(paced(rig).run(WHO, conversation, NewMessage(text), a, b))


def test_both_answers_stream_at_once_are_audited_and_the_pair_is_stored_with_a_kept(rig):
    conversation = Conversation()
    events = compare(rig, conversation)
    deltas = [(i, e.side) for i, e in enumerate(events) if isinstance(e, Sided) and isinstance(e.event, TextDelta)]
    last_a = max(i for i, side in deltas if side == "A")
    first_b = min(i for i, side in deltas if side == "B")
    assert first_b < last_a  # B's text arrives while A is still streaming
    compared = events[-1]
    assert isinstance(compared, Compared) and compared.saved
    assert compared.answers["A"].content.startswith("alpha") and compared.answers["B"].content.startswith("bravo")
    calls = [r for r in model_calls(rig) if r["purpose"] == "answer"]
    assert sorted((r["chain"], r["deployment"]) for r in calls) == [("assistant@1", "gpt-4o"),
                                                                   ("concise@1", "gpt-4o-mini")]
    stored = rig.store.load(OWNER, conversation.id)
    assert [t.role for t in stored.turns] == ["user", "assistant"]
    assert stored.turns[1].content.startswith("alpha") and stored.turns[1].usage.model_calls == 2  # both paid for
    assert stored.turns[1].usage.cost_usd == sum(t.usage.cost_usd for t in compared.answers.values())
    assert conversation.memory[-1].content.startswith("alpha")
    comparison = rig.store.comparison(OWNER, compared.comparison_id)
    assert (comparison.chain_a, comparison.deployment_a, comparison.chain_b, comparison.deployment_b) == (
        "assistant@1", "gpt-4o", "concise@1", "gpt-4o-mini")
    assert comparison.vote is None and comparison.answer_b["content"].startswith("bravo")


def test_a_vote_for_b_keeps_b_everywhere_and_counts_once(rig):
    conversation = Conversation()
    compared = compare(rig, conversation)[-1]
    side_by_side = SideBySide(rig.engine)
    kept = side_by_side.vote(WHO, conversation, compared.comparison_id, "b", choices(rig.settings))
    assert kept.content.startswith("bravo") and kept.chain == "concise@1" and kept.deployment == "gpt-4o-mini"
    assert conversation.turns[-1].content.startswith("bravo")
    assert isinstance(conversation.memory[-1], AIMessage) and conversation.memory[-1].content.startswith("bravo")
    stored = rig.store.load(OWNER, conversation.id)
    assert stored.turns[1].content.startswith("bravo") and stored.turns[1].chain == "concise@1"
    assert stored.memory[-1].content.startswith("bravo")
    assert side_by_side.vote(WHO, conversation, compared.comparison_id, "a", choices(rig.settings)) is None
    [voted] = rig.store.voted_comparisons()
    assert voted.vote == "b" and voted.contender("b") == "concise@1 · gpt-4o-mini"
    [record] = [r for r in rig.audit.records if r["event"] == "comparison_vote"]
    assert record["vote"] == "b" and record["chain_b"] == "concise@1" and len(record["question_sha256"]) == 64
    rig.script.answers.append("next")  # the next turn sees B's answer in memory
    compare(rig, conversation, "And now?")
    assert any("bravo" in m.text for m in rig.script.calls[-1]["messages"])


def test_a_tie_keeps_a_and_another_persons_vote_is_refused(rig):
    from dataclasses import replace

    from memory.store import Owner

    conversation = Conversation()
    compared = compare(rig, conversation)[-1]
    side_by_side = SideBySide(rig.engine)
    stranger = replace(WHO, owner=Owner("oid-eve", "tid-contoso"))
    assert side_by_side.vote(stranger, conversation, compared.comparison_id, "b", choices(rig.settings)) is None
    kept = side_by_side.vote(WHO, conversation, compared.comparison_id, "tie", choices(rig.settings))
    assert kept.content.startswith("alpha") and rig.store.load(OWNER, conversation.id).turns[1].content.startswith("alpha")


def test_stop_stores_both_partial_answers(rig):
    conversation = Conversation()
    a, b = pair(rig)
    events = paced(rig).run(WHO, conversation, NewMessage("Stop soon"), a, b)
    for event in events:
        if isinstance(event, Sided) and isinstance(event.event, TextDelta):
            break
    events.close()
    stored = rig.store.load(OWNER, conversation.id)
    assert stored.turns[1].status == "stopped"
    comparison = rig.store.comparison(OWNER, _only_comparison(rig))
    assert comparison.answer_a["status"] == "stopped" and comparison.answer_b["status"] == "stopped"


def _only_comparison(rig) -> str:
    from sqlalchemy import text

    with rig.store._engine.connect() as db:
        return db.execute(text("select id from comparisons")).scalar_one()


def test_deleting_the_conversation_erases_the_answers_but_keeps_the_vote(rig):
    conversation = Conversation()
    compared = compare(rig, conversation)[-1]
    SideBySide(rig.engine).vote(WHO, conversation, compared.comparison_id, "a", choices(rig.settings))
    assert rig.store.delete(OWNER, conversation.id)
    [voted] = rig.store.voted_comparisons()
    assert voted.vote == "a"
    assert rig.store.comparison(OWNER, compared.comparison_id).answer_a is None
