"""One JSON-lines audit record per model call (summary and draft calls included), correlated by LangChain's run_id.

Records say who, from where, through which chain, deployment and identity, what it cost and how it ended. They never
hold tokens, secrets or cookies, and hold message text only when APP_AUDIT_INCLUDE_TEXT is on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from chains.errors import classify, filtered_categories
from chains.request_rules import audited
from chains.tokens import count_text
from chains.turn import finish_reason, reasoning_summary
from config.catalog import Deployment

AUDIT_LOGGER = "chat.audit"


@dataclass(frozen=True)
class AuditContext:
    """What is known about a turn before any model call: who, from where, and through what."""

    user_oid: str
    tenant_id: str
    source_ip: str | None
    session: str  # a hash of the session id: the id itself is a credential
    conversation_id: str
    chain: str  # name@version
    deployment: str
    identity_mode: str  # app | on_behalf_of
    include_text: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    origin: str = "chat"  # chat (a person on the page) | evaluation (the offline experiment runner)


def session_reference(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def configure_audit_log(data_dir: Path, *, to_stdout: bool = False, max_bytes: int = 10 * 1024 * 1024,
                        backups: int = 10) -> logging.Logger:
    """`<data_dir>/audit/audit.jsonl`, rotated by size; also stdout in a container. Idempotent per process."""
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # audit lines go to their own sinks, not the app log
    path = (data_dir / "audit" / "audit.jsonl").resolve()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        handler.setFormatter(_JsonLines())
        logger.addHandler(handler)
    if to_stdout and not any(getattr(h, "stream", None) is sys.stdout for h in logger.handlers):
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(_JsonLines())
        logger.addHandler(stream)
    return logger


class AuditLog:
    """Where audit records go: one JSON line each in the audit log, then to each listener (e.g. the chain statistics
    table), so aggregates are kept up to date when a call ends instead of being read back from the file."""

    def __init__(self, logger: logging.Logger | None = None, listeners: Sequence[Callable[[dict], None]] = ()) -> None:
        self.logger = logger or logging.getLogger(AUDIT_LOGGER)
        self.listeners = list(listeners)

    def write(self, record: dict) -> None:
        self.logger.info(json.dumps(record, ensure_ascii=False))
        for listener in self.listeners:
            try:
                listener(record)
            except Exception as exc:  # noqa: BLE001 - a statistics problem must never lose the answer or the audit line
                logging.getLogger(__name__).warning("audit listener failed: %s", type(exc).__name__)

    def event(self, event: str, context: AuditContext, **fields: Any) -> dict:
        """A record for something that is not a model call (an expired sign-in, a blocked send, a vote)."""
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event,
                  **{k: v for k, v in asdict(context).items() if k != "include_text"}, **fields}
        self.write(record)
        return record


def call_purpose(tags: list[str] | None, metadata: dict[str, Any] | None) -> str:
    """Why a model call was made: the answer shown to the person, a hidden draft, or a memory summary."""
    tags, metadata = tags or [], metadata or {}
    if "summary" in tags or metadata.get("lc_source") == "summarization":
        return "summary"
    if "draft" in tags:
        return "draft"
    return "answer"


@dataclass
class _Call:
    started: float
    purpose: str
    prompt_text: str | None
    messages: list
    first_token: float | None = None
    sent: dict | None = None  # the parameters the request carried (chains/request_rules.py applied)


class AuditHandler(BaseCallbackHandler):
    """Writes exactly one record per model call when it ends: ok, filtered, stopped or failed."""

    raise_error = False  # an audit problem must never break the person's answer

    def __init__(self, context: AuditContext, deployment: Deployment, *, logger: logging.Logger | None = None,
                 sink: AuditLog | None = None) -> None:
        self.context = context
        self.deployment = deployment
        self.sink = sink or AuditLog(logger)
        self._calls: dict[UUID, _Call] = {}
        self._tools: dict[UUID, tuple[float, str, str | None]] = {}
        self.records: list[dict] = []  # this turn's records, for the page's totals

    # -- LangChain hooks --------------------------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list, *, run_id: UUID,
                            tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        purpose = call_purpose(tags, metadata)
        if purpose == "answer" and self.context.origin == "evaluation":
            purpose = "evaluation"  # an offline run's answers are not answers anyone read
        text = None
        if self.context.include_text:
            text = "\n".join(f"{m.type}: {m.text}" for batch in messages for m in batch)
        sent = audited(kwargs.get("invocation_params") or {}) if kwargs.get("invocation_params") else None
        self._calls[run_id] = _Call(time.perf_counter(), purpose, text, [m for batch in messages for m in batch], sent=sent)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.get(run_id)
        if call is not None and token and call.first_token is None:
            call.first_token = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        message = _message(response)
        metadata = getattr(message, "response_metadata", None) or {}
        finish = finish_reason(metadata)  # Chat Completions' finish_reason, or the Responses API's status
        verdicts = _verdicts(metadata)
        # "length": the answer reached max_completion_tokens (a reasoning model may have spent all of it thinking).
        outcome = {"content_filter": "answer_filtered", "length": "length"}.get(finish, "ok")
        self._write(run_id, outcome=outcome, message=message, finish_reason=finish, verdicts=verdicts,
                    request_id=_request_id(metadata))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, response: LLMResult | None = None,
                     **kwargs: Any) -> None:
        message = _message(response) if response is not None else None
        if isinstance(error, GeneratorExit):  # the reader stopped listening: the person pressed Stop
            outcome, failure = "stopped", None
        else:
            failure = classify(error, partial_answer=bool(message is not None and message.text))
            outcome = failure.kind
        verdicts = {"prompt": list(failure.categories)} if failure and failure.kind == "prompt_filtered" else {}
        self._write(run_id, outcome=outcome, message=message, finish_reason=None, verdicts=verdicts,
                    request_id=failure.request_id if failure else None,
                    status_code=failure.status_code if failure else None,
                    error_code=failure.error_code if failure else None,
                    error_param=failure.error_param if failure else None)

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kwargs: Any) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        self._tools[run_id] = (time.perf_counter(), name, input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        artifact = getattr(output, "artifact", None)
        artifact = artifact if isinstance(artifact, dict) else {}
        self._write_tool(run_id, artifact.get("outcome", "ok"), artifact.get("request_id"),
                         getattr(output, "content", output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        outcome = "stopped" if isinstance(error, GeneratorExit) else "error"
        self._write_tool(run_id, outcome, None, None, error=type(error).__name__)

    def _write_tool(self, run_id: UUID, outcome: str, request_id: str | None, result: Any, **extra: Any) -> None:
        """One record per tool call: which tool, for whom, how long, how it ended, Graph's request id; the arguments
        and the result only with APP_AUDIT_INCLUDE_TEXT (they can hold the person's calendar)."""
        started, name, arguments = self._tools.pop(run_id, (time.perf_counter(), "tool", None))
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": "tool_call",
            "run_id": str(run_id), "purpose": "tool", "tool": name,
            **{k: v for k, v in asdict(self.context).items() if k != "include_text"},
            "latency_ms": round((time.perf_counter() - started) * 1000), "outcome": outcome,
            "graph_request_id": request_id, **extra,
        }
        if self.context.include_text:
            record["arguments"], record["result"] = arguments, None if result is None else str(result)
        self.records.append(record)
        self.sink.write(record)

    # -- the record -------------------------------------------------------------------------------------------------
    def _write(self, run_id: UUID, *, outcome: str, message, finish_reason: str | None, verdicts: dict,
               request_id: str | None, status_code: int | None = None, error_code: str | None = None,
               error_param: str | None = None) -> None:
        call = self._calls.pop(run_id, None) or _Call(time.perf_counter(), "answer", None, [])
        now = time.perf_counter()
        usage = getattr(message, "usage_metadata", None) or {}
        prompt_tokens, completion_tokens = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        reasoning_tokens = _reasoning_tokens(usage)  # part of completion_tokens: billed as output, priced with them
        estimated = False
        if not usage and outcome in ("stopped", "stream_cut"):
            # A stopped or cut stream never receives Azure's usage chunk: estimate both sides with tiktoken, and say so.
            prompt_text = "\n".join(m.text for m in call.messages)
            prompt_tokens = _estimate_tokens(prompt_text, self.deployment.model) if prompt_text else 0
            completion_tokens = _estimate_tokens(message.text, self.deployment.model) if message is not None else 0
            reasoning_tokens = 0  # hidden reasoning cannot be estimated from the text
            estimated = True
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "event": "model_call",
            "run_id": str(run_id),
            "purpose": call.purpose,
            **{k: v for k, v in asdict(self.context).items() if k != "include_text"},
            # What this call sent (a summary's temperature is not the person's): the context's values are the turn's.
            **(call.sent or {}),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "reasoning_tokens": reasoning_tokens,
            "usage_estimated": estimated,
            "cost_usd": str(self.deployment.cost(prompt_tokens, completion_tokens)),
            "latency_ms": round((now - call.started) * 1000),
            "time_to_first_token_ms": round((call.first_token - call.started) * 1000) if call.first_token else None,
            "finish_reason": finish_reason,
            "content_filter": verdicts,
            "azure_request_id": request_id,
            "status_code": status_code,
            # Azure's own reason for a refusal (e.g. unsupported_value, temperature): codes, never message text.
            **({"error_code": error_code, "error_param": error_param} if error_code or error_param else {}),
            "outcome": outcome,
        }
        summary = reasoning_summary(message) if message is not None else ""
        if summary:  # the model's summary of its reasoning (Responses API); the reasoning itself is never sent to us
            record["reasoning_summary_chars"] = len(summary)
        if self.context.include_text:
            record["prompt_text"] = call.prompt_text
            record["answer_text"] = message.text if message is not None else None
            if summary:
                record["reasoning_summary"] = summary
        self.records.append(record)
        self.sink.write(record)


