"""Turns exceptions met during a chat turn into one sentence for the person (classification lives in chains/errors)."""
from __future__ import annotations

from chains.errors import classify


def describe_error(exc: BaseException) -> str:
    return classify(exc).message
