"""Engines produce the emulator's answers. The emulator owns the protocol; an engine only turns a request into text.

An engine is any object with a `name`, a `generate(request)` that yields the answer one completion token
at a time (text as `str`, tool calls as `ToolCallPiece`s), a `count_prompt_tokens(request)` and an
`embed(texts, dimensions)` for the embeddings endpoint (without one, the hashing vectors answer). `generate` is a
plain (blocking) generator: the emulator iterates it in a worker thread, so an engine may sleep or run a local model
without stalling the server, and each yielded piece goes over the wire as its own SSE chunk. The emulator stops
iterating (and closes the generator) when the answer reaches `request.max_tokens`, when a fault cuts it short, or
when the client leaves.

`ScriptedEngine` is deterministic and needs no model: tests and `make run` use it. A llama.cpp engine for
real local answers implements the same interface.

Tools: when a request offers `tools` and `tool_choice` allows, the scripted engine calls every offered tool whose
name, or a trigger word of `TOOL_TRIGGERS`, appears in the last user message (a calculator also on arithmetic such as
"12*(3+4)"), with arguments built from that message and each tool's JSON schema; several at once unless
`parallel_tool_calls` is false. `tool_choice` "required" or a named function forces a call, "none" never calls. When
the last message is a tool result, it answers in text quoting each result.

Sources: when a system message holds numbered document passages (`<source n="1" file=".." where="..">text</source>`,
as the app sends them), the scripted answer comes from them: the sentence of the passage sharing most words with the
question, cited as `[n]` (see `sources_reply`).

Embeddings: `embed(texts, dimensions)` returns one unit vector per text; the scripted engine's are feature-hashing
bags of words (localdev.embeddings), deterministic and model-free.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import re
import secrets
import string
import time
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Protocol, runtime_checkable

from config.catalog import Deployment
from localdev.embeddings import content_words, hashed_vectors
from localdev.prompt_tokens import UnreadableImage, count_prompt_tokens, encoding_for_model, image_size_from_url

# `[[fault:NAME key=value ...]]` in a user message asks the emulator for a fault; the answer never echoes it.
FAULT_MARKER = re.compile(r"\[\[fault:([\w-]+)([^\]]*)\]\]")
ECHO_LIMIT = 200  # characters of the user's message the scripted answer repeats
QUOTE_LIMIT = 2000  # characters of each tool result the scripted answer quotes
# Words in the last user message that make the scripted engine call a tool of that name (if offered); a tool's own
# name (or its name with spaces for underscores) always does. Matched as whole words, case-insensitively.
TOOL_TRIGGERS: dict[str, tuple[str, ...]] = {
    "my_calendar": ("calendar",),
    "my_manager": ("manager",),
    "my_profile": ("profile", "who am i"),
    "find_colleague": ("colleague", "find"),
    "current_time": ("time",),
}
ARITHMETIC_TOOLS = ("calculator",)  # called when the message holds arithmetic: digits with an operator
ARITHMETIC = re.compile(r"[\d(][\d\s.()]*(?:[-+*/%^×÷][\s(]*[\d.]+[\d\s.()]*)+")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
ZONE_ABBREVIATIONS = {"utc": "UTC", "gmt": "GMT"}
SOURCE = re.compile(r"<source\s+n=\"(\d+)\"([^>]*)>\n?(.*?)\n?</source>", re.DOTALL)
SOURCE_ATTRIBUTE = re.compile(r"(\w+)=\"([^\"]*)\"")
# Sentence ends: . ! ? or … (and a closing quote or bracket) before whitespace, or a line break not followed by a
# lower-case letter (a heading, a list item; a line wrapped mid-sentence stays whole).
SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+|[ \t]*\n(?![ \t]*[a-z])\s*")
NO_ANSWER = "The attached documents do not say."
SUBJECT_FILLERS = {"a", "an", "the", "my", "our", "me", "for", "called", "named", "is", "of", "about", "please",
                   "who", "what", "whose", "colleague", "colleagues", "person", "someone", "somebody", "find", "search",
                   "look", "up", "in", "on", "at", "to"}


@dataclass
class ChatRequest:
    """One validated chat completion request, as an engine sees it.

    `max_tokens` is the effective limit of the visible answer (the caller's `max_completion_tokens`/`max_tokens`,
    capped by the deployment and the context window, less the hidden reasoning tokens a reasoning model spends first;
    when reasoning uses it all the emulator answers empty without asking the engine); `body` is the whole JSON body
    for engines that want more fields.
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
    tools: list[dict] | None = None  # the offered `tools`, validated by the emulator
    tool_choice: str | dict | None = None  # "none", "auto", "required" or {"type": "function", "function": {"name"}}
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True)
class ToolCallPiece:
    """One streamed piece of a tool call. The first piece of each call carries `id` and `name` (and empty
    `arguments`); the following ones carry fragments of the JSON arguments. `tokens` is how many completion tokens
    the piece stands for (the name's tokens for the first piece)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    tokens: int = 1


@runtime_checkable
class Engine(Protocol):
    """What the Azure OpenAI emulator needs from an answer generator."""

    name: str

    def generate(self, request: ChatRequest) -> Iterator["str | ToolCallPiece"]:
        """Yield the answer as text pieces, one per completion token, or as tool call pieces; may block (it runs in
        a worker thread)."""
        ...

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """Prompt tokens of the request, as reported in `usage.prompt_tokens`."""
        ...

    def embed(self, texts: list[str], dimensions: int) -> list[list[float]]:
        """One unit vector, `dimensions` long, per text; may block (it runs in a worker thread). An engine without
        it gets the scripted engine's hashing vectors."""
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
    """The default scripted answer: echoes the last user message, names the deployment and the images received;
    after tool results, quotes each of them; with document sources in a system message, answers from them."""
    if request.messages and request.messages[-1].get("role") == "tool":
        return tool_results_reply(request.messages)
    sources = sources_in(request.messages)
    if sources:
        return sources_reply(sources, FAULT_MARKER.sub("", last_user_text(request.messages)))
    said = FAULT_MARKER.sub("", last_user_text(request.messages)).strip()
    if len(said) > ECHO_LIMIT:
        said = said[:ECHO_LIMIT].rstrip() + "…"
    reply = f"You said: {said}. This is the scripted emulator answering on deployment {request.deployment.name}."
    images = image_parts(request.messages)
    if images:
        described = ", ".join(_describe_image(part) for part in images)
        reply += f" I received {len(images)} image{'s' if len(images) > 1 else ''}: {described}."
    return reply


