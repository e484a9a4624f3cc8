"""A conversation as the page shows it, and the LangChain messages the model sees for it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage


@dataclass
class Usage:
    """Token counts of one answer as Azure reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Turn:
    """One message in the conversation; failed or stopped answers stay visible and are marked."""

    role: Literal["user", "assistant"]
    content: str
    deployment: str | None = None
    usage: Usage | None = None
    status: Literal["complete", "failed", "stopped"] = "complete"
    notice: str | None = None


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)

    def add(self, turn: Turn) -> Turn:
        self.turns.append(turn)
        return turn

    def model_messages(self) -> list[BaseMessage]:
        """The history as the model sees it: user messages and complete (or partial) answers, never error notices."""
        messages: list[BaseMessage] = []
        for turn in self.turns:
            if turn.role == "user":
                messages.append(HumanMessage(content=turn.content))
            elif turn.content:
                messages.append(AIMessage(content=turn.content))
        return messages
