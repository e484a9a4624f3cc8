"""Prompt token estimates before sending, with tiktoken and OpenAI's per-message recipe (what Azure bills)."""
from __future__ import annotations

from functools import lru_cache

import tiktoken
from langchain_core.messages import BaseMessage

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


@lru_cache(maxsize=None)
def encoding_for(model: str) -> tiktoken.Encoding:
    """o200k_base for gpt-4o and newer, cl100k_base for gpt-35-turbo/gpt-4 (Azure spells gpt-3.5 as gpt-35)."""
    try:
        return tiktoken.encoding_for_model(model.replace("gpt-35", "gpt-3.5"))
    except KeyError:
        return tiktoken.get_encoding("o200k_base")


def count_text(text: str, model: str) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


def estimate_prompt_tokens(messages: list[BaseMessage], model: str) -> int:
    """Text with tiktoken plus images with Azure's tile formula, per OpenAI's per-message recipe."""
    from chains.multimodal import message_image_tokens

    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(_ROLES.get(message.type, message.type), model) + count_text(message.text, model)
    return total + message_image_tokens(messages)
