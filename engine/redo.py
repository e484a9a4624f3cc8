"""Regenerate the last answer, or edit the last question and send it again, with the chain and deployment chosen now.

The exchange being replaced stays as a version (store/versions.py): the page offers 1/2, 2/2 and the person can put
any version back in use. The model's memory always follows the version in use: what was sent before the exchange
(summary and recent messages, unchanged) followed by that version's question and answer. The new call goes through the
same checks, audit, costing and budget as any turn, and the replaced answer's cost stays in the conversation's totals.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

from langchain_core.messages import BaseMessage, HumanMessage

from callbacks.audit import AuditHandler
from engine.events import Blocked, Event, Outcome
from engine.turn import Admitted, Asker, Choices, Settlement, TurnEngine, remembered_answer
from memory.conversation import Conversation, Turn, Version

log = logging.getLogger("chat.engine")

class Redo:
    def __init__(self, engine: TurnEngine) -> None:
        self.engine = engine

    def run(self, who: Asker, conversation: Conversation, choices: Choices,
            edited: str | None = None) -> Iterator[Event]:
        """Ask the last question again (`edited` None) or its edited text. Yields the turn's events like
        `TurnEngine.run` (`Accepted` with the question as now sent, the answer streaming, one `Outcome`), or one
        `Blocked` when it cannot be sent."""
        engine = self.engine
        context = engine.audit_context(who, conversation, choices)
        kind = "regenerate" if edited is None else "edit"
        draft = edited or ""  # an edited question that cannot be sent now is handed back, never lost
        problem = self._refusal(conversation, edited)
        if problem:
            engine.audit.event("message_not_sent", context, outcome="not_sent", reason=f"{kind}_refused")
            yield Blocked("nothing_to_send", problem, draft)
            return
        user, answer = conversation.turns[-2:]
        prior, tail = split_memory(conversation.memory, user, answer)
        question = user.content if edited is None else edited.strip()
        human = next((m for m in tail if m.id == user.id), None) or HumanMessage(user.content, id=user.id)
        human = with_text(human, question)
        provider = yield from engine.signed_in(who, context, draft)
        if provider is None:
            return
        audit = AuditHandler(context, choices.deployment, sink=engine.audit)
        documents = engine.conversation_documents(who, conversation, context, audit, provider)
        prepared = yield from engine.prepare(who, conversation, [choices], question, prior, human, documents, context,
                                             draft)
        if prepared is None:
            return
        (tools,), up_front, allowed = prepared
        asked = replace(user, content=question, excluded=False, versions=[])
        engine.audit.event("exchange_redone", context, kind=kind, message_id=answer.id,
                           version=max(len(answer.versions), 1) + 1)
        yield from engine.accepted(asked, allowed.reservation)
        settled = Settlement()
        admitted = Admitted(asked, human, provider, audit, [tools], up_front, documents, allowed.reservation)
        events = engine.answer(who, conversation, choices, admitted, tools=tools, sent=[*prior, human],
                               settle=settled, answer_id=answer.id)
        try:
            for event in events:
                if isinstance(event, Outcome):
                    break
                yield event
        finally:  # also on Stop: the answer has settled; it becomes the version in use
            events.close()
            stored = (self._store(who, conversation, human, asked, settled.outcome, audit, allowed.reservation)
                      if settled.outcome is not None else None)
        yield stored

    @staticmethod
    def _refusal(conversation: Conversation, edited: str | None) -> str | None:
        """Why the last exchange cannot be asked again, or None."""
        if len(conversation.turns) < 2 or [t.role for t in conversation.turns[-2:]] != ["user", "assistant"]:
            return "There is no answer to ask again."
        if not conversation.persisted:
            return "This exchange was not saved, so it cannot be asked again: send it as a new message."
        user = conversation.turns[-2]
        if edited is not None and not edited.strip():
            return "The edited message is empty, so nothing was sent."
        if edited is None and user.excluded:
            return ("This message was blocked by the content filter and is never sent again: edit it and send the "
                    "edited message instead.")
        if not any(m.id == user.id for m in conversation.memory) and any(
                a.get("kind", "image") == "image" for a in user.attachments):
            return ("The images of this message are not in the conversation's memory, so it cannot be sent again: "
                    "send them again in a new message.")
        return None

    def _store(self, who: Asker, conversation: Conversation, human: HumanMessage, asked: Turn, outcome: Outcome,
               audit: AuditHandler, reservation) -> Outcome:
        user, answer = conversation.turns[-2:]
        prior, before = split_memory(conversation.memory, user, answer)
        versions = list(answer.versions)
        new = []
        if not versions:  # the first redo: the exchange as it was becomes version 1
            versions.append(Version(1, user.content, answer, user.excluded, before))
            new.append(versions[0])
        fresh = outcome.answer
        tail = memory_tail(human, fresh, asked.excluded)
        version = Version(len(versions) + 1, asked.content, fresh, asked.excluded, tail, active=True)
        for each in versions:
            each.active = False
        versions.append(version)
        new.append(version)
        fresh.versions = versions
        conversation.turns[-2:] = [asked, fresh]
        conversation.memory = [*prior, *tail]
        saved = True
        try:
            self.engine.store.use_version(who.owner, conversation, asked, fresh, new,
                                          usage=(self.engine.usage, audit.records, reservation)
                                          if self.engine.usage else None)
        except Exception as exc:  # noqa: BLE001 - said to the person; the usage is still recorded
            log.error("could not store a regenerated answer: %s", type(exc).__name__)
            self.engine.not_saved(who.owner, fresh, "This answer could not be saved.", audit.records, reservation)
            saved = False
        return replace(outcome, user=asked, answer=fresh, saved=saved)

    def use(self, who: Asker, conversation: Conversation, n: int, choices: Choices) -> bool:
        """Put version `n` of the last exchange back in use (its question, answer and memory). False if there is no
        such version, or the exchange is not the last one any more."""
        if len(conversation.turns) < 2:
            return False
        user, answer = conversation.turns[-2:]
        chosen = next((v for v in answer.versions if v.n == n), None)
        if chosen is None or chosen.active:
            return chosen is not None
        prior, _ = split_memory(conversation.memory, user, answer)
        current = next(v for v in answer.versions if v.active)
        before = (list(conversation.turns), list(conversation.memory), current.answer)
        current.answer = replace(answer, versions=[])  # the thumbs given meanwhile stay with it
        for each in answer.versions:
            each.active = each is chosen
        shown = replace(chosen.answer, id=answer.id, versions=answer.versions)
        asked = replace(user, content=chosen.question, excluded=chosen.excluded)
        conversation.turns[-2:] = [asked, shown]
        conversation.memory = [*prior, *chosen.memory_tail]
        try:
            self.engine.store.use_version(who.owner, conversation, asked, shown)
        except Exception:
            conversation.turns, conversation.memory, current.answer = before  # as stored: nothing changed
            for each in answer.versions:
                each.active = each is current
            raise
        self.engine.audit.event("answer_version_chosen", self.engine.audit_context(who, conversation, choices),
                                message_id=answer.id, version=n, versions=len(answer.versions))
        return True


def split_memory(memory: list[BaseMessage], user: Turn, answer: Turn) -> tuple[list[BaseMessage], list[BaseMessage]]:
    """The memory before the exchange, and the exchange's own messages (question and answer as remembered)."""
    ids = {user.id, answer.id}
    return [m for m in memory if m.id not in ids], [m for m in memory if m.id in ids]


def memory_tail(human: HumanMessage, answer: Turn, excluded: bool) -> list[BaseMessage]:
    """What the model remembers of an exchange: nothing of a blocked question, else the question and the answer's text
    (a partial, stopped answer too, as after any turn), or a note that there was none."""
    if excluded:
        return []
    return [human, remembered_answer(answer)]


def with_text(message: HumanMessage, text: str) -> HumanMessage:
    """The person's message with its text replaced and its images kept."""
    if isinstance(message.content, str):
        return HumanMessage(text, id=message.id)
    images = [part for part in message.content if not (isinstance(part, dict) and part.get("type") == "text")]
    return HumanMessage([{"type": "text", "text": text}, *images] if text else images, id=message.id)