def _message(response: LLMResult | None):
    if response is None or not response.generations:
        return None
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if message is not None:
                return message
    return None


def _verdicts(metadata: dict) -> dict:
    """Categories the content filter flagged, for the prompt and the answer (names only, never the text)."""
    verdicts: dict[str, list[str]] = {}
    for item in metadata.get("prompt_filter_results") or []:
        flagged = filtered_categories(item.get("content_filter_results"))
        if flagged:
            verdicts["prompt"] = list(flagged)
    flagged = filtered_categories(metadata.get("content_filter_results"))
    if flagged:
        verdicts["answer"] = list(flagged)
    return verdicts


def _request_id(metadata: dict) -> str | None:
    headers = {k.lower(): v for k, v in (metadata.get("headers") or {}).items()}
    return headers.get("apim-request-id") or headers.get("x-request-id") or metadata.get("id")


def _reasoning_tokens(usage: dict) -> int:
    """Hidden reasoning tokens in LangChain's usage metadata (`completion_tokens_details.reasoning_tokens`), under
    "reasoning" or, for a priority or flex service tier, "<tier>_reasoning"; 0 for models that do not reason."""
    details = usage.get("output_token_details") or {}
    return sum(int(v or 0) for k, v in details.items() if k == "reasoning" or k.endswith("_reasoning"))


def _estimate_tokens(text: str, model: str) -> int:
    return count_text(text, model)
