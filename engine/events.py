"""What a chat turn reports while it runs, in the order it happens.

Attached documents are read first: a long one reports `DocumentProgress` while it is indexed, and each new document
`DocumentIndexed` when it is ready (before `Accepted`, since what the model is sent depends on them).
A turn that is sent yields `Accepted` (the person's message as stored, images prepared), then any of `Status`,
`StepStarted`/`StepEnded`, `TextDelta` and `UsageUpdate`, and ends with exactly one `Outcome`. A turn that is not sent
(it does not fit, the sign-in expired, images for a text-only deployment, nothing to send) yields one `Blocked`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from callbacks.steps import StepEnded, StepStarted
from chains.errors import Failure
from chains.guard import ContextCheck
from documents.reader import DocumentIndexed, DocumentProgress
from memory.conversation import Turn, Usage


@dataclass(frozen=True)
class Accepted:
    """The person's message is part of the conversation now (shown with its images and any files left out)."""

    turn: Turn


@dataclass(frozen=True)
class Status:
    """Work the person waits for that is not the answer itself, e.g. summarising earlier messages."""

    kind: Literal["summarising", "waiting"]
    text: str


@dataclass(frozen=True)
class TextDelta:
    """More of the answer, as it streams."""

    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    """More of the model's reasoning summary, as it streams (before and apart from the answer)."""

    text: str


@dataclass(frozen=True)
class UsageUpdate:
    """This turn's tokens and cost so far, after each model call ends (drafts and summaries included)."""

    usage: Usage


@dataclass(frozen=True)
class BudgetNotice:
    """The person has used most of the month's budget (the turn goes on)."""

    text: str


BlockReason = Literal["context_too_long", "sign_in_expired", "sign_in_unavailable", "images_not_accepted",
                      "nothing_to_send", "over_budget", "rate_limited", "too_many_images", "too_many_files",
                      "confirm_indexing", "file_too_large"]


@dataclass(frozen=True)
class Blocked:
    """Nothing was sent to the model. `draft` is the person's text, to keep for them; `check` the guard's numbers."""

    reason: BlockReason
    message: str
    draft: str
    check: ContextCheck | None = None
    approve: tuple[str, ...] = ()  # confirm_indexing: the documents (stored:<sha256>.<ext>) a resend may index
    too_large: tuple[str, ...] = ()  # file_too_large: the files (by name) to leave out of a resend


@dataclass(frozen=True)
class Outcome:
    """The turn has ended and is stored (unless `saved` is False, which `answer.notice` then says)."""

    user: Turn
    answer: Turn
    saved: bool
    failure: Failure | None = None
    keep_draft: str | None = None  # Azure said the conversation is too long: offer the text again

    @property
    def status(self) -> str:
        return self.answer.status


Event = Union[DocumentProgress, DocumentIndexed, BudgetNotice, Accepted, Status, StepStarted, StepEnded, ThinkingDelta,
              TextDelta, UsageUpdate, Blocked, Outcome]
