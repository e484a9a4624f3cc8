"""A conversation as the page shows it, and the LangChain messages the model sees for it."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from memory.documents import AttachedDocument


@dataclass
class Usage:
    """Token counts and cost of one answer (or of several, added), as Azure reported them. A new field goes here
    once: adding, storing and reading back go through `fields` (`+`, `as_json`, `from_json`); a call's share comes from
    its audit record in `of_call`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated: bool = False  # a stopped answer never gets Azure's usage: tiktoken estimated it
    model_calls: int = 1  # chat model calls (answers, drafts, summaries)
    embedding_tokens: int = 0  # documents indexed and questions searched; their cost is in cost_usd
    # Hidden reasoning tokens of reasoning models (gpt-5.x, o-series): part of completion_tokens (billed as output,
    # already in cost_usd), counted apart so the page can say how much of the output nobody sees.
    reasoning_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{f.name: (getattr(self, f.name) or getattr(other, f.name)) if f.type == "bool"
                        else getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)})

    @classmethod
    def total(cls, usages: Iterable["Usage | None"]) -> "Usage | None":
        """The sum of the given usages (None ones skipped); None when there are none."""
        present = [u for u in usages if u is not None]
        return sum(present[1:], present[0]) if present else None

    @classmethod
    def of_call(cls, record: dict) -> "Usage":
        """One model call's share, from its audit record (callbacks/audit.py, documents/embeddings.py): an embedding
        call's tokens are embedding tokens, and it is not a chat model call."""
        embedding = record.get("purpose") == "embedding"
        prompt = int(record.get("prompt_tokens") or 0)
        return cls(prompt_tokens=0 if embedding else prompt,
                   completion_tokens=0 if embedding else int(record.get("completion_tokens") or 0),
                   cost_usd=Decimal(record.get("cost_usd") or 0), estimated=bool(record.get("usage_estimated")),
                   model_calls=0 if embedding else 1, embedding_tokens=prompt if embedding else 0,
                   reasoning_tokens=0 if embedding else int(record.get("reasoning_tokens") or 0))

    def as_json(self) -> dict:
        return {f.name: str(getattr(self, f.name)) if f.type == "Decimal" else getattr(self, f.name)
                for f in fields(Usage)}

    @classmethod
    def from_json(cls, data: dict) -> "Usage":
        """Read back from `as_json` (fields added since a record was stored take their defaults)."""
        known = {f.name: f for f in fields(Usage)}
        return cls(**{name: Decimal(value) if known[name].type == "Decimal" else value
                      for name, value in data.items() if name in known})


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
        replaced = [v.answer.usage for t in self.turns for v in t.versions if not v.active]  # paid for all the same
        return Usage.total([Usage(model_calls=0), *(t.usage for t in self.turns), *replaced])

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