@dataclass(frozen=True)
class Source:
    """One numbered document passage the app put into a system message."""

    n: int
    file: str
    where: str
    text: str


def parse_sources(text: str) -> list[Source]:
    """The `<source n=".." file=".." where="..">passage</source>` blocks of a system message, in order (attribute
    values unescaped, passages as written)."""
    sources = []
    for found in SOURCE.finditer(text):
        attributes = {key: html.unescape(value) for key, value in SOURCE_ATTRIBUTE.findall(found.group(2))}
        sources.append(Source(int(found.group(1)), attributes.get("file", ""), attributes.get("where", ""),
                              found.group(3)))
    return sources


def sources_in(messages: list[dict]) -> list[Source]:
    """The sources of all system (and developer) messages."""
    return [source for message in messages if isinstance(message, dict) and message.get("role") in ("system", "developer")
            for source in parse_sources(_text_content(message.get("content")))]


def sentences(text: str) -> list[str]:
    """The passage's sentences (and headings, list items) as written, surrounding whitespace dropped."""
    return [piece.strip() for piece in SENTENCE_BREAK.split(text) if piece and piece.strip()]


def sources_reply(sources: list[Source], question: str) -> str:
    """The scripted answer from sources: the passage sharing most content words with the question (ties: the lower
    number), its sentence sharing most (ties: the first), as `According to the documents, <sentence> [n]`; when no
    passage shares a word, that the documents do not say."""
    asked = set(content_words(question))

    def overlap(text: str) -> int:
        return len(asked & set(content_words(text)))

    best = max(sorted(sources, key=lambda source: source.n), key=lambda source: overlap(source.text), default=None)
    if best is None or overlap(best.text) == 0:
        return NO_ANSWER
    sentence = max(sentences(best.text), key=overlap)
    return f"According to the documents, {sentence} [{best.n}]"


