"""Prompt token estimates before sending, with tiktoken and OpenAI's per-message recipe (what Azure bills)."""
from __future__ import annotations

from functools import lru_cache

import tiktoken

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


@lru_cache(maxsize=None)
def encoding_for(model: str) -> tiktoken.Encoding:
    """o200k_base for gpt-4o and newer, cl100k_base for gpt-35-turbo/gpt-4 (Azure spells gpt-3.5 as gpt-35)."""
    try:
        return tiktoken.encoding_for_model(model.replace("gpt-35", "gpt-3.5"))
    except KeyError:
        return tiktoken.get_encoding("o200k_base")


def count_text(text: str, model: str) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


# OpenAI's documented approximation of what tool definitions add to a prompt (its token-counting cookbook).
TOOL_FUNC_INIT = {"o200k_base": 7, "cl100k_base": 10}
TOOL_PROP_INIT, TOOL_PROP_KEY, TOOL_ENUM_INIT, TOOL_ENUM_ITEM, TOOL_FUNC_END = 3, 3, -3, 3, 12


def tool_definition_tokens(tools: list[dict] | None, model: str) -> int:
    """Prompt tokens that Chat Completions `tools` (OpenAI function form) add for `model`; 0 without tools."""
    functions = [tool.get("function") or {} for tool in tools or () if isinstance(tool, dict)]
    if not functions:
        return 0
    encoding = encoding_for(model)

    def tokens(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    total = 0
    for function in functions:
        total += TOOL_FUNC_INIT.get(encoding.name, TOOL_FUNC_INIT["cl100k_base"])
        total += tokens(f"{function.get('name', '')}:{_without_full_stop(function.get('description'))}")
        properties = (function.get("parameters") or {}).get("properties") or {}
        if properties:
            total += TOOL_PROP_INIT
            for key, schema in properties.items():
                schema = schema if isinstance(schema, dict) else {}
                total += TOOL_PROP_KEY
                if "enum" in schema:
                    total += TOOL_ENUM_INIT
                    for item in schema["enum"] or ():
                        total += TOOL_ENUM_ITEM + tokens(str(item))
                total += tokens(f"{key}:{schema.get('type', '')}:{_without_full_stop(schema.get('description'))}")
    return total + TOOL_FUNC_END


def _without_full_stop(text: object) -> str:
    text = "" if text is None else str(text)
    return text[:-1] if text.endswith(".") else text
