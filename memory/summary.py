"""Summary-buffer memory: the model sees a running summary plus the most recent messages.

Built on LangChain's `SummarizationMiddleware` (the current replacement for ConversationSummaryBufferMemory), tuned to
summarise by message count: when the model would see `trigger` messages or more (the new one included), all but the
last `keep` are folded into the summary, and the summary itself is folded again later, so it rolls forward. Its
`before_model` step is called directly, so the same logic works for any chain, with or without an agent graph.
The summary call is tagged `nostream` and carries `lc_source=summarization`: it never streams to the page, and the
audit handler records it with purpose "summary". The prompt is built from text only (images are dropped).

The summary is written with a chat-summary prompt of our own (LangChain's default is for coding agents: session
intent, artifacts, file paths) and handed to the model as a system message: it is context the app gives, not
something the person said.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from langchain.agents.middleware import SummarizationMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, RemoveMessage, SystemMessage, messages_from_dict, messages_to_dict

SUMMARY_PREFIX = "Summary of the earlier part of this conversation (the messages it covers are not repeated):\n\n"
_OLD_PREFIX = "Here is a summary of the conversation to date:\n\n"  # LangChain's, in conversations stored before

CHAT_SUMMARY_MARKER = "You keep the memory of a conversation"  # how the summary call is told apart (emulator, tests)
CHAT_SUMMARY_PROMPT = """You keep the memory of a conversation between a person and an assistant. Summarise the \
messages below so the assistant can go on as if it had read them.

Keep, in this order and only where present:
- Facts: what the person told about themselves, their work and their situation; figures, dates and names exactly.
- Decisions and conclusions reached, and what the assistant recommended or promised.
- Names of people, documents, products and places mentioned, and what each is.
- Open questions and anything the person still wants.
- Preferences about language, tone and format.
If the messages include an earlier summary, fold it in. Write in the language of the conversation, as short plain \
sentences or bullets, at most 300 words. Do not add anything that is not in the messages and do not answer them.

<messages>
{messages}
</messages>"""


class _ChatSummarization(SummarizationMiddleware):
    """LangChain's summarisation with the summary as a system message."""

    @staticmethod
    def _build_new_messages(summary: str) -> list[BaseMessage]:
        return [SystemMessage(SUMMARY_PREFIX + summary, additional_kwargs={"lc_source": "summarization"})]


@dataclass(frozen=True)
class SummaryBufferMemory:
    trigger_messages: int = 7
    keep_messages: int = 3  # as APP_MEMORY_KEEP_MESSAGES

    def __post_init__(self) -> None:
        if not 0 < self.keep_messages < self.trigger_messages:
            raise ValueError("keep_messages must be at least 1 and less than trigger_messages")

    def middleware(self, summarizer: BaseChatModel) -> SummarizationMiddleware:
        return _ChatSummarization(summarizer, trigger=("messages", self.trigger_messages),
                                  keep=("messages", self.keep_messages), summary_prompt=CHAT_SUMMARY_PROMPT)

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
            return message.text.removeprefix(SUMMARY_PREFIX).removeprefix(_OLD_PREFIX)
    return None


def verbatim_ids(messages: list[BaseMessage]) -> set[str]:
    return {m.id for m in messages if m.id and not is_summary(m)}


def dumps(messages: list[BaseMessage]) -> str:
    return json.dumps(messages_to_dict(messages))


def loads(data: str | None) -> list[BaseMessage]:
    return messages_from_dict(json.loads(data)) if data else []
