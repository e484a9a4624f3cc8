"""A browser's trip through sign-in, without a browser: the app's routes in-process (Starlette TestClient), Entra's
authorize step over real HTTPS against the emulator."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from auth.routes import build_routes
from auth.services import auth_services
from auth.sessions import SESSION_COOKIE


@dataclass
class Trip:
    client: TestClient
    start: httpx.Response
    authorize: httpx.Response
    callback: httpx.Response

    @property
    def session_id(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)


def app_client(settings) -> TestClient:
    services = auth_services(settings)
    app = Starlette(routes=build_routes(services.signin, services.sessions, settings.app.public_url))
    return TestClient(app, base_url=settings.app.public_url, follow_redirects=False)


def entra_get(url: str, ca_file) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file)), follow_redirects=False, timeout=10) as http:
        return http.get(url)


def sign_in(settings, emulators, *, client: TestClient | None = None, start_path: str = "/signin") -> Trip:
    client = client or app_client(settings)
    start = client.get(start_path)
    assert start.status_code == 302, start.text
    authorize = entra_get(start.headers["location"], emulators.tls.ca_file)
    assert authorize.status_code == 302, authorize.text
    back = urlsplit(authorize.headers["location"])
    callback = client.get(f"{back.path}?{back.query}")
    return Trip(client, start, authorize, callback)
