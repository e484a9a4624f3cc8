"""Prompt token counting the way Azure OpenAI bills it: tiktoken for text, a tile formula for images.

The per-message overheads follow OpenAI's published recipe (the same one `langchain_openai` uses in
`get_num_tokens_from_messages`), so the app's estimate before a call and the emulator's `usage` agree exactly:
3 tokens per message, the tokens of every field value (role, content, name...), 1 more for a `name`,
and 3 for the assistant reply priming. Images cost 85 tokens at `detail: low`, otherwise 85 + 170 per
512-px tile of the image after scaling it to fit 2048x2048 and then its shortest side to 768.

Tool definitions (`tools`) are counted with OpenAI's documented approximation (the cookbook's
`num_tokens_for_tools`): per function 7 tokens (10 for cl100k_base models) plus the tokens of "name:description",
3 when it has properties, per property 3 plus "key:type:description" (a trailing full stop dropped from both
descriptions), per enum -3 plus 3 and the tokens of each value, and 12 once at the end. Nested schemas inside a
property are not counted, as in the cookbook. LangChain's `get_num_tokens_from_messages` ignores tools altogether.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
from functools import lru_cache

import tiktoken

from chains.tokens import tool_definition_tokens

LOW_DETAIL_TOKENS = 85
TILE_TOKENS = 170
TILE_SIZE = 512
MAX_SIDE = 2048
SHORT_SIDE = 768
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# Newer model families all use o200k_base; tiktoken may not know a dated or Azure-specific spelling of them.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-6", "o1", "o3", "o4")


class UnreadableImage(ValueError):
    """An image part whose data URL cannot be decoded into an image (Azure rejects such requests)."""


@lru_cache(maxsize=None)
def encoding_for_model(model: str) -> tiktoken.Encoding:
    """tiktoken encoding of a model: o200k_base for gpt-4o and newer, cl100k_base for gpt-35-turbo / gpt-4."""
    try:
        return tiktoken.encoding_for_model(model)
    except KeyError:
        return tiktoken.get_encoding("o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base")


def count_text_tokens(text: str, model: str) -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def scaled_size(width: int, height: int) -> tuple[int, int]:
    """The size Azure processes a high-detail image at: fit in 2048x2048, then shortest side down to 768."""
    if width > MAX_SIDE or height > MAX_SIDE:
        if width > height:
            width, height = MAX_SIDE, height * MAX_SIDE // width
        else:
            width, height = width * MAX_SIDE // height, MAX_SIDE
    if width > SHORT_SIDE and height > SHORT_SIDE:
        if width > height:
            width, height = width * SHORT_SIDE // height, SHORT_SIDE
        else:
            width, height = SHORT_SIDE, height * SHORT_SIDE // width
    return width, height


def image_tokens(width: int, height: int, detail: str | None = "auto") -> int:
    """Tokens one image costs: 85 at low detail, else 85 + 170 per 512-px tile of the scaled image."""
    if detail == "low":
        return LOW_DETAIL_TOKENS
    width, height = scaled_size(width, height)
    return LOW_DETAIL_TOKENS + TILE_TOKENS * math.ceil(width / TILE_SIZE) * math.ceil(height / TILE_SIZE)


def image_size_from_url(url: str) -> tuple[int, int] | None:
    """(width, height) of a `data:image/...;base64,` URL; None for http(s) URLs, which are never fetched."""
    if not url.startswith("data:"):
        return None
    header, _, data = url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise UnreadableImage("the image URL is not a base64 image data URL")
    from PIL import Image, UnidentifiedImageError  # pillow is only needed when images are sent

    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            return image.size
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableImage("the image data cannot be decoded") from exc


def image_part_tokens(part: dict) -> int:
    """Tokens of one `image_url` content part. Remote URLs count as low detail: the emulator stays offline."""
    image_url = part.get("image_url") or {}
    if image_url.get("detail") == "low":
        return LOW_DETAIL_TOKENS
    size = image_size_from_url(str(image_url.get("url", "")))
    return image_tokens(*size, detail=image_url.get("detail")) if size else LOW_DETAIL_TOKENS


def count_tool_tokens(tools: list[dict] | None, model: str) -> int:
    """Prompt tokens the `tools` of a request add, with OpenAI's documented approximation (0 without tools). The same
    formula the app's context guard uses, so the emulator bills what the app estimates."""
    return tool_definition_tokens(tools, model)


def count_prompt_tokens(messages: list[dict], model: str, tools: list[dict] | None = None) -> int:
    """Prompt tokens of a Chat Completions `messages` list (and `tools`, if any) for `model`, as Azure reports them
    in `usage`."""
    encoding = encoding_for_model(model)

    def tokens(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    total = REPLY_PRIMING + count_tool_tokens(tools, model)
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "tool_call_id":  # undocumented by OpenAI; the same approximation LangChain makes
                total += 3
                continue
            if isinstance(value, list):  # content parts or tool calls
                for part in value:
                    total += _part_tokens(part, tokens)
            elif value:
                total += tokens(str(value))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _part_tokens(part: object, tokens) -> int:
    if isinstance(part, str):
        return tokens(part)
    if not isinstance(part, dict):
        return tokens(str(part))
    kind = part.get("type")
    if kind == "text":
        return tokens(str(part.get("text", "")))
    if kind == "image_url":
        return image_part_tokens(part)
    if kind == "function":  # a tool call: its name and arguments
        function = part.get("function") or {}
        return tokens(str(function.get("arguments", ""))) + tokens(str(function.get("name", "")))
    return tokens(str(part))
