"""The page-streaming callback handler: LangChain runs (model calls, tools, retrievers) become step events.

Like Chainlit's handler it maps each run to a step with its parent, closes steps on end or error, and treats errors as
steps rather than crashes; unlike it, it never draws anything. It queues `StepStarted`/`StepEnded` events that the turn
engine drains between answer chunks, so the page, the experiment runner or a test decides how to show them.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from callbacks.audit import call_purpose

StepKind = Literal["model", "tool", "retrieval"]
SHORT = 160  # characters of input/output a step shows: enough to recognise it, never a wall of text


@dataclass(frozen=True)
class StepStarted:
    id: str
    kind: StepKind
    name: str
    input: str
    parent_id: str | None = None


@dataclass(frozen=True)
class StepEnded:
    id: str
    kind: StepKind
    name: str
    output: str
    duration_ms: int
    error: str | None = None  # None: it worked; else a short reason ("stopped", "RateLimitError")


def short(text: Any, limit: int = SHORT) -> str:
    text = " ".join(str(text if text is not None else "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Open:
    kind: StepKind
    name: str
    started: float


class StepEvents(BaseCallbackHandler):
    """Collects step events; `drain()` hands over those that happened since the last call (thread-safe)."""

    raise_error = False  # showing steps must never break the answer

    def __init__(self) -> None:
        self._events: deque[StepStarted | StepEnded] = deque()
        self._open: dict[UUID, _Open] = {}
        self._ended: list[StepEnded] = []
        self._inputs: dict[str, str] = {}
        self._lock = threading.Lock()

    def finished(self) -> list[dict]:
        """Every step that ended, except the answer itself, as stored with the answer."""
        with self._lock:
            return [{"kind": e.kind, "name": e.name, "output": e.output, "duration_ms": e.duration_ms,
                     "error": e.error, "input": self._inputs.get(e.id, "")}
                    for e in self._ended if not (e.kind == "model" and e.name == "answer")]

    def drain(self) -> list[StepStarted | StepEnded]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    # -- starts ------------------------------------------------------------------------------------------------------
    def _start(self, run_id: UUID, parent_run_id: UUID | None, kind: StepKind, name: str, text: Any) -> None:
        with self._lock:
            self._open[run_id] = _Open(kind, name, time.perf_counter())
            self._inputs[str(run_id)] = short(text)
            self._events.append(StepStarted(str(run_id), kind, name, short(text),
                                            str(parent_run_id) if parent_run_id else None))

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list, *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        last = messages[-1][-1] if messages and messages[-1] else None
        self._start(run_id, parent_run_id, "model", call_purpose(tags, metadata), last.text if last is not None else "")

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        self._start(run_id, parent_run_id, "tool", name, input_str)

    def on_retriever_start(self, serialized: dict[str, Any], query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "retrieval"
        self._start(run_id, parent_run_id, "retrieval", name, query)

    # -- ends --------------------------------------------------------------------------------------------------------
    def _end(self, run_id: UUID, output: Any, error: str | None = None) -> None:
        with self._lock:
            step = self._open.pop(run_id, None)
            if step is None:
                return
            ended = StepEnded(str(run_id), step.kind, step.name, short(output),
                              round((time.perf_counter() - step.started) * 1000), error)
            self._ended.append(ended)
            self._events.append(ended)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        texts = [g.text for gens in response.generations for g in gens]
        self._end(run_id, texts[0] if texts else "")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, "", _reason(error))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        artifact = getattr(output, "artifact", None)
        outcome = artifact.get("outcome") if isinstance(artifact, dict) else None
        self._end(run_id, getattr(output, "content", output), outcome if outcome not in (None, "ok") else None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, "", _reason(error))

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, f"{len(documents)} passage(s)" if hasattr(documents, "__len__") else documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, "", _reason(error))


def _reason(error: BaseException) -> str:
    return "stopped" if isinstance(error, GeneratorExit) else type(error).__name__
