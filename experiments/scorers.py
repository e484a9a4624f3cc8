"""Scoring an answer against the item's reference: 1.0 when it matches, 0.0 when not.

exact     the whole answer is the reference, ignoring case, runs of whitespace and the quotes, backticks, asterisks
          and final full stop a model wraps a short answer in ("**Paris.**" is "paris")
contains  the reference appears in the answer, ignoring case and runs of whitespace
regex     Python's `re.search` of the reference (a pattern) in the answer; write (?i) for case-insensitive
"""
from __future__ import annotations

import re
from collections.abc import Callable

WRAPPING = " \t\r\n\"'`*_.!"


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def exact(answer: str, reference: str) -> bool:
    return normalise(answer).strip(WRAPPING) == normalise(reference).strip(WRAPPING)


def contains(answer: str, reference: str) -> bool:
    return normalise(reference) in normalise(answer)


def regex(answer: str, reference: str) -> bool:
    return re.search(reference, answer) is not None


SCORERS: dict[str, Callable[[str, str], bool]] = {"exact": exact, "contains": contains, "regex": regex}


def score(scorer: str | None, answer: str, reference: str | None) -> float | None:
    """1.0 or 0.0; None when the item has nothing to score against."""
    if scorer is None or reference is None:
        return None
    try:
        match = SCORERS[scorer]
    except KeyError:
        raise ValueError(f"unknown scorer {scorer!r}; the scorers are {', '.join(SCORERS)}") from None
    return 1.0 if match(answer, reference) else 0.0
