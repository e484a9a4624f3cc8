"""Streamlit's own routes and messages, treated as untrusted input at the boundary where our sign-in meets Streamlit's
sessions (pure ASGI, in front of everything Streamlit serves).

Streamlit knows nothing of this app's sign-in: to it every person is the same anonymous identity, so a WebSocket that
presents another page's session id (the third `Sec-WebSocket-Protocol` entry) would be handed that session, its state
and its files. Here:

- **The page's WebSocket** (`/_stcore/stream`): its `Origin` must be the app's public origin (scheme, host and port);
  the connection carries an `X-Chat-Owner` header that only this middleware writes (a keyed hash of the sign-in
  session named by the cookie, or a fresh random value without a valid one), which Streamlit reads as the session's
  identity (`server.trustedUserHeaders`): a reconnect whose cookie names someone else, or nobody, never matches and
  gets a fresh session. Streamlit compares identities itself (`AppSession.matches_user_info`).
- **BackMsg types the page never sends** (`clear_cache`, `backend_operation_request`, `set_run_on_save`, the debug
  ones, …) are dropped before Streamlit sees them; a `file_urls_request` for more files than a message may carry too.
- **The upload route** (`/_stcore/upload_file/<session>/<file>`) needs a signed-in session that owns that Streamlit
  session, a `Content-Length` within the product's own per-file limit, and at most `in_flight_bytes` uploading per
  person at once.
- **`/_stcore/metrics`** (Streamlit's cache and memory figures) opens only like `/metrics` (token or networks).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.sessions import SESSION_COOKIE

log = logging.getLogger("chat.web")

OWNER_HEADER = "x-chat-owner"
OWNER_KEY = "chat_owner"  # the st.user key Streamlit maps the header to (server.trustedUserHeaders)
STREAM_PATH = "/_stcore/stream"
UPLOAD_PATH = "/_stcore/upload_file/"
ST_METRICS_PATH = "/_stcore/metrics"
# What the page's frontend sends: script runs and stops, upload URLs, heartbeats. Everything else is dropped.
ALLOWED_BACK_MESSAGES = frozenset({"rerun_script", "stop_script", "file_urls_request", "app_heartbeat"})
MAX_SESSIONS_REMEMBERED = 20_000  # Streamlit session id → owner, oldest forgotten first (bounded memory)


def public_origin(url: str) -> str:
    """scheme://host:port of a URL, with the default port written out (as browsers do not, compare both forms)."""
    split = urlsplit(url)
    return f"{split.scheme}://{split.netloc}".lower()


def _origins(url: str) -> frozenset[str]:
    split = urlsplit(url)
    origin = public_origin(url)
    default = {"http": 80, "https": 443}.get(split.scheme)
    if split.port is None and default:
        return frozenset({origin, f"{origin}:{default}"})
    if split.port == default:
        return frozenset({origin, f"{split.scheme}://{split.hostname}".lower()})
    return frozenset({origin})


