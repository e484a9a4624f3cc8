"""Prompt token counting the way Azure OpenAI bills it: tiktoken for text, the model family's image rule for images.

The per-message overheads follow OpenAI's published recipe (the same one `langchain_openai` uses in
`get_num_tokens_from_messages`), so the app's estimate before a call and the emulator's `usage` agree exactly:
3 tokens per message, the tokens of every field value (role, content, name...), 1 more for a `name`,
and 3 for the assistant reply priming.

Images are billed by the rule of the deployment's model family (config/capabilities.py `family_capabilities(model)`,
as Azure does: a catalog row's override is not Azure's business), measured on the image the request carries, at the
detail it was sent with (anything but "low" bills as high). Written here apart from the app's chains/images.py, so a
mistake in one shows up as a difference in the tests:
- tile (gpt-4o: 85/170; gpt-4o-mini 2833/5667; gpt-5 and gpt-5.1 70/140; o1, o3 75/150): low costs `base`; high
  fits 2048x2048, then the shortest side down to 768, and costs `base + tile` per 512-px tile.
- patch (gpt-5-mini, gpt-5-nano, gpt-5.2, gpt-5.4*, gpt-5.5, o4-mini, gpt-4.1-mini/nano): fit the detail's pixel
  limit, count 32-px patches, over the budget shrink by OpenAI's formula and count again; ceil(patches x multiplier).
A model without an image rule (text only: Azure refuses the request before counting) is counted as gpt-4o.

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
from fractions import Fraction
from functools import lru_cache

import tiktoken

from chains.tokens import tool_definition_tokens
from config.capabilities import PatchRule, TileRule, family_capabilities

LOW_DETAIL_TOKENS = 85
TILE_TOKENS = 170
TILE_SIZE = 512
MAX_SIDE = 2048
SHORT_SIDE = 768
PATCH_SIDE = 32
GPT4O_TILES = TileRule(base_tokens=LOW_DETAIL_TOKENS, tile_tokens=TILE_TOKENS, max_side=MAX_SIDE, short_side=SHORT_SIDE,
                       low_side=TILE_SIZE)
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


def image_rule_for(model: str) -> TileRule | PatchRule:
    """The image rule Azure bills `model` by: its family's, else gpt-4o's tiles."""
    return family_capabilities(model).image_rule or GPT4O_TILES


def _longest_side_within(width: int, height: int, limit: int) -> tuple[int, int]:
    """Shrink (never enlarge) so that the longest side is `limit`, the other rounded down."""
    longest, shortest = max(width, height), min(width, height)
    if longest <= limit:
        return width, height
    shortest = max(shortest * limit // longest, 1)
    return (limit, shortest) if width >= height else (shortest, limit)


def scaled_size(width: int, height: int, rule: TileRule | None = None) -> tuple[int, int]:
    """The size Azure processes a high-detail image at under a tile rule (None: gpt-4o): fit in 2048x2048, then
    shortest side down to 768."""
    rule = rule or GPT4O_TILES
    width, height = _longest_side_within(width, height, rule.max_side)
    if min(width, height) > rule.short_side:
        longest = max(width, height) * rule.short_side // min(width, height)
        width, height = (longest, rule.short_side) if width >= height else (rule.short_side, longest)
    return width, height


def _patches(width: int, height: int) -> int:
    return -(-width // PATCH_SIDE) * -(-height // PATCH_SIDE)


def patch_size(width: int, height: int, rule: PatchRule, detail: str | None = "auto") -> tuple[int, int]:
    """The size a patch model processes the image at: within the detail's pixel limit, then within its patch budget
    (OpenAI's formula: s = sqrt(32²·budget/(w·h)), s' = s·min(⌊w·s/32⌋/(w·s/32), ⌊h·s/32⌋/(h·s/32)))."""
    low = detail == "low"
    limit = (rule.low_max_side if low else None) or rule.max_side
    budget = (rule.low_patch_budget if low else None) or rule.patch_budget
    width, height = _longest_side_within(width, height, limit)
    if _patches(width, height) > budget:
        s = math.sqrt(PATCH_SIDE ** 2 * budget / (width * height))
        columns, rows = width * s / PATCH_SIDE, height * s / PATCH_SIDE
        s2 = s * min(math.floor(columns) / columns, math.floor(rows) / rows)
        width, height = max(int(width * s2), 1), max(int(height * s2), 1)
    return width, height


def image_tokens(width: int, height: int, detail: str | None = "auto", rule: TileRule | PatchRule | None = None) -> int:
    """Tokens one image costs under `rule` (None: gpt-4o). Tile: `base` at low detail, else `base + tile` per 512-px
    tile of the scaled image. Patch: ceil(patches x multiplier) of the image within the detail's limits."""
    rule = rule or GPT4O_TILES
    if isinstance(rule, PatchRule):
        patches = _patches(*patch_size(width, height, rule, detail))
        return math.ceil(patches * Fraction(str(rule.multiplier)))
    if detail == "low":
        return rule.base_tokens
    width, height = scaled_size(width, height, rule)
    return rule.base_tokens + rule.tile_tokens * math.ceil(width / TILE_SIZE) * math.ceil(height / TILE_SIZE)


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
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage("the image data cannot be decoded") from exc


def image_part_tokens(part: dict, rule: TileRule | PatchRule | None = None) -> int:
    """Tokens of one `image_url` content part under `rule` (None: gpt-4o), measured on the image it carries, at the
    detail sent. Remote URLs are never fetched (the emulator stays offline): they count as a 512x512 image at low
    detail (gpt-4o: 85)."""
    image_url = part.get("image_url") or {}
    size = image_size_from_url(str(image_url.get("url", "")))
    if size is None:
        return image_tokens(TILE_SIZE, TILE_SIZE, "low", rule)
    return image_tokens(*size, detail=image_url.get("detail"), rule=rule)


def count_image_tokens(messages: list[dict], model: str) -> int:
    """The part of `count_prompt_tokens` that the image parts of `messages` cost on `model` (its family's rule)."""
    rule = image_rule_for(model)
    return sum(image_part_tokens(part, rule) for message in messages if isinstance(message.get("content"), list)
               for part in message["content"] if isinstance(part, dict) and part.get("type") == "image_url")


def count_tool_tokens(tools: list[dict] | None, model: str) -> int:
    """Prompt tokens the `tools` of a request add, with OpenAI's documented approximation (0 without tools). The same
    formula the app's context guard uses, so the emulator bills what the app estimates."""
    return tool_definition_tokens(tools, model)


def count_prompt_tokens(messages: list[dict], model: str, tools: list[dict] | None = None) -> int:
    """Prompt tokens of a Chat Completions `messages` list (and `tools`, if any) for `model`, as Azure reports them
    in `usage`."""
    encoding = encoding_for_model(model)
    rule = image_rule_for(model)

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
                    total += _part_tokens(part, tokens, rule)
            elif value:
                total += tokens(str(value))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _part_tokens(part: object, tokens, rule: TileRule | PatchRule) -> int:
    if isinstance(part, str):
        return tokens(part)
    if not isinstance(part, dict):
        return tokens(str(part))
    kind = part.get("type")
    if kind == "text":
        return tokens(str(part.get("text", "")))
    if kind == "image_url":
        return image_part_tokens(part, rule)
    if kind == "function":  # a tool call: its name and arguments
        function = part.get("function") or {}
        return tokens(str(function.get("arguments", ""))) + tokens(str(function.get("name", "")))
    return tokens(str(part))
