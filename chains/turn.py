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
        self._inner: Iterator | None = None

    def text_chunks(self) -> Iterator[str]:
        """Answer text as it streams. Errors end the iteration quietly and are reported by `outcome()`."""
        self._inner = iter(self._runnable.stream(self._inputs, self._config))
        try:
            for chunk in self._inner:
                self.chunks.append(chunk)
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
        return self.final is not None and self.final.response_metadata.get("finish_reason") is not None

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
        finish = final.response_metadata.get("finish_reason") if final is not None else None
        if self.error is not None:
            return TurnOutcome(self.text, "failed", classify(self.error, partial_answer=bool(self.text)), finish)
        if self.stopped:
            return TurnOutcome(self.text, "stopped", None, finish)
        if finish == "content_filter":
            categories = filtered_categories(final.response_metadata.get("content_filter_results"))
            return TurnOutcome(self.text, "filtered", answer_filtered(categories), finish)
        return TurnOutcome(self.text, "complete", None, finish)
