"""The /metrics route (this replica's Prometheus metrics, callbacks/metrics.py) and the ASGI middleware that counts
open page sessions.

Off unless configured: with neither APP_METRICS_TOKEN nor APP_METRICS_NETWORKS set, /metrics answers 404 and nothing
is counted. A scrape is let in when it shows `Authorization: Bearer <APP_METRICS_TOKEN>`, or when its socket peer is
in APP_METRICS_NETWORKS and is not a trusted proxy: a request that came through the reverse proxy is never "internal"
by its address, whatever X-Forwarded-For says, so only the token opens /metrics from outside.
"""
from __future__ import annotations

import hmac
import ipaddress

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callbacks.metrics import ChatMetrics
from config.settings import AppSettings

METRICS_PATH = "/metrics"
STREAM_PATH = "/_stcore/stream"  # Streamlit's WebSocket: one per open page (under any server.baseUrlPath)


def scrape_allowed(settings: AppSettings):
    """A check of one request: does it show the metrics token, or come directly from a metrics network? Used by
    /metrics and to open Streamlit's own /_stcore/metrics the same way (web/session_boundary.py)."""
    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.metrics_networks]
    proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

    def allowed(request: Request) -> bool:
        return _bearer_matches(request, token) or _internal_peer(request, networks, proxies)
    return allowed


def metrics_route(settings: AppSettings, metrics: ChatMetrics | None) -> Route:
    """GET /metrics: 200 with the metrics, 401 (token configured, wrong or missing), 403 (networks only, peer outside
    them), 404 when metrics are off."""
    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
    networks = settings.metrics_networks
    allowed = scrape_allowed(settings)

    def serve(request: Request) -> Response:
        if metrics is None or not (token or networks):
            return PlainTextResponse("Not Found", status_code=404)
        if not allowed(request):
            if token:
                return PlainTextResponse("Unauthorized", status_code=401,
                                         headers={"www-authenticate": 'Bearer realm="metrics"'})
            return PlainTextResponse("Forbidden", status_code=403)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})

    return Route(METRICS_PATH, serve, methods=["GET"])


def _bearer_matches(request: Request, token: bytes | None) -> bool:
    if token is None:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def _internal_peer(request: Request, networks: list, proxies: list) -> bool:
    if not networks or request.client is None:
        return False
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if peer.version == 6 and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    return any(peer in n for n in networks) and not any(peer in p for p in proxies)


class OpenSessions:
    """Counts Streamlit's WebSocket connections (one per open page) into `chat_open_sessions`: up when Streamlit
    accepts one, down when it ends. Pure ASGI, no Streamlit internals."""

    def __init__(self, app: ASGIApp, *, metrics: ChatMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or not scope.get("path", "").endswith(STREAM_PATH):
            await self.app(scope, receive, send)
            return
        opened = False

        async def counting_send(message: Message) -> None:
            nonlocal opened
            await send(message)
            if message["type"] == "websocket.accept" and not opened:
                opened = True
                self.metrics.session_opened()

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if opened:
                self.metrics.session_closed()


def metrics_middleware(metrics: ChatMetrics | None) -> list[Middleware]:
    """The session counter when metrics are on, else nothing."""
    return [Middleware(OpenSessions, metrics=metrics)] if metrics is not None else []
