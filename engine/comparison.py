"""Side by side: one message, two answers streaming at once (two chains, two deployments, or two versions of one
chain), shown blind as A and B. Both calls are audited and costed under their own chain and deployment. The pair is
stored with A kept; the person's vote then keeps the better one (A on a tie or when both are bad), and the memory
follows the kept answer.

A failed side (an error such as a 400, throttling or a timeout; a filtered or cut answer; an answer that ended without
any text, e.g. at the length limit; or one stopped before any text) is never kept and never voted on:

- one side failed: the other answer is kept at once, when the pair is stored. There is nothing to vote on, so no vote is
  asked for or counted: a failure is not a preference, and counting it as a win would rank reliability as quality on
  the leaderboard. The person sees the good answer and, in the other column, why that side failed (still blind);
- both failed: A's failed answer is stored (marked failed, like any failed turn), there is no vote, and the person's
  message stays in the conversation to be sent again.

The vote (here, and the store's `set_vote`) refuses any vote on a comparison with a failed side, and the audit record
`comparison_ended` says which side failed and the failure's kind.

Each side streams in its own worker thread and the events arrive here tagged with their side. Closing the iterator is
Stop for both: each worker closes its own stream (a generator can only be closed by the thread running it), both
partial answers are settled, and the pair is stored.
"""
from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from langchain_core.messages import AIMessage

from callbacks.audit import AuditHandler
from chains.errors import Failure, classify
from engine.events import Event, Outcome, Status
from engine.turn import Asker, Choices, NewMessage, Settlement, TurnEngine
from memory.conversation import Conversation, Turn, Usage
from memory.store import answer_from_record, answer_record
from store.comparisons import VOTES, Comparison, question_hash, with_failure

Side = Literal["A", "B"]
JOIN_SECONDS = 120.0  # Stop waits for each side's stream to end at its next chunk, at most this long


@dataclass(frozen=True)
class Sided:
    """An event of one side's answer."""

    side: Side
    event: Event


@dataclass(frozen=True)
class Compared:
    """Both answers have ended. The conversation keeps A until the vote; `saved` False if storing failed.
    `failed`: the sides whose answer failed ("A"/"B" → the Failure; their answers carry its message as the notice).
    With a failed side there is no vote: `kept` is the side kept at once (the good one; A when both failed)."""

    user: Turn
    answers: dict  # "A"/"B" → the answer Turn as shown
    comparison_id: str
    saved: bool
    failed: dict = field(default_factory=dict)
    kept: Side = "A"

    @property
    def votable(self) -> bool:
        """Both answers can be kept, so the person votes; otherwise the engine has kept the good one (if any)."""
        return not self.failed