def _describe_image(part: dict) -> str:
    image_url = part.get("image_url") or {}
    try:
        size = image_size_from_url(str(image_url.get("url", "")))
    except UnreadableImage:
        size = None
    detail = image_url.get("detail") or "auto"
    return f"{size[0]}x{size[1]} px, detail {detail}" if size else f"a linked image, detail {detail}"


def tool_results_reply(messages: list[dict]) -> str:
    """The scripted answer once tool results are back: each trailing tool message quoted, named by its tool."""
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    calls = (messages[start - 1].get("tool_calls") or []) if start > 0 else []
    names = {call.get("id"): (call.get("function") or {}).get("name") for call in calls if isinstance(call, dict)}
    quoted = []
    for message in messages[start:]:
        result = _text_content(message.get("content"))
        if len(result) > QUOTE_LIMIT:
            result = result[:QUOTE_LIMIT].rstrip() + "…"
        quoted.append(f"{names.get(message.get('tool_call_id')) or 'a tool'} returned \"{result}\"")
    return (f"Here is what the tools returned: {'; '.join(quoted)}. This is the scripted emulator answering with "
            f"{len(quoted)} tool result{'s' if len(quoted) != 1 else ''}.")


def _text_content(content) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


# ---- scripted tool calls ----
@dataclass(frozen=True)
class PlannedCall:
    name: str
    arguments: dict


def plan_tool_calls(request: ChatRequest, today: dt.date | None = None) -> list[PlannedCall]:
    """The tool calls the scripted engine makes for this request (empty: it answers in text)."""
    functions = [tool["function"] for tool in request.tools or ()
                 if isinstance(tool, dict) and isinstance(tool.get("function"), dict)]
    choice = request.tool_choice
    if not functions or choice == "none":
        return []
    text = FAULT_MARKER.sub("", last_user_text(request.messages)).strip()
    last_role = request.messages[-1].get("role") if request.messages else None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        chosen = [f for f in functions if f.get("name") == wanted][:1]
    else:
        chosen = [f for f in functions if _mentions(f, text)] if last_role == "user" else []
        if not chosen and choice == "required":
            chosen = [f for f in functions if _mentions(f, text)] or functions[:1]
    if request.parallel_tool_calls is False:
        chosen = chosen[:1]
    return [PlannedCall(f["name"], tool_arguments(f, text, today)) for f in chosen]


def _mentions(function: dict, text: str) -> bool:
    name = str(function.get("name", ""))
    words = {name, name.replace("_", " "), *TOOL_TRIGGERS.get(name, ())}
    if any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) for word in words if word):
        return True
    return name in ARITHMETIC_TOOLS and arithmetic_in(text) is not None


def arithmetic_in(text: str) -> str | None:
    """The first arithmetic expression in the text (digits with an operator), ISO dates aside."""
    for found in ARITHMETIC.finditer(ISO_DATE.sub(" ", text)):
        expression = found.group(0).strip()
        while expression.count("(") < expression.count(")") and expression.endswith(")"):
            expression = expression[:-1].rstrip()
        if re.search(r"\d\W*[-+*/%^×÷]\W*\d", expression):
            return expression
    return None


def tool_arguments(function: dict, text: str, today: dt.date | None = None) -> dict:
    """Arguments for one call, built from the message and the function's JSON schema: every required property gets a
    sensible value, and optional ones too where the message names one (a time zone, a day, an expression)."""
    parameters = function.get("parameters") or {}
    return _object_value(parameters, _Context(function, text, today or dt.datetime.now(dt.timezone.utc).date()))


@dataclass
class _Context:
    function: dict
    text: str
    today: dt.date
    numbers: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.numbers = [float(n) for n in NUMBER.findall(ISO_DATE.sub(" ", self.text))]


