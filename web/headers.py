"""Security headers on every HTTP response the app serves (page, static files, health, sign-in routes): pure ASGI, so
streaming responses and the WebSocket pass through untouched."""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = "max-age=31536000; includeSubDomains"  # a year; browsers ignore it unless it arrives over https
REFERRER_POLICY = "no-referrer"  # page URLs carry conversation ids; nothing needs the Referer


def inline_script_hashes(page_html: str) -> list[str]:
    """CSP hash sources ('sha256-…') for the inline <script> blocks of Streamlit's index.html, so they may run while
    every other inline script stays blocked."""
    hashes = []
    for match in re.finditer(r"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", page_html, re.S | re.I):
        digest = hashlib.sha256(match.group(1).encode()).digest()
        hashes.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return hashes


def content_security_policy(frame_ancestors: Sequence[str], script_hashes: Iterable[str] = ()) -> str:
    """What the Streamlit page needs and nothing more (verified in chromium, tests/e2e/test_signin_form_post.py):
    scripts from the app itself plus Streamlit's inline bootstrap (by hash), blob: modules (components.v2 ships its
    JS as a blob: module) and WebAssembly compilation only (protobuf's long.js; no JS eval); inline styles (Streamlit's
    emotion CSS and style attributes); images, media and fonts from the app, data: and blob:; fetch and the WebSocket
    to the app ('self' covers ws:/wss: to the same host and port)."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes, "blob:", "'wasm-unsafe-eval'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],  # answers cannot pull images from elsewhere (no exfiltration by URL)
        "font-src": ["'self'", "data:"],
        "media-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "frame-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": list(frame_ancestors),
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def security_headers(*, frame_ancestors: Sequence[str], https: bool, script_hashes: Iterable[str] = ()) -> list[tuple[str, str]]:
    headers = [("content-security-policy", content_security_policy(frame_ancestors, script_hashes)),
               ("x-content-type-options", "nosniff"),
               ("referrer-policy", REFERRER_POLICY)]
    if https:  # only where people reach the app over https (TLS usually ends at the proxy in front of it)
        headers.append(("strict-transport-security", HSTS))
    return headers


class SecurityHeaders:
    """Adds `headers` to every HTTP response. A header the response already has is kept, except the CSP, which is
    added alongside (browsers enforce every policy they get, so a route's own CSP can only make it stricter)."""

    def __init__(self, app: ASGIApp, *, headers: Sequence[tuple[str, str]]) -> None:
        self.app = app
        self._headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self._headers
                         if name not in present or name == b"content-security-policy"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
