"""The HTTP protections (web/) as ASGI middleware on a small Starlette app: security headers (HSTS only for an https
public URL), the CSP's parts, the frame-ancestors setting, and the per-address sign-in rate limit."""
from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import pytest
import streamlit
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from config.settings import AppSettings
from web.headers import HSTS, SecurityHeaders, content_security_policy, inline_script_hashes, security_headers
from web.ratelimit import SignInRateLimit

STREAMLIT_INDEX = Path(streamlit.__file__).parent / "static" / "index.html"


def _hello(request):
    return PlainTextResponse("hello")


def _own_headers(request):
    return PlainTextResponse("mine", headers={"x-content-type-options": "nosniff", "referrer-policy": "origin",
                                              "content-security-policy": "sandbox"})


def _stream(request):
    async def chunks():
        for n in range(3):
            yield f"chunk {n}\n"
            await asyncio.sleep(0)
    return StreamingResponse(chunks(), media_type="text/plain")


def app_with(*middleware: Middleware) -> Starlette:
    return Starlette(routes=[Route("/", _hello), Route("/own", _own_headers), Route("/stream", _stream),
                             Route("/signin", _hello), Route("/signin/callback", _hello, methods=["GET", "POST"]),
                             Route("/signout", _hello), Route("/elsewhere", _hello)],
                     middleware=list(middleware))


def headers_app(https: bool) -> Starlette:
    return app_with(Middleware(SecurityHeaders, headers=security_headers(frame_ancestors=["'none'"], https=https)))


def test_every_response_gets_the_headers_and_hsts_only_for_an_https_public_url():
    plain = TestClient(headers_app(https=False)).get("/")
    assert "frame-ancestors 'none'" in plain.headers["content-security-policy"]
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert plain.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in plain.headers
    secure = TestClient(headers_app(https=True), base_url="https://chat.contoso.example").get("/")
    assert secure.headers["strict-transport-security"] == HSTS == "max-age=31536000; includeSubDomains"
    missing = TestClient(headers_app(https=True)).get("/nowhere")  # a 404 from the router gets them as well
    assert missing.status_code == 404 and missing.headers["x-content-type-options"] == "nosniff"


def test_a_routes_own_headers_win_except_the_csp_which_is_added_alongside():
    reply = TestClient(headers_app(https=False)).get("/own")
    assert reply.headers["referrer-policy"] == "origin"
    assert reply.headers.get_list("x-content-type-options") == ["nosniff"]
    assert reply.headers.get_list("content-security-policy")[0] == "sandbox"
    assert "frame-ancestors 'none'" in reply.headers.get_list("content-security-policy")[1]


def test_streamed_responses_pass_through_whole():
    reply = TestClient(headers_app(https=False)).get("/stream")
    assert reply.text == "chunk 0\nchunk 1\nchunk 2\n" and reply.headers["x-content-type-options"] == "nosniff"


def test_the_csp_allows_streamlits_inline_bootstrap_by_hash_and_nothing_else_inline():
    page = STREAMLIT_INDEX.read_text()
    hashes = inline_script_hashes(page)
    assert hashes, "Streamlit's index.html has an inline script (window.prerenderReady); its hash must be allowed"
    inline = "\n      window.prerenderReady = false\n    "
    if inline in page:  # the known script of Streamlit 1.67: the hash is the standard CSP sha256 of its text
        assert f"'sha256-{base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()}'" in hashes
    policy = dict(part.split(" ", 1) for part in content_security_policy(["'none'"], hashes).split("; "))
    assert policy["script-src"].split() == ["'self'", *hashes, "blob:", "'wasm-unsafe-eval'"]  # no unsafe-inline/eval
    assert policy["style-src"] == "'self' 'unsafe-inline'" and policy["object-src"] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'self'"
    assert policy["img-src"] == "'self' data: blob:"