def _object_value(schema: dict, context: _Context) -> dict:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = [name for name in schema.get("required") or () if isinstance(name, str)]
    values = {}
    for name, sub in properties.items():
        sub = sub if isinstance(sub, dict) else {}
        specific = _specific_value(name, sub, context, name in required)
        if specific is not None:
            values[name] = specific
        elif name in required:
            values[name] = _generic_value(name, sub, context)
    for name in required:  # required but not described in properties
        values.setdefault(name, _subject(context))
    return values


def _words(name: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)}


DATE_TIME_WORDS = {"start", "end", "until", "since", "begin", "datetime", "time", "after", "before"}
END_WORDS = {"end", "until", "before"}


def _specific_value(name: str, schema: dict, context: _Context, required: bool):
    """A value the message itself gives for this property (or, for a required date or time, today), else None."""
    words, kind = _words(name), _type_of(schema)
    if kind not in ("string", None):
        return None
    if words & {"timezone", "tz", "zone"}:
        found = time_zone_in(context.text)
        return found or (schema.get("default") or "UTC" if required else None)
    if words & {"expression", "expr", "formula", "equation", "calculation"}:
        return arithmetic_in(context.text) or (context.text if required else None)
    day = _day_in(context.text, context.today)
    if schema.get("format") == "date" or words & {"date", "day"}:
        return (day or context.today).isoformat() if day or required else None
    if schema.get("format") == "date-time" or words & DATE_TIME_WORDS:
        if day is None and not required:
            return None
        ends = bool(words & END_WORDS)
        moment = dt.datetime.combine((day or context.today) + dt.timedelta(days=1 if ends else 0), dt.time(),
                                     dt.timezone.utc)
        return moment.isoformat()
    return None


def _generic_value(name: str, schema: dict, context: _Context):
    """A sensible value for a required property the message says nothing specific about."""
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        mentioned = [v for v in enum
                     if isinstance(v, str) and re.search(rf"(?<!\w){re.escape(v)}(?!\w)", context.text, re.I)]
        return (mentioned or enum)[0]
    kind = _type_of(schema)
    if kind in ("integer", "number"):
        if context.numbers:
            number = context.numbers.pop(0)
            return int(number) if kind == "integer" else number
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return int(low) + 1 if kind == "integer" else float(low) + 1
    if kind == "boolean":
        return False
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_generic_value(name, items, context) for _ in range(int(schema.get("minItems", 0) or 0))]
    if kind == "object":
        return _object_value(schema, context)
    if kind == "null":
        return None
    return _subject(context)


def _type_of(schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _subject(context: _Context) -> str:
    """What the message is about for this tool: the arithmetic for a calculator, else the words after the tool's
    trigger (fillers dropped), else the capitalised words, else the whole message."""
    if context.function.get("name") in ARITHMETIC_TOOLS and arithmetic_in(context.text):
        return arithmetic_in(context.text)
    name = str(context.function.get("name", ""))
    text = context.text
    for word in (name, name.replace("_", " "), *TOOL_TRIGGERS.get(name, ())):
        found = list(re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE)) if word else []
        if found:
            rest = re.findall(r"[\w'@.-]+", text[found[-1].end():])
            while rest and rest[0].lower() in SUBJECT_FILLERS:
                rest.pop(0)
            if rest:
                return " ".join(rest).strip(".")
    capitalised = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*", text)
    return capitalised[0] if capitalised else text