class SessionBoundary:
    def __init__(self, app: ASGIApp, *, public_url: str, owner_secret: str,
                 signed_in: Callable[[str | None], bool] | None, upload_limit_bytes: int, files_per_message: int,
                 in_flight_bytes: int, metrics_allowed: Callable[[Request], bool], back_message: type,
                 forward_message: type) -> None:
        """`signed_in(cookie_value)`: whether the sign-in session cookie names a live session (None: sign-in is off,
        everyone is the same local person). `back_message`, `forward_message`: Streamlit's BackMsg and ForwardMsg
        protobuf classes (app.py hands them in: below ui/ nothing imports streamlit)."""
        self.app = app
        self.back_message, self.forward_message = back_message, forward_message
        self.origins = _origins(public_url)
        self._key = hashlib.sha256(b"chat-owner\n" + owner_secret.encode()).digest()
        self.signed_in = signed_in
        self.upload_limit_bytes = upload_limit_bytes
        self.files_per_message = files_per_message
        self.in_flight_bytes = in_flight_bytes
        self.metrics_allowed = metrics_allowed
        self._owners: OrderedDict[str, str] = OrderedDict()  # Streamlit session id → owner
        self._uploading: dict[str, int] = {}  # owner → bytes being uploaded now
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "websocket" and path.endswith(STREAM_PATH):
            await self._stream(scope, receive, send)
        elif scope["type"] == "http" and UPLOAD_PATH in path:
            await self._upload(scope, receive, send)
        elif scope["type"] == "http" and path.endswith(ST_METRICS_PATH):
            if self.metrics_allowed(Request(scope)):
                await self.app(scope, receive, send)
            else:
                await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- who owns a connection ---------------------------------------------------------------------------------------
    async def owner(self, headers: Headers) -> str | None:
        """The owner value of the sign-in session the cookie names, or None (no cookie, or not a live session)."""
        cookie = _cookie(headers, SESSION_COOKIE)
        if self.signed_in is None:
            return "local-experiment"  # sign-in is off (local experiments only): everyone is one person
        if not cookie or not await run_in_threadpool(self.signed_in, cookie):
            return None
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    # -- the page's WebSocket ----------------------------------------------------------------------------------------
    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        origin = (headers.get("origin") or "").lower()
        if origin not in self.origins:
            log.warning("refused a WebSocket from origin %r (the app's is %s)", origin[:100], sorted(self.origins)[0])
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # the handshake gets 403
            return
        owner = await self.owner(headers) or "anonymous-" + secrets.token_hex(16)  # matches nobody, ever
        raw = [(k, v) for k, v in scope["headers"] if k.lower() != OWNER_HEADER.encode()]
        scope = {**scope, "headers": [*raw, (OWNER_HEADER.encode(), owner.encode())]}
        seen_session = False

        async def filtered_receive() -> Message:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive" or message.get("bytes") is None:
                    return message
                refusal = self._refusal(message["bytes"])
                if refusal is None:
                    return message
                log.warning("dropped a WebSocket message: %s", refusal)

        async def watching_send(message: Message) -> None:
            nonlocal seen_session
            if not seen_session and message["type"] == "websocket.send" and message.get("bytes"):
                session_id = _new_session_id(self.forward_message, message["bytes"])
                if session_id:
                    seen_session = True
                    self._remember(session_id, owner)
            await send(message)

        await self.app(scope, filtered_receive, watching_send)

    def _refusal(self, frame: bytes) -> str | None:
        """Why a BackMsg must not reach Streamlit, or None. A frame that does not parse goes on: Streamlit closes the
        connection for it (1002) itself."""
        message = self.back_message()
        try:
            message.ParseFromString(frame)
        except Exception:  # noqa: BLE001 - Streamlit's own handling applies
            return None
        kind = message.WhichOneof("type")
        if kind not in ALLOWED_BACK_MESSAGES:
            return f"type {kind!r} is not one the page sends"
        if kind == "file_urls_request" and len(message.file_urls_request.file_names) > self.files_per_message:
            return (f"file_urls_request for {len(message.file_urls_request.file_names)} files (at most "
                    f"{self.files_per_message} per message)")
        return None

    def _remember(self, session_id: str, owner: str) -> None:
        with self._lock:
            self._owners[session_id] = owner
            self._owners.move_to_end(session_id)
            while len(self._owners) > MAX_SESSIONS_REMEMBERED:
                self._owners.popitem(last=False)

    def session_owner(self, session_id: str) -> str | None:
        with self._lock:
            return self._owners.get(session_id)

    # -- uploads ------------------------------------------------------------------------------------------------------
    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        owner = await self.owner(headers)
        if owner is None:
            await _plain("Sign in first: uploads need a signed-in page.", 401)(scope, receive, send)
            return
        parts = scope["path"].split(UPLOAD_PATH, 1)[1].split("/")
        session_id = parts[0] if parts else ""
        if self.session_owner(session_id) != owner:  # not a page this person opened (or one this replica never saw)
            await _plain("This upload does not belong to your page.", 403)(scope, receive, send)
            return
        if scope.get("method") != "PUT":
            await self.app(scope, receive, send)
            return
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            await _plain("An upload must state its length.", 411)(scope, receive, send)
            return
        if length > self.upload_limit_bytes:
            await _plain(f"A file may have at most {self.upload_limit_bytes // 1_048_576} MB.", 413)(scope, receive,
                                                                                                    send)
            return
        with self._lock:
            busy = self._uploading.get(owner, 0)
            if busy + length > self.in_flight_bytes:
                refused = True
            else:
                refused = False
                self._uploading[owner] = busy + length
        if refused:
            await _plain("Too much is uploading at once; wait for the other files.", 429,
                         {"retry-after": "5"})(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:  # Content-Length is checked; the body may not exceed it either
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > length:
                    raise ValueError("upload body longer than its Content-Length")
            return message

        try:
            await self.app(scope, counted_receive, send)
        finally:
            with self._lock:
                left = self._uploading.get(owner, 0) - length
                if left > 0:
                    self._uploading[owner] = left
                else:
                    self._uploading.pop(owner, None)


def _plain(text: str, status: int, headers: dict | None = None) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status, headers={"cache-control": "no-store", **(headers or {})})


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _new_session_id(forward_message: type, frame: bytes) -> str | None:
    """The Streamlit session id a `new_session` ForwardMsg announces, else None (only the first frames are read)."""
    message = forward_message()
    try:
        message.ParseFromString(frame)
    except Exception:  # noqa: BLE001 - not ours to judge
        return None
    if message.WhichOneof("type") != "new_session":
        return None
    return message.new_session.initialize.session_id or None