class SideBySide:
    def __init__(self, engine: TurnEngine) -> None:
        self.engine = engine

    def run(self, who: Asker, conversation: Conversation, message: NewMessage, a: Choices,
            b: Choices) -> Iterator[Event | Sided | Compared]:
        engine = self.engine
        begun = yield from engine.begin(who, conversation, message, a, also=[b])
        if begun is None:
            return
        audits = {"A": begun.audit, "B": AuditHandler(engine.audit_context(who, conversation, b), b.deployment,
                                                      sink=engine.audit)}
        sent = yield from self._memory(who, conversation, begun, a)
        settled = {"A": Settlement(), "B": Settlement()}
        sides = {side: engine.answer(who, _scratch(conversation), choices, begun, tools=begun.tools[i],
                                     audit=audits[side], sent=sent, settle=settled[side])
                 for i, (side, choices) in enumerate((("A", a), ("B", b)))}
        try:
            yield from _interleave(sides)
        finally:  # also on Stop: both sides have settled; store the pair with A kept
            compared = self._store(who, conversation, begun, a, b, settled, audits)
        yield compared

    def _memory(self, who: Asker, conversation: Conversation, begun, a: Choices) -> Iterator[Event]:
        """Summarise once for both sides (side A's deployment and audit); if that fails, each side tries itself and
        reports the failure in its own column."""
        engine = self.engine
        if len(conversation.memory) + 1 < engine.memory.trigger_messages:
            return [*conversation.memory, begun.new_message]
        yield Status("summarising", "Summarising earlier messages…")
        summarizer = engine.summarizer(who, a, begun.provider, begun.audit)
        try:
            return engine.memory.prepare(conversation.memory, begun.new_message, summarizer)
        except Exception as exc:  # noqa: BLE001 - said by each side's own attempt
            classify(exc)
            return None

    def _store(self, who: Asker, conversation: Conversation, begun, a: Choices, b: Choices,
               settled: dict[str, Settlement], audits: dict[str, AuditHandler]) -> Compared:
        user = begun.user
        answers = {side: settled[side].outcome.answer for side in ("A", "B") if settled[side].outcome is not None}
        for side in ("A", "B"):  # a side that never settled stopped before its answer began
            answers.setdefault(side, Turn(role="assistant", content="", status="stopped",
                                          notice="Stopped before the answer began."))
        failed = {side: f for side in ("A", "B")
                  if (f := side_failure(settled[side].outcome, audits[side].records, answers[side]))}
        answers = {side: _marked(answer, failed.get(side)) for side, answer in answers.items()}
        kept_side: Side = "B" if "A" in failed and "B" not in failed else "A"  # never a failed answer over a good one
        kept = answers[kept_side]
        stored = replace(kept, usage=_combined(answers.values()))  # the conversation pays for both answers
        sent = settled["A"].sent or settled["B"].sent
        if sent is not None and not user.excluded:
            conversation.memory = [*sent, AIMessage(stored.content, id=stored.id)] if stored.content else sent
        comparison = Comparison(
            id=str(uuid.uuid4()), conversation_id=conversation.id, message_id=stored.id, chain_a=a.chain.label,
            deployment_a=a.deployment.name, chain_b=b.chain.label, deployment_b=b.deployment.name,
            answer_a=_record(answers, failed, "A"), answer_b=_record(answers, failed, "B"), vote=None)
        conversation.add(stored)
        records = [*audits["A"].records, *audits["B"].records]
        saved = self.engine.commit(who.owner, conversation, user, stored, a, begun.documents.added,
                                    comparison=comparison, spend=(records, begun.reservation))
        conversation.documents += begun.documents.added
        # The audit record of the pair: which side failed and why, and which answer the conversation keeps.
        self.engine.audit.event("comparison_ended", audits["A"].context, comparison_id=comparison.id,
                                chain_a=comparison.chain_a, deployment_a=comparison.deployment_a,
                                chain_b=comparison.chain_b, deployment_b=comparison.deployment_b,
                                failed_a=failed["A"].kind if "A" in failed else None,
                                failed_b=failed["B"].kind if "B" in failed else None,
                                kept=kept_side.lower(), vote_open=not failed, saved=saved,
                                question_sha256=question_hash(user.content))
        return Compared(user, answers, comparison.id, saved, failed, kept_side)

    def vote(self, who: Asker, conversation: Conversation, comparison_id: str, vote: str,
             choices: Choices) -> Turn | None:
        """Record the vote; keep B's answer if B won (A otherwise) in the conversation, its memory and the store.
        Returns the kept answer, or None if there is no such comparison of this person's, it has a vote already, or
        one of its sides failed (refused: a failed answer is never kept; the good one was kept when the pair was
        stored, and the store refuses the vote too)."""
        if vote not in VOTES:
            raise ValueError(f"a vote is one of {', '.join(VOTES)}")
        comparison = self.engine.store.comparison(who.owner, comparison_id)
        if comparison is None or comparison.vote is not None or comparison.answer_b is None or comparison.failed:
            return None
        index = next((i for i, t in enumerate(conversation.turns) if t.id == comparison.message_id), None)
        kept = None
        if vote == "b" and index is not None:
            shown = conversation.turns[index]
            kept = replace(answer_from_record(comparison.answer_b), id=shown.id, usage=shown.usage)
            conversation.turns[index] = kept
            if conversation.memory and conversation.memory[-1].id == shown.id:
                conversation.memory = [*conversation.memory[:-1], AIMessage(kept.content, id=kept.id)]
        if not self.engine.store.record_vote(who.owner, conversation, comparison, vote, kept):
            return None
        context = replace(self.engine.audit_context(who, conversation, choices), chain=comparison.chain_a,
                          deployment=comparison.deployment_a)
        question = next((t.content for t in reversed(conversation.turns[:index or 0]) if t.role == "user"), "")
        self.engine.audit.event("comparison_vote", context, comparison_id=comparison.id, vote=vote,
                                chain_a=comparison.chain_a, deployment_a=comparison.deployment_a,
                                chain_b=comparison.chain_b, deployment_b=comparison.deployment_b,
                                question_sha256=question_hash(question))
        return kept if kept is not None else (conversation.turns[index] if index is not None else None)


