"""Summary-buffer memory: the model sees a running summary plus the most recent messages.

Built on LangChain's `SummarizationMiddleware` (the current replacement for ConversationSummaryBufferMemory), tuned to
summarise by message count: when the model would see `trigger` messages or more (the new one included), all but the
last `keep` are folded into the summary, and the summary itself is folded again later, so it rolls forward. Its
`before_model` step is called directly, so the same logic works for any chain, with or without an agent graph.
The summary call is tagged `nostream` and carries `lc_source=summarization`: it never streams to the page, and the
audit handler records it with purpose "summary". The prompt is built from text only (images are dropped).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from langchain.agents.middleware import SummarizationMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, RemoveMessage, messages_from_dict, messages_to_dict

SUMMARY_PREFIX = "Here is a summary of the conversation to date:\n\n"


@dataclass(frozen=True)
class SummaryBufferMemory:
    trigger_messages: int = 7
    keep_messages: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.keep_messages < self.trigger_messages:
            raise ValueError("keep_messages must be at least 1 and less than trigger_messages")

    def middleware(self, summarizer: BaseChatModel) -> SummarizationMiddleware:
        return SummarizationMiddleware(summarizer, trigger=("messages", self.trigger_messages),
                                       keep=("messages", self.keep_messages))

    def prepare(self, remembered: list[BaseMessage], new_message: BaseMessage,
                summarizer: BaseChatModel) -> list[BaseMessage]:
        """What the model sees for the next answer: the remembered messages plus the new one, summarised first if
        that makes `trigger` messages or more. May call `summarizer` (one audited, non-streamed call)."""
        messages = [*remembered, new_message]
        update = self.middleware(summarizer).before_model({"messages": messages}, None)
        if update is None:
            return messages
        return [m for m in update["messages"] if not isinstance(m, RemoveMessage)]


def is_summary(message: BaseMessage) -> bool:
    return message.additional_kwargs.get("lc_source") == "summarization"


def summary_text(messages: list[BaseMessage]) -> str | None:
    for message in messages:
        if is_summary(message):
            return message.text.removeprefix(SUMMARY_PREFIX)
    return None


def verbatim_ids(messages: list[BaseMessage]) -> set[str]:
    return {m.id for m in messages if m.id and not is_summary(m)}


def dumps(messages: list[BaseMessage]) -> str:
    return json.dumps(messages_to_dict(messages))


def loads(data: str | None) -> list[BaseMessage]:
    return messages_from_dict(json.loads(data)) if data else []
