"""What a tool is: a name, a description and an argument schema for the model, whether it acts with the person's own
identity, which app roles may use it, and the function that runs it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel

from chains.tools.graph import GraphClient


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use for one person's turn: Graph with their delegated token (None when nobody is signed in),
    their time zone, and the clock."""

    graph: GraphClient | None = None
    timezone: str = "UTC"
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    # Searches the conversation's indexed documents: passages numbered for citation; None when there are none.
    search_documents: Callable[[str], str] | None = None


class ToolFailed(Exception):
    """A failure the model should tell the person about: `str()` is written for them; `kind` goes to the audit."""

    def __init__(self, kind: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.request_id = kind, request_id


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    run: Callable[[ToolContext, BaseModel], str]
    acts_as_person: bool = False  # needs the person's own delegated identity (Microsoft Graph on-behalf-of)
    roles: frozenset[str] = field(default_factory=frozenset)  # app roles that may use it; empty: everyone
    needs_documents: bool = False  # offered only when the conversation has indexed documents


def graph_of(context: ToolContext) -> GraphClient:
    if context.graph is None:
        raise ToolFailed("sign_in_required", "Microsoft Graph needs a signed-in person; nobody is signed in here.")
    return context.graph
