"""A per-client-address limit on the sign-in routes, with a clear 429 page and Retry-After.

In-process: each replica counts on its own (N replicas let an address through up to N times the limit), which is
enough to stop one client hammering sign-in and Entra behind it; the chat itself has its own per-person limits.
"""
from __future__ import annotations

import html
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.security_context import client_ip

log = logging.getLogger("chat.web")

SIGN_IN_PATHS = ("/signin", "/signout")  # and everything under them (/signin/callback)
MAX_TRACKED = 10_000  # addresses remembered at once; idle ones are forgotten first


class SignInRateLimit:
    """A token bucket per client address: `per_minute` requests at once, then one every 60/`per_minute` seconds.
    The address is the socket peer, or X-Forwarded-For read through `trusted_proxies` (auth.security_context.client_ip);
    an IPv6 client counts per /64, the block one subscriber usually holds. A request with no usable address (a Unix
    socket with no trusted proxy) is not limited: one shared bucket would lock everybody out together."""

    def __init__(self, app: ASGIApp, *, per_minute: int, trusted_proxies: Sequence[str] = (),
                 paths: Sequence[str] = SIGN_IN_PATHS, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.per_minute = per_minute
        self._trusted = frozenset(trusted_proxies)
        self._paths = tuple(paths)
        self._clock = clock
        # address -> [tokens, last refill time, refusal logged]; only the event loop's thread touches it.
        self._buckets: dict[str, list] = {}

    def _limited_path(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self._paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.per_minute <= 0 or not self._limited_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or (None,))[0]
        address = client_ip(peer, Headers(scope=scope).get("x-forwarded-for"), self._trusted)
        wait = self.take(address) if address else 0
        if not wait:
            await self.app(scope, receive, send)
            return
        await _too_many(wait)(scope, receive, send)

    def take(self, address: str) -> int:
        """Spends one request of `address`; returns 0 when allowed, else the whole seconds until the next one is."""
        key = _bucket_key(address)
        now, rate = self._clock(), self.per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            bucket = self._buckets[key] = [float(self.per_minute), now, False]
        bucket[0] = min(float(self.per_minute), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            bucket[2] = False
            return 0
        if not bucket[2]:  # once per episode, not once per refused request
            bucket[2] = True
            log.warning("sign-in rate limit reached for %s (%d requests per minute)", key, self.per_minute)
        return max(1, math.ceil((1.0 - bucket[0]) / rate))

    def _forget_idle(self, now: float) -> None:
        full_after = 60.0  # an idle minute refills any bucket: forgetting it changes nothing
        for key in [k for k, (_, stamp, _) in self._buckets.items() if now - stamp >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_TRACKED:  # a flood of fresh addresses: drop the least recently seen half
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: MAX_TRACKED // 2]:
                del self._buckets[key]


def _bucket_key(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _too_many(wait: int) -> HTMLResponse:
    title = "Too many sign-in attempts"
    message = f"This address has tried to sign in too often in the last minute. Wait {wait} seconds and try again."
    body = (f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
            f"max-width:40rem;margin:4rem auto'><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
            f"<p><a href='/signin'>Sign in</a> · <a href='/'>Back to the chat</a></p></body></html>")
    return HTMLResponse(body, status_code=429, headers={"retry-after": str(wait), "cache-control": "no-store"})
