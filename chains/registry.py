"""The chains people can pick. A chain is a named, versioned LangChain runnable built from a model and a system prompt.

Adding one: write `chains/<name>.py` exposing a `ChainSpec` (see chains/spec.py), import it here and add it to
`REGISTRY`. Every chain takes {"messages": [...]} (the conversation as memory presents it) and streams AIMessageChunks
of the answer shown to the person; other model calls inside it (drafts) are audited but not streamed.
"""
from __future__ import annotations

from chains.agent import AGENT
from chains.assistant import ASSISTANT
from chains.concise import CONCISE
from chains.draft_refine import DRAFT_REFINE
from chains.spec import ChainSpec

REGISTRY: dict[str, ChainSpec] = {spec.name: spec for spec in (ASSISTANT, CONCISE, DRAFT_REFINE, AGENT)}
DEFAULT_CHAIN = "assistant"


def get_chain(name: str | None) -> ChainSpec:
    """The named chain, or the default one for an unknown or retired name (old messages keep their stored label)."""
    return REGISTRY.get(name or DEFAULT_CHAIN, REGISTRY[DEFAULT_CHAIN])
