"""Engines produce the emulator's answers. The emulator owns the protocol; an engine only turns a request into text.

An engine is any object with a `name`, a `generate(request)` that yields the answer one completion token
at a time, and a `count_prompt_tokens(request)`. `generate` is a plain (blocking) generator: the emulator
iterates it in a worker thread, so an engine may sleep or run a local model without stalling the server, and
each yielded piece goes over the wire as its own SSE chunk. The emulator stops iterating (and closes the
generator) when the answer reaches `request.max_tokens`, when a fault cuts it short, or when the client leaves.

`ScriptedEngine` is deterministic and needs no model: tests and `make run` use it. A llama.cpp engine for
real local answers implements the same interface.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, runtime_checkable

from config.catalog import Deployment
from localdev.prompt_tokens import UnreadableImage, count_prompt_tokens, encoding_for_model, image_size_from_url

# `[[fault:NAME key=value ...]]` in a user message asks the emulator for a fault; the answer never echoes it.
FAULT_MARKER = re.compile(r"\[\[fault:([\w-]+)([^\]]*)\]\]")
ECHO_LIMIT = 200  # characters of the user's message the scripted answer repeats


@dataclass
class ChatRequest:
    """One validated chat completion request, as an engine sees it.

    `max_tokens` is the effective limit (the caller's `max_completion_tokens`/`max_tokens`, capped by the
    deployment and the context window); `body` is the whole JSON body for engines that want more fields.
    """

    deployment: Deployment
    messages: list[dict]
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    body: dict = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """What the Azure OpenAI emulator needs from an answer generator."""

    name: str

    def generate(self, request: ChatRequest) -> Iterator[str]:
        """Yield the answer as text pieces, one per completion token; may block (it runs in a worker thread)."""
        ...

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """Prompt tokens of the request, as reported in `usage.prompt_tokens`."""
        ...


def last_user_text(messages: list[dict]) -> str:
    """Text of the last user message (text parts joined); empty when there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
            return str(content or "")
    return ""


def image_parts(messages: list[dict]) -> list[dict]:
    """All `image_url` content parts of all messages, in order."""
    return [
        part
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def scripted_reply(request: ChatRequest) -> str:
    """The default scripted answer: echoes the last user message, names the deployment and the images received."""
    said = FAULT_MARKER.sub("", last_user_text(request.messages)).strip()
    if len(said) > ECHO_LIMIT:
        said = said[:ECHO_LIMIT].rstrip() + "…"
    reply = f"You said: {said}. This is the scripted emulator answering on deployment {request.deployment.name}."
    images = image_parts(request.messages)
    if images:
        described = ", ".join(_describe_image(part) for part in images)
        reply += f" I received {len(images)} image{'s' if len(images) > 1 else ''}: {described}."
    return reply


def _describe_image(part: dict) -> str:
    image_url = part.get("image_url") or {}
    try:
        size = image_size_from_url(str(image_url.get("url", "")))
    except UnreadableImage:
        size = None
    detail = image_url.get("detail") or "auto"
    return f"{size[0]}x{size[1]} px, detail {detail}" if size else f"a linked image, detail {detail}"


class ScriptedEngine:
    """Deterministic answers split into the model's tiktoken tokens, paced like a real model.

    `time_to_first_token` seconds pass before the first piece; after that `tokens_per_second` paces the rest
    (None: as fast as possible). Both may be changed while the emulator runs; the next request uses them.
    `reply` replaces the default answer text.
    """

    name = "scripted"

    def __init__(
        self,
        time_to_first_token: float = 0.0,
        tokens_per_second: float | None = None,
        reply: Callable[[ChatRequest], str] | None = None,
    ) -> None:
        self.time_to_first_token = time_to_first_token
        self.tokens_per_second = tokens_per_second
        self.reply = reply or scripted_reply

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        return count_prompt_tokens(request.messages, request.deployment.model)

    def pieces(self, request: ChatRequest) -> list[str]:
        """The answer split into completion tokens (a multi-byte character split across tokens stays whole)."""
        encoding = encoding_for_model(request.deployment.model)
        pieces, pending = [], b""
        for token in encoding.encode(self.reply(request), disallowed_special=()):
            pending += encoding.decode_single_token_bytes(token)
            try:
                pieces.append(pending.decode("utf-8"))
                pending = b""
            except UnicodeDecodeError:
                continue  # part of a character: join it with the next token
        return pieces

    def generate(self, request: ChatRequest) -> Iterator[str]:
        pieces = self.pieces(request)
        ttft, rate = self.time_to_first_token, self.tokens_per_second
        start = time.monotonic()
        for index, piece in enumerate(pieces):
            # Due times are measured from the start so sleeping overhead does not accumulate.
            due = start + ttft + (index / rate if rate else 0.0)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield piece
