"""An evaluation dataset: one JSON object per line, each a conversation to answer and how to score the answer.

    {"id": "q1", "messages": [{"role": "user", "content": "..."}], "reference": "Paris", "scorer": "exact",
     "tags": ["facts"], "images": ["pictures/cat.png"]}
    {"question": "What is 2+2?", "reference": "4"}            # shorthand for one user message

Only `messages` (or `question`) is required. `id` defaults to the line number; `images` are paths relative to the
dataset file, sent with the last message; `scorer` (exact, contains, regex) needs a `reference` and defaults to
`contains` when there is one. A line that breaks these rules is reported with its line number and skipped; the other
lines still load.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

SCORERS = ("exact", "contains", "regex")
DEFAULT_SCORER = "contains"
ROLES = ("user", "assistant")
KEYS = ("id", "messages", "question", "images", "reference", "tags", "scorer")


class DatasetError(Exception):
    """The dataset cannot be used at all (missing, unreadable, no usable line)."""


class LineError(ValueError):
    """One line of the dataset is not a valid item; the message says why, for the person who wrote it."""


@dataclass(frozen=True)
class Message:
    role: str  # user | assistant
    content: str


@dataclass(frozen=True)
class Item:
    id: str
    messages: tuple[Message, ...]  # ends with the user message the chains answer
    line: int
    images: tuple[Path, ...] = ()
    reference: str | None = None
    tags: tuple[str, ...] = ()
    scorer: str | None = None  # None when there is no reference

    @property
    def question(self) -> str:
        return self.messages[-1].content

    @property
    def history(self) -> tuple[Message, ...]:
        """The earlier messages: the conversation the question is asked in."""
        return self.messages[:-1]


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Dataset:
    path: Path
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem


def load_dataset(path: Path) -> Dataset:
    """Every valid item of the file, in order, and a problem for every line that is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such dataset file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None
    dataset, seen = Dataset(path), {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = parse_item(line, number, path.parent)
        except LineError as exc:
            dataset.problems.append(Problem(number, str(exc)))
            continue
        if item.id in seen:
            dataset.problems.append(Problem(number, f"id {item.id!r} is already used on line {seen[item.id]}"))
            continue
        seen[item.id] = number
        dataset.items.append(item)
    return dataset


def parse_item(line: str, number: int, base_dir: Path) -> Item:
    """One line as an item; raises LineError naming what is wrong."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise LineError(f"expected a JSON object, found {type(data).__name__}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise LineError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                        f"the keys are {', '.join(KEYS)}")
    messages = _messages(data)
    item_id = data.get("id", str(number))
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or not str(item_id).strip():
        raise LineError("`id` must be a non-empty string (or a whole number)")
    reference = data.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise LineError("`reference` must be a non-empty string")
    scorer = data.get("scorer")
    if scorer is not None:
        if scorer not in SCORERS:
            raise LineError(f"unknown scorer {scorer!r}; the scorers are {', '.join(SCORERS)}")
        if reference is None:
            raise LineError(f"scorer {scorer!r} needs a `reference` to compare with")
    if reference is not None:
        scorer = scorer or DEFAULT_SCORER
        if scorer == "regex":
            try:
                re.compile(reference)
            except re.error as exc:
                raise LineError(f"`reference` is not a valid regular expression ({exc})") from None
    return Item(id=str(item_id).strip(), messages=messages, line=number, images=_images(data, base_dir),
                reference=reference, tags=_strings(data, "tags"), scorer=scorer)


def _messages(data: dict) -> tuple[Message, ...]:
    if "question" in data and "messages" in data:
        raise LineError("give either `messages` or `question`, not both")
    if "question" in data:
        question = data["question"]
        if not isinstance(question, str) or not question.strip():
            raise LineError("`question` must be a non-empty string")
        return (Message("user", question),)
    if "messages" not in data:
        raise LineError("missing `messages` (a list of {\"role\", \"content\"}) or its shorthand `question`")
    raw = data["messages"]
    if not isinstance(raw, list) or not raw:
        raise LineError("`messages` must be a non-empty list of {\"role\", \"content\"} objects")
    messages = []
    for index, message in enumerate(raw, start=1):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise LineError(f"message {index} must be an object with exactly `role` and `content`")
        if message["role"] not in ROLES:
            raise LineError(f"message {index} has role {message['role']!r}; the roles are {', '.join(ROLES)}")
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise LineError(f"message {index} needs non-empty text as `content`")
        messages.append(Message(message["role"], message["content"]))
    if messages[-1].role != "user":
        raise LineError("the last message must be the user's (it is the one the chains answer)")
    return tuple(messages)


def _strings(data: dict, key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise LineError(f"`{key}` must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _images(data: dict, base_dir: Path) -> tuple[Path, ...]:
    images = []
    for name in _strings(data, "images"):
        path = (base_dir / name).resolve()
        if not path.is_file():
            raise LineError(f"image {name!r} not found (paths are relative to the dataset file: {base_dir})")
        images.append(path)
    return tuple(images)