def _day_in(text: str, today: dt.date) -> dt.date | None:
    if re.search(r"\btomorrow\b", text, re.IGNORECASE):
        return today + dt.timedelta(days=1)
    if re.search(r"\byesterday\b", text, re.IGNORECASE):
        return today - dt.timedelta(days=1)
    if re.search(r"\b(today|tonight)\b", text, re.IGNORECASE):
        return today
    found = ISO_DATE.search(text)
    if found:
        try:
            return dt.date.fromisoformat(found.group(0))
        except ValueError:
            return None
    return None


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """IANA zone names by their lower-cased full name and by their city ("new york" -> "America/New_York")."""
    try:
        names = zoneinfo.available_timezones()
    except Exception:  # noqa: BLE001 - no zone database: UTC only
        names = set()
    zones = {}
    for name in sorted(names):
        zones[name.lower()] = name
        area, _, city = name.rpartition("/")
        if area.split("/")[0] in ("Africa", "America", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"):
            zones.setdefault(city.lower().replace("_", " "), name)
    return zones


def time_zone_in(text: str) -> str | None:
    """An IANA time zone named in the text ("Europe/Paris", or a city such as "Tokyo" or "New York"), or UTC/GMT."""
    zones = _zones()
    for found in re.finditer(r"\b[A-Za-z_]+(?:/[A-Za-z_+-]+)+", text):
        if found.group(0).lower() in zones:
            return zones[found.group(0).lower()]
    words = re.findall(r"[A-Za-z]+", text)
    for size in (3, 2, 1):
        for start in range(len(words) - size + 1):
            phrase = " ".join(words[start:start + size])
            if size == 1 and phrase.isupper() and len(phrase) > 1 and (phrase.lower() in ZONE_ABBREVIATIONS
                                                                        or phrase.lower() in zones):
                return ZONE_ABBREVIATIONS.get(phrase.lower()) or zones[phrase.lower()]
            if phrase[:1].isupper() and phrase.lower() in zones and "/" in zones[phrase.lower()]:
                return zones[phrase.lower()]
    return None


CALL_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A tool call id in OpenAI's shape: "call_" and 24 letters and digits."""
    return "call_" + "".join(secrets.choice(CALL_ID_ALPHABET) for _ in range(24))


class ScriptedEngine:
    """Deterministic answers split into the model's tiktoken tokens, paced like a real model.

    `time_to_first_token` seconds pass before the first piece; after that `tokens_per_second` paces the rest
    (None: as fast as possible). Both may be changed while the emulator runs; the next request uses them.
    `reply` replaces the default answer text. Tool calls (see `plan_tool_calls`) come instead of text.
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
        return count_prompt_tokens(request.messages, request.deployment.model, request.tools)

    def embed(self, texts: list[str], dimensions: int) -> list[list[float]]:
        """Feature-hashing bag-of-words vectors: texts sharing words are close, with no model to load."""
        return hashed_vectors(texts, dimensions)

    def pieces(self, request: ChatRequest) -> list[str]:
        """The answer split into completion tokens (a multi-byte character split across tokens stays whole)."""
        return [piece for piece, _ in _split_tokens(self.reply(request), request.deployment.model)]

    def tool_call_pieces(self, request: ChatRequest) -> list[ToolCallPiece]:
        """The planned tool calls as stream pieces: per call a first piece with id and name, then the JSON
        arguments one token at a time. Empty when the engine answers in text."""
        model = request.deployment.model
        pieces = []
        for index, call in enumerate(plan_tool_calls(request)):
            arguments = json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":"))
            name_tokens = len(encoding_for_model(model).encode(call.name, disallowed_special=()))
            pieces.append(ToolCallPiece(index, "", id=new_call_id(), name=call.name, tokens=name_tokens))
            pieces += [ToolCallPiece(index, fragment, tokens=count)
                       for fragment, count in _split_tokens(arguments, model)]
        return pieces

    def generate(self, request: ChatRequest) -> Iterator[str | ToolCallPiece]:
        pieces = (self.tool_call_pieces(request) if getattr(request, "tools", None) else []) or self.pieces(request)
        ttft, rate = self.time_to_first_token, self.tokens_per_second
        start = time.monotonic()
        for index, piece in enumerate(pieces):
            # Due times are measured from the start so sleeping overhead does not accumulate.
            due = start + ttft + (index / rate if rate else 0.0)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield piece


def _split_tokens(text: str, model: str) -> list[tuple[str, int]]:
    """The text split into its tiktoken tokens as (piece, tokens) pairs; a multi-byte character split across tokens
    stays whole (its piece stands for all of them)."""
    encoding = encoding_for_model(model)
    pieces, pending, count = [], b"", 0
    for token in encoding.encode(text, disallowed_special=()):
        pending += encoding.decode_single_token_bytes(token)
        count += 1
        try:
            pieces.append((pending.decode("utf-8"), count))
            pending, count = b"", 0
        except UnicodeDecodeError:
            continue  # part of a character: join it with the next token
    return pieces
