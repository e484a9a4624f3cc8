"""Every failure of a model call, classified once: a kind for the audit log and a clear sentence for the person."""
from __future__ import annotations

from dataclasses import dataclass, field

import openai
from azure.core.exceptions import ClientAuthenticationError


@dataclass(frozen=True)
class Failure:
    kind: str  # throttled, server_error, timeout, stream_cut, prompt_filtered, answer_filtered, auth_failed,
    #            not_found, context_too_long, forbidden, bad_request, stopped, unknown
    message: str
    retry_after_seconds: int | None = None
    categories: tuple[str, ...] = field(default=())
    status_code: int | None = None
    request_id: str | None = None
    error_code: str | None = None  # Azure's error code and parameter, for a 400 (e.g. unsupported_value, temperature)
    error_param: str | None = None


def classify(exc: BaseException, *, partial_answer: bool = False) -> Failure:
    """What went wrong and what the person can do about it. `partial_answer`: some of the answer had arrived."""
    status = getattr(exc, "status_code", None)
    request_id = getattr(exc, "request_id", None)
    if type(exc).__name__ == "ModelCallLimitExceededError":  # the agent's bound on model calls per turn
        return Failure("step_limit", "The agent stopped after the most model calls a turn may make, without a final "
                       "answer. What it found is in the steps above; ask a narrower question.")
    if isinstance(exc, ClientAuthenticationError):
        return Failure("auth_failed", "Microsoft Entra ID did not give a token for Azure OpenAI, so nothing was sent. "
                       "Try again shortly; if it persists, tell an administrator (the identity may lack consent or access).")
    if isinstance(exc, openai.RateLimitError):
        wait = _retry_after(exc)
        text = f"Please wait {wait} second{'s' if wait != 1 else ''} and send again." if wait else "Please wait a moment and send again."
        return Failure("throttled", f"Azure OpenAI is busy (rate limit reached) even after retrying. {text}",
                       retry_after_seconds=wait, status_code=429, request_id=request_id)
    if isinstance(exc, openai.AuthenticationError):
        return Failure("auth_failed", "Azure OpenAI rejected the token (401). An administrator needs to check the "
                       "identity's access to the resource.", status_code=401, request_id=request_id)
    if isinstance(exc, openai.PermissionDeniedError):
        return Failure("forbidden", "This identity is not allowed to use the selected deployment (403). Ask for the "
                       "Cognitive Services OpenAI User role.", status_code=403, request_id=request_id)
    if isinstance(exc, openai.NotFoundError):
        return Failure("not_found", "The selected deployment does not exist on the Azure OpenAI resource (404). Pick "
                       "another deployment or tell an administrator.", status_code=404, request_id=request_id)
    if isinstance(exc, openai.BadRequestError):
        code = getattr(exc, "code", None)
        if code == "content_filter":
            categories = _filtered_categories(exc)
            which = f" ({', '.join(categories)})" if categories else ""
            return Failure("prompt_filtered", f"Your message was blocked by the content filter{which}, so it was not "
                           "answered. Your message is kept below: rephrase it and send again.",
                           categories=categories, status_code=400, request_id=request_id)
        if code == "context_length_exceeded":
            return Failure("context_too_long", "The conversation is too long for this deployment's context window. "
                           "Start a new conversation, shorten the answer limit, or pick a deployment with a larger "
                           "window.", status_code=400, request_id=request_id)
        error = _error_body(exc)
        return Failure("bad_request", _bad_request_message(exc), status_code=400, request_id=request_id,
                       error_code=_short(error.get("code")), error_param=_short(error.get("param")))
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", "Azure OpenAI did not answer in time, even after retrying. Please send again.")
    if isinstance(exc, openai.InternalServerError) or (isinstance(status, int) and status >= 500):
        return Failure("server_error", "Azure OpenAI had an internal error (5xx), even after retrying. Please send "
                       "again in a moment.", status_code=status, request_id=request_id)
    if partial_answer or _is_cut(exc):
        return Failure("stream_cut", "The connection to Azure OpenAI was cut before the answer was complete. What "
                       "arrived is kept and marked; send again for a full answer.")
    if isinstance(exc, openai.APIConnectionError):
        return Failure("server_error", "Azure OpenAI could not be reached. Please send again in a moment.")
    return Failure("unknown", "The answer failed because of an unexpected error. Please send again; the details "
                   "are in the server log.")


def _error_body(exc: openai.BadRequestError) -> dict:
    body = exc.body if isinstance(exc.body, dict) else {}
    return body.get("error") if isinstance(body.get("error"), dict) else body


def _short(value: object) -> str | None:
    return str(value)[:80] if value not in (None, "") else None


def _bad_request_message(exc: openai.BadRequestError) -> str:
    """Azure's reason in the page's words: its code, the parameter and its own sentence (never the request body)."""
    error = _error_body(exc)
    code, param, reason = error.get("code"), error.get("param"), error.get("message")
    detail = ", ".join(filter(None, [str(code) if code else None, f"parameter '{param}'" if param else None]))
    text = f"Azure OpenAI could not accept this request (400{': ' + detail if detail else ''})."
    if isinstance(reason, str) and reason:
        text += f" Azure said: “{reason[:300]}”"
    return text + " Your conversation is kept: pick another deployment or chain and send again."


def answer_filtered(categories: tuple[str, ...]) -> Failure:
    which = f" ({', '.join(categories)})" if categories else ""
    return Failure("answer_filtered", f"The answer was stopped by the content filter{which}. What arrived before is "
                   "kept and marked.", categories=categories)


def filtered_categories(results: dict | None) -> tuple[str, ...]:
    """Categories marked filtered in Azure's content_filter_results."""
    return tuple(sorted(name for name, verdict in (results or {}).items()
                        if isinstance(verdict, dict) and verdict.get("filtered")))


def _filtered_categories(exc: openai.BadRequestError) -> tuple[str, ...]:
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("innererror") or (body.get("error") or {}).get("innererror") or {}
    return filtered_categories(inner.get("content_filter_result"))


def _retry_after(exc: openai.RateLimitError) -> int | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return max(1, round(float(headers.get("retry-after"))))
    except (TypeError, ValueError):
        return None


def _is_cut(exc: BaseException) -> bool:
    # httpx (as httpx2 inside openai) raises RemoteProtocolError/ReadError when the server drops a stream.
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    return bool(names & {"RemoteProtocolError", "ReadError", "IncompleteRead", "ChunkedEncodingError"})
