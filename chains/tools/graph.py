"""A small Microsoft Graph client for agent tools: the person's delegated (on-behalf-of) token on every request,
paging through @odata.nextLink, 429/503 retried after Retry-After, and every failure a `GraphError` whose message is
written for the person (the tool hands it to the model, which tells them)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from auth.signin import SignInExpired

log = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 10  # a Retry-After longer than this ends the call with a clear message instead of a long stall


class GraphError(Exception):
    """`kind` for the audit (forbidden, throttled, unavailable, not_found, auth_failed, sign_in_expired, bad_request);
    `str()` is for the person."""

    def __init__(self, kind: str, message: str, request_id: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.request_id, self.status = kind, request_id, status


class GraphClient:
    def __init__(self, endpoint: str, token_provider: Callable[[], str], *, timeout: float = 20.0,
                 max_retries: int = 2, sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoint, self._token, self._sleep = endpoint.rstrip("/"), token_provider, sleep
        self.timeout, self.max_retries = timeout, max_retries
        self.last_request_id: str | None = None

    def copy(self) -> "GraphClient":
        return GraphClient(self.endpoint, self._token, timeout=self.timeout, max_retries=self.max_retries,
                           sleep=self._sleep)

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> dict:
        """One GET on /v1.0<path> (or a full nextLink URL)."""
        url = path if path.startswith("https://") or path.startswith("http://") else f"{self.endpoint}/v1.0{path}"
        for attempt in range(self.max_retries + 1):
            try:
                token = self._token()
            except SignInExpired:
                raise GraphError("sign_in_expired", "Your sign-in has expired, so Microsoft Graph could not be asked. "
                                 "Sign in again and ask once more.") from None
            except Exception as exc:  # noqa: BLE001 - Entra ID refused the on-behalf-of exchange (e.g. no consent)
                log.warning("no Graph token: %s", type(exc).__name__)
                raise GraphError("auth_failed", "Microsoft Entra ID did not give this app a Microsoft Graph token "
                                 "for you (the app may lack your consent). Ask an administrator.") from None
            try:
                response = httpx.get(url, params=params if "?" not in url else None, timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {token}", **(headers or {})})
            except httpx.HTTPError as exc:
                raise GraphError("unavailable", "Microsoft Graph could not be reached. Try again in a moment.") from exc
            self.last_request_id = response.headers.get("request-id")
            if response.status_code in (429, 503) and attempt < self.max_retries:
                wait = _retry_after(response)
                if wait <= MAX_WAIT_SECONDS:
                    self._sleep(wait)
                    continue
            if response.is_success:
                return response.json()
            raise _error(response, self.last_request_id)
        raise AssertionError("unreachable")

    def get_all(self, path: str, params: dict | None = None, headers: dict | None = None, limit: int = 50) -> list:
        """Every item of a paged collection, following @odata.nextLink, at most `limit` items."""
        items, page = [], self.get(path, params, headers)
        while True:
            items += page.get("value", [])
            link = page.get("@odata.nextLink")
            if not link or len(items) >= limit:
                return items[:limit]
            page = self.get(link, None, headers)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _error(response: httpx.Response, request_id: str | None) -> GraphError:
    status = response.status_code
    try:
        code = response.json().get("error", {}).get("code", "")
    except ValueError:
        code = ""
    if status == 401:
        return GraphError("auth_failed", "Microsoft Graph did not accept your sign-in token. Sign in again.",
                          request_id, status)
    if status == 403:
        return GraphError("forbidden", "Microsoft Graph refused: this app has not been granted that permission for "
                          f"you ({code or 'access denied'}). An administrator can grant consent.", request_id, status)
    if status == 404:
        return GraphError("not_found", "Microsoft Graph has no such item for you (for example, no manager is set).",
                          request_id, status)
    if status == 429:
        return GraphError("throttled", "Microsoft Graph is throttling requests right now. Ask again in a minute.",
                          request_id, status)
    if status >= 500:
        return GraphError("unavailable", "Microsoft Graph is unavailable right now. Try again in a moment.",
                          request_id, status)
    return GraphError("bad_request", f"Microsoft Graph could not answer that request ({code or status}).",
                      request_id, status)
