"""Records token usage and latency of every model call from LangChain callbacks, and logs it without message text."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

log = logging.getLogger("chat.usage")


@dataclass
class CallUsage:
    """What one model call cost in tokens and time."""

    run_id: UUID
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float | None = None
    time_to_first_token_s: float | None = None
    finish_reason: str | None = None


class UsageRecorder(BaseCallbackHandler):
    """Collects a CallUsage per model call; usage comes from usage_metadata, which is present when streaming too."""

    def __init__(self) -> None:
        self.calls: dict[UUID, CallUsage] = {}
        self._started: dict[UUID, float] = {}

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list, *, run_id: UUID, **kwargs: Any) -> None:
        self._started[run_id] = time.perf_counter()
        self.calls[run_id] = CallUsage(run_id=run_id)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        call = self.calls.get(run_id)
        if call is not None and token and call.time_to_first_token_s is None:
            call.time_to_first_token_s = time.perf_counter() - self._started[run_id]

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        call = self.calls.setdefault(run_id, CallUsage(run_id=run_id))
        if run_id in self._started:
            call.latency_s = time.perf_counter() - self._started.pop(run_id)
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None) or {}
        metadata = getattr(message, "response_metadata", None) or {}
        call.prompt_tokens = usage.get("input_tokens", 0)
        call.completion_tokens = usage.get("output_tokens", 0)
        call.model = metadata.get("model_name")
        call.finish_reason = metadata.get("finish_reason")
        log.info(
            "model call run_id=%s model=%s prompt_tokens=%d completion_tokens=%d latency_s=%.3f ttft_s=%s finish=%s",
            run_id, call.model, call.prompt_tokens, call.completion_tokens, call.latency_s or 0.0,
            f"{call.time_to_first_token_s:.3f}" if call.time_to_first_token_s is not None else "-", call.finish_reason,
        )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._started.pop(run_id, None)
        log.warning("model call run_id=%s failed: %s", run_id, type(error).__name__)

    @property
    def last(self) -> CallUsage | None:
        return next(reversed(self.calls.values()), None)
