"""A conversation as the page shows it, and the LangChain messages the model sees for it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from memory.documents import AttachedDocument


@dataclass
class Usage:
    """Token counts of one answer as Azure reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated: bool = False  # a stopped answer never gets Azure's usage: tiktoken estimated it
    model_calls: int = 1  # chat model calls (answers, drafts, summaries)
    embedding_tokens: int = 0  # documents indexed and questions searched; their cost is in cost_usd
    # Hidden reasoning tokens of reasoning models (gpt-5.x, o-series): part of completion_tokens (billed as output,
    # already in cost_usd), counted apart so the page can say how much of the output nobody sees.
    reasoning_tokens: int = 0


@dataclass
class Turn:
    """One message in the conversation; failed or stopped answers stay visible and are marked."""

    role: Literal["user", "assistant"]
    content: str
    deployment: str | None = None
    chain: str | None = None  # name@version that produced this answer
    usage: Usage | None = None
    # cut_off: the answer reached its limit (finish_reason "length"); its notice says how much was reasoning
    status: Literal["complete", "failed", "stopped", "filtered", "cut_off"] = "complete"
    notice: str | None = None
    excluded: bool = False  # a message the content filter blocked: shown, never sent to the model again
    feedback: int | None = None  # thumbs: 1 up, 0 down
    # Images sent with a person's message: {"ref": "stored:<sha256>.<ext>", "name", "width", "height", "detail", "tokens"}
    attachments: list[dict] = field(default_factory=list)
    # What ran before the answer (tool calls, drafts, summaries): {"kind", "name", "input", "output", "duration_ms",
    # "error"}; kept so a resumed conversation shows them.
    steps: list[dict] = field(default_factory=list)
    # Document passages the answer cited: {"n", "file", "where", "text", "ref"}, shown under the answer.
    sources: list[dict] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # An answer regenerated, or whose question was edited and resent: every version, one of them (this one) in use.
    versions: list[Version] = field(default_factory=list)

    @property
    def version_in_use(self) -> int | None:
        return next((v.n for v in self.versions if v.active), None)


@dataclass
class Version:
    """One version of an exchange (the last question and its answer): what was asked, what was answered, and what the
    model remembers of the pair when this version is in use."""

    n: int
    question: str
    answer: Turn
    excluded: bool = False  # the question was blocked by the content filter
    memory_tail: list[BaseMessage] = field(default_factory=list)
    active: bool = False


@dataclass
class Conversation:
    """The whole history the person sees, and separately what the model remembers (summary + recent messages)."""

    turns: list[Turn] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    title: str = ""
    memory: list[BaseMessage] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    persisted: bool = False
    # Documents attached to the conversation (memory/documents.py): they stay retrievable whatever the summary says.
    documents: list[AttachedDocument] = field(default_factory=list)

    def totals(self) -> Usage:
        """Tokens and cost of every model call in this conversation (drafts, summaries and replaced answers included)."""
        total = Usage(model_calls=0)
        replaced = [v.answer.usage for t in self.turns for v in t.versions if not v.active]  # paid for all the same
        for usage in [*(t.usage for t in self.turns), *replaced]:
            if usage:
                total.prompt_tokens += usage.prompt_tokens
                total.completion_tokens += usage.completion_tokens
                total.reasoning_tokens += usage.reasoning_tokens
                total.cost_usd += usage.cost_usd
                total.model_calls += usage.model_calls
                total.embedding_tokens += usage.embedding_tokens
                total.estimated = total.estimated or usage.estimated
        return total

    def add(self, turn: Turn) -> Turn:
        self.turns.append(turn)
        return turn

    def model_messages(self) -> list[BaseMessage]:
        """The whole history as model messages (before any summarising): user messages and complete or partial
        answers, never error notices or blocked messages. Each carries its turn id."""
        messages: list[BaseMessage] = []
        for turn in self.turns:
            if turn.excluded:
                continue
            if turn.role == "user":
                messages.append(HumanMessage(content=turn.content, id=turn.id))
            elif turn.content:
                messages.append(AIMessage(content=turn.content, id=turn.id))
        return messages
