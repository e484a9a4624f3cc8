"""One answer streamed from a chain, independent of any page: text as it arrives, then what happened.

The turn engine (engine/turn.py) reads `AnswerStream.text_chunks()`. If the reader stops early (the person pressed Stop),
`close()` closes the model's HTTP stream, LangChain reports the call as ended (so it is still audited), and the partial
answer is kept with status "stopped".
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig

from chains.errors import Failure, answer_filtered, classify, filtered_categories

Status = Literal["complete", "stopped", "failed", "filtered"]


@dataclass(frozen=True)
class ThinkingText:
    """More of the model's reasoning summary (Responses API), as it streams: shown apart from the answer, never the
    answer's text and never remembered."""

    text: str


def finish_reason(metadata: dict) -> str | None:
    """How the answer ended, in Chat Completions' words also for the Responses API (whose response has a `status`
    and, when incomplete, the reason): stop, length, content_filter, tool_calls; None while it streams."""
    if metadata.get("finish_reason"):
        return metadata["finish_reason"]
    status = metadata.get("status")
    if status == "completed":
        return "stop"
    if status == "incomplete":
        reason = (metadata.get("incomplete_details") or {}).get("reason")
        return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason, "length")
    return None


def reasoning_summary(chunk) -> str:
    """The reasoning-summary text in a chunk's content blocks (LangChain's Responses blocks: `{"type": "reasoning",
    "summary": [{"type": "summary_text", "text": ...}]}`, or standard `{"type": "reasoning", "reasoning": ...}`)."""
    content = chunk.content if isinstance(chunk.content, list) else []
    parts = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "reasoning":
            continue
        if isinstance(block.get("reasoning"), str):
            parts.append(block["reasoning"])
        for item in block.get("summary") or ():
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
    return "".join(parts)


@dataclass
class TurnOutcome:
    text: str
    status: Status
    failure: Failure | None
    finish_reason: str | None


class AnswerStream:
    def __init__(self, runnable: Runnable, inputs: dict, config: RunnableConfig) -> None:
        self._runnable, self._inputs, self._config = runnable, inputs, config
        self.chunks: list[AIMessageChunk] = []
        self.error: BaseException | None = None
        self.stopped = False
        self.thinking = ""  # the reasoning summary, whole
        self._inner: Iterator | None = None

    def text_chunks(self) -> Iterator[str | ThinkingText]:
        """Answer text as it streams, and the reasoning summary as `ThinkingText` where the model sends one. Errors end
        the iteration quietly and are reported by `outcome()`."""
        self._inner = iter(self._runnable.stream(self._inputs, self._config))
        try:
            for chunk in self._inner:
                self.chunks.append(chunk)
                thought = reasoning_summary(chunk)
                if thought:
                    self.thinking += thought
                    yield ThinkingText(thought)
                if chunk.text:
                    yield chunk.text
        except Exception as exc:  # noqa: BLE001 - classified in outcome(); the partial answer is kept
            self.error = exc
        except GeneratorExit:
            self.stopped = True
            self.close()
            raise

    def close(self) -> None:
        """End the model call now (Stop): closes the HTTP stream; LangChain still reports the call to callbacks."""
        if self._inner is not None and hasattr(self._inner, "close"):
            self.stopped = self.stopped or self.error is None and not self._finished()
            self._inner.close()
            self._inner = None

    def _finished(self) -> bool:
        return self.final is not None and finish_reason(self.final.response_metadata) is not None

    @property
    def final(self) -> AIMessageChunk | None:
        """The last model call's whole message (an agent streams several calls; their metadata must not mix)."""
        if not self.chunks:
            return None
        last = [c for c in self.chunks if c.id == self.chunks[-1].id]
        return sum(last[1:], last[0])

    @property
    def text(self) -> str:
        return "".join(chunk.text for chunk in self.chunks)

    def outcome(self) -> TurnOutcome:
        final = self.final
        finish = finish_reason(final.response_metadata) if final is not None else None
        if self.error is not None:
            return TurnOutcome(self.text, "failed", classify(self.error, partial_answer=bool(self.text)), finish)
        if self.stopped:
            return TurnOutcome(self.text, "stopped", None, finish)
        if finish == "content_filter":
            categories = filtered_categories(final.response_metadata.get("content_filter_results"))
            return TurnOutcome(self.text, "filtered", answer_filtered(categories), finish)
        return TurnOutcome(self.text, "complete", None, finish)
