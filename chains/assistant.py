"""The default assistant: a system prompt followed by the conversation, answered by the chat model."""
from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable

from chains.spec import ChainSpec

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant for the staff of this organisation. Answer accurately and concisely; "
    "say so when you do not know."
)


def build_assistant(model: BaseChatModel, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> Runnable:
    """A runnable taking {"messages": [...]} and streaming AIMessageChunks."""
    prompt = ChatPromptTemplate.from_messages([("system", system_prompt), MessagesPlaceholder("messages")])
    return (prompt | model).with_config(run_name="assistant")


ASSISTANT = ChainSpec(
    name="assistant", version="1", title="Assistant",
    description="The default helpful assistant; you choose the temperature.",
    system_prompt=DEFAULT_SYSTEM_PROMPT, build=build_assistant,
)