def side_failure(outcome: Outcome | None, records: list[dict] = (), answer: Turn | None = None) -> Failure | None:
    """Why one side's answer cannot be kept, or None if it can: the call failed (any error: 400, throttled, timeout,
    cut), the answer was filtered, it ended without any text (e.g. finish reason "length" before the first word), or it
    was stopped before any text. A stopped answer with text is partial, not failed: it can still win a vote.
    `records`: the side's audit records (they hold the finish reason)."""
    answer = outcome.answer if outcome is not None else answer
    if outcome is not None and outcome.failure is not None:
        return outcome.failure
    if answer is None:
        return Failure("stopped", "Stopped before the answer began.")
    if answer.status in ("failed", "filtered"):
        return Failure("unknown", answer.notice or "This answer failed.")
    if answer.content.strip():
        return None
    if answer.status == "stopped":
        return Failure("stopped", answer.notice or "Stopped before any of the answer arrived.")
    if answer.notice:  # e.g. the engine's own words for an answer cut off at its limit before any text
        return Failure("empty_answer", answer.notice)
    if any(r.get("finish_reason") == "length" for r in records if r.get("event") == "model_call"):
        return Failure("empty_answer", "No answer: the model reached its answer limit (finish reason “length”) "
                       "before writing any text. Raise the answer limit or send again.")
    return Failure("empty_answer", "No answer: the model ended without writing any text. Please send again.")


def _marked(answer: Turn, failure: Failure | None) -> Turn:
    """A failed answer says so: its notice is the failure's message (unless it has its own), never a blank bubble."""
    if failure is None:
        return answer
    return replace(answer, notice=answer.notice or failure.message,
                   status="failed" if answer.status == "complete" else answer.status)


def _record(answers: dict, failed: dict, side: Side) -> dict:
    record = answer_record(answers[side])
    return with_failure(record, failed[side].kind) if side in failed else record


def _scratch(conversation: Conversation) -> Conversation:
    """The conversation as one side sees it: same id and memory, its own list of turns (the pair is stored later)."""
    return Conversation(id=conversation.id, title=conversation.title, memory=list(conversation.memory),
                        settings=dict(conversation.settings), persisted=conversation.persisted,
                        documents=list(conversation.documents))


def _combined(answers) -> Usage | None:
    return Usage.total(t.usage for t in answers)


_DONE = object()


def _interleave(sides: dict[Side, Iterator[Event]]) -> Iterator[Sided]:
    """Both sides' events as they come. Each side runs in its own thread; on Stop (or an error here) every worker
    stops after its current event and closes its own stream."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work(side: Side, stream: Iterator[Event]) -> None:
        try:
            for event in stream:
                events.put((side, event))
                if stop.is_set():
                    break
        finally:
            stream.close()  # settles the answer (stopped if it had not ended)
            events.put((side, _DONE))

    workers = [threading.Thread(target=work, args=item, name=f"side-{item[0]}", daemon=True) for item in sides.items()]
    for worker in workers:
        worker.start()
    try:
        running = len(workers)
        while running:
            side, event = events.get()
            if event is _DONE:
                running -= 1
                continue
            yield Sided(side, event)
    finally:
        stop.set()
        deadline = time.monotonic() + JOIN_SECONDS
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
