"""Each failure a person can meet maps to a clear sentence."""
import httpx2
import openai
import pytest
from azure.core.exceptions import ClientAuthenticationError

from chains.errors import classify


def describe_error(exc: BaseException) -> str:
    """The sentence a person reads for a failure (chains/errors.classify)."""
    return classify(exc).message


REQUEST = httpx2.Request("POST", "https://localhost/openai/deployments/gpt-4o/chat/completions")


def _status(cls, status, body=None, headers=None):
    response = httpx2.Response(status, request=REQUEST, headers=headers or {}, json=body or {})
    return cls("error", response=response, body=(body or {}).get("error"))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_status(openai.RateLimitError, 429, headers={"retry-after": "7"}), "wait 7 seconds"),
        (_status(openai.RateLimitError, 429), "wait a moment"),
        (_status(openai.BadRequestError, 400, {"error": {"code": "content_filter", "message": "x"}}), "content filter"),
        (_status(openai.BadRequestError, 400, {"error": {"code": "context_length_exceeded", "message": "x"}}), "too long"),
        (_status(openai.AuthenticationError, 401), "rejected the token"),
        (_status(openai.NotFoundError, 404), "deployment does not exist"),
        (_status(openai.InternalServerError, 500), "internal error"),
        (openai.APITimeoutError(request=REQUEST), "did not answer in time"),
        (openai.APIConnectionError(request=REQUEST), "could not be reached"),
        (ClientAuthenticationError("AADSTS7000215"), "did not give a token"),
        (RuntimeError("boom"), "unexpected error"),
    ],
)
def test_error_is_explained(error, expected):
    message = describe_error(error)
    assert expected in message
    assert "Traceback" not in message and "AADSTS" not in message
