"""Turns exceptions met during a chat turn into one sentence for the person; the single place that does so."""
from __future__ import annotations

import openai
from azure.core.exceptions import ClientAuthenticationError


def describe_error(exc: BaseException) -> str:
    """A clear, non-technical explanation of what went wrong and what the person can do."""
    if isinstance(exc, ClientAuthenticationError):
        return "The app could not get a token from Microsoft Entra ID, so Azure OpenAI was not called. Try again shortly; if it persists, tell an administrator."
    if isinstance(exc, openai.RateLimitError):
        wait = _retry_after(exc)
        return f"Azure OpenAI is busy (rate limit reached). Please wait {wait} and send again." if wait else "Azure OpenAI is busy (rate limit reached). Please wait a moment and send again."
    if isinstance(exc, openai.AuthenticationError):
        return "Azure OpenAI rejected the app's credentials (401). An administrator needs to check the identity's access."
    if isinstance(exc, openai.PermissionDeniedError):
        return "This identity is not allowed to use the selected deployment (403)."
    if isinstance(exc, openai.NotFoundError):
        return "The selected deployment does not exist on the Azure OpenAI resource (404). Pick another deployment or tell an administrator."
    if isinstance(exc, openai.BadRequestError):
        code = getattr(exc, "code", None)
        if code == "content_filter":
            return "Your message was blocked by the content filter, so it was not answered. Rephrase it and send again."
        if code == "context_length_exceeded":
            return "The conversation is too long for this deployment's context window. Start a new conversation or pick a deployment with a larger window."
        return "Azure OpenAI could not accept this request (400)."
    if isinstance(exc, openai.APITimeoutError):
        return "Azure OpenAI did not answer in time. Please send again."
    if isinstance(exc, openai.APIConnectionError):
        return "The connection to Azure OpenAI failed or was cut. Please send again."
    if isinstance(exc, openai.InternalServerError):
        return "Azure OpenAI had an internal error (5xx). Please send again in a moment."
    return "The answer failed because of an unexpected error. Please send again; the details are in the server log."


def _retry_after(exc: openai.RateLimitError) -> str | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("retry-after")
    try:
        seconds = max(1, round(float(value)))
    except (TypeError, ValueError):
        return None
    return f"{seconds} second{'s' if seconds != 1 else ''}"