@pytest.mark.parametrize("value, expected", [
    (None, ["'none'"]),
    ("none", ["'none'"]),
    ("'self'", ["'self'"]),
    ("self, https://teams.microsoft.com", ["'self'", "https://teams.microsoft.com"]),
    ("https://*.contoso.com https://intranet.contoso.com:8443", ["https://*.contoso.com", "https://intranet.contoso.com:8443"]),
])
def test_frame_ancestors_setting(monkeypatch, value, expected):
    monkeypatch.delenv("APP_FRAME_ANCESTORS", raising=False)
    if value is not None:
        monkeypatch.setenv("APP_FRAME_ANCESTORS", value)
    assert AppSettings(_env_file=None).frame_ancestors == expected


@pytest.mark.parametrize("value", ["https://a.example; script-src *", "'unsafe-inline'", "none, https://a.example",
                                   "https://a.example/path", "javascript:alert(1)"])
def test_frame_ancestors_refuses_anything_but_sources(monkeypatch, value):
    monkeypatch.setenv("APP_FRAME_ANCESTORS", value)
    with pytest.raises(ValueError):
        AppSettings(_env_file=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited_client(per_minute=3, trusted=(), clock=None, client=("198.51.100.7", 5000)) -> TestClient:
    app = app_with(Middleware(SignInRateLimit, per_minute=per_minute, trusted_proxies=list(trusted),
                              clock=clock or Clock()))
    return TestClient(app, client=client)


def test_the_limit_counts_per_address_on_the_sign_in_routes_only():
    clock = Clock()
    limiter = SignInRateLimit(_hello, per_minute=3, clock=clock)
    assert [limiter.take("198.51.100.7") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("198.51.100.7") == 20  # one request every 20 s once the burst is spent
    assert limiter.take("198.51.100.8") == 0  # another address has its own allowance
    clock.now += 20
    assert limiter.take("198.51.100.7") == 0 and limiter.take("198.51.100.7") == 20


def test_over_the_limit_a_clear_429_page_with_retry_after():
    client = limited_client(per_minute=3)
    assert [client.get(path).status_code for path in ("/signin", "/signin/callback", "/signout")] == [200] * 3
    refused = client.post("/signin/callback")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "20"
    assert "Too many sign-in attempts" in refused.text and "Wait 20 seconds" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert all(client.get("/elsewhere").status_code == 200 for _ in range(10))  # the page itself is not limited


def test_forwarded_for_counts_only_behind_a_trusted_proxy():
    behind_proxy = limited_client(per_minute=1, trusted=["10.0.0.4"], client=("10.0.0.4", 5000))
    assert behind_proxy.get("/signin", headers={"x-forwarded-for": "203.0.113.5"}).status_code == 200
    assert behind_proxy.get("/signin", headers={"x-forwarded-for": "203.0.113.6"}).status_code == 200
    assert behind_proxy.get("/signin", headers={"x-forwarded-for": "203.0.113.5"}).status_code == 429
    direct = limited_client(per_minute=1, trusted=["10.0.0.4"])  # an untrusted peer cannot pick its address
    assert direct.get("/signin", headers={"x-forwarded-for": "203.0.113.5"}).status_code == 200
    assert direct.get("/signin", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 429


def test_ipv6_clients_count_per_64_and_unknown_addresses_are_not_limited():
    limiter = SignInRateLimit(_hello, per_minute=1, clock=Clock())
    assert limiter.take("2001:db8:1:2::1") == 0 and limiter.take("2001:db8:1:2::ffff") > 0
    assert limiter.take("2001:db8:1:3::1") == 0
    unknown = limited_client(per_minute=1, client=("testclient", 5000))
    assert all(unknown.get("/signin").status_code == 200 for _ in range(3))
    off = limited_client(per_minute=0)
    assert all(off.get("/signin").status_code == 200 for _ in range(3))


def test_the_rate_limit_page_gets_the_security_headers_too():
    app = app_with(Middleware(SecurityHeaders, headers=security_headers(frame_ancestors=["'none'"], https=False)),
                   Middleware(SignInRateLimit, per_minute=1, clock=Clock()))
    client = TestClient(app, client=("198.51.100.7", 5000))
    client.get("/signin")
    refused = client.get("/signin")
    assert refused.status_code == 429 and refused.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in refused.headers["content-security-policy"]
