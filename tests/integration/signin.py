"""A browser's trip through sign-in, without a browser: the app's routes in-process (Starlette TestClient) behind the
middleware app.py adds, Entra's authorize step over real HTTPS against the emulator, and its answer posted back to
the callback (response_mode=form_post) as a browser posts Entra's auto-submitting form."""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from auth.routes import build_routes
from auth.services import auth_services
from auth.sessions import SESSION_COOKIE
from web import security_middleware

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Trip:
    client: TestClient
    start: httpx.Response
    authorize: httpx.Response
    answer: dict[str, str]  # what Entra's form posted to the callback (code, state, session_state)
    callback: httpx.Response

    @property
    def session_id(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)


class BrowserCookiePolicy(DefaultCookiePolicy):
    """Sends Secure cookies to http://127.0.0.1 and http://localhost too, as Chromium and Firefox do (loopback is a
    secure context); Python's cookie jar alone would send them over https only."""

    def return_ok_secure(self, cookie, request) -> bool:
        return super().return_ok_secure(cookie, request) or urlsplit(request.get_full_url()).hostname in LOOPBACK_HOSTS


def browser_cookies() -> CookieJar:
    """A cookie jar for httpx/TestClient that treats loopback like a browser does (pass it as `cookies=`)."""
    return CookieJar(policy=BrowserCookiePolicy())


class _PostedForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self.method = attrs.get("action"), (attrs.get("method") or "get").upper()
        elif tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""


def posted_form(page: str) -> tuple[str, dict[str, str]]:
    """The URL and fields of the form in Entra's form_post page (what the browser POSTs when its script submits it)."""
    form = _PostedForm()
    form.feed(page)
    assert form.action and form.method == "POST", f"no form_post form in: {page[:300]}"
    return form.action, form.fields


def app_client(settings) -> TestClient:
    services = auth_services(settings)
    app = Starlette(routes=build_routes(services.signin, services.sessions, settings.app.public_url),
                    middleware=security_middleware(settings))
    return TestClient(app, base_url=settings.app.public_url, follow_redirects=False, cookies=browser_cookies())


def entra_get(url: str, ca_file) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file)), follow_redirects=False, timeout=10) as http:
        return http.get(url)


def entra_answer(start: httpx.Response, ca_file) -> tuple[httpx.Response, str, dict[str, str]]:
    """Follows /signin's redirect to the emulator's authorize page: (that page, the form's action path, its fields)."""
    authorize = entra_get(start.headers["location"], ca_file)
    assert authorize.status_code == 200, authorize.text
    action, fields = posted_form(authorize.text)
    return authorize, urlsplit(action).path, fields


def sign_in(settings, emulators, *, client: TestClient | None = None, start_path: str = "/signin") -> Trip:
    client = client or app_client(settings)
    start = client.get(start_path)
    assert start.status_code == 302, start.text
    authorize, path, answer = entra_answer(start, emulators.tls.ca_file)
    callback = client.post(path, data=answer)
    return Trip(client, start, authorize, answer, callback)


def sign_out(trip: Trip):
    """What the page's Sign out does: GET /signout (a confirm page), then its button posts the form with its token."""
    confirm = trip.client.get("/signout")
    assert confirm.status_code == 200, confirm.text
    token = re.search(r"name='token' value='([0-9a-f]+)'", confirm.text).group(1)
    return trip.client.post("/signout", data={"token": token})
