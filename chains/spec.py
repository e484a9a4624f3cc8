"""What a chain is: a named, versioned recipe that turns a chat model into a runnable."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.runnables import Runnable


@dataclass(frozen=True)
class ChainSpec:
    name: str
    version: str
    title: str
    description: str
    build: Callable[..., Runnable]  # build(model), or build(model, tools) when uses_tools
    system_prompt: str = ""  # what the context-window guard counts before sending
    # The chain's own temperature; None lets the person choose (the sidebar slider).
    temperature: float | None = None
    model_calls_per_turn: int = 1
    # An agent: `build(model, tools)` gets the tools this person may use on this deployment.
    uses_tools: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"
