"""Over real HTTP against `streamlit run app.py` (the emulators of this session behind it): every kind of response
carries the security headers, and the sign-in routes are rate-limited per client address (a clear 429 page with
Retry-After; another address, or another person behind a trusted proxy, is not affected)."""
from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.real_app import running_app

pytestmark = pytest.mark.slow

PROXY = "127.0.0.9"  # a reverse proxy on this host, listed in APP_TRUSTED_PROXIES
LIMIT = 20  # the default APP_SIGNIN_REQUESTS_PER_MINUTE


@pytest.fixture(scope="module")
def app_url(emulators, tmp_path_factory):
    with running_app(emulators, tmp_path_factory.mktemp("web-security"), APP_TRUSTED_PROXIES=PROXY) as url:
        yield url


def http_client(url: str, address: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z reaches the app on 127.0.0.1)."""
    return httpx.Client(base_url=url, follow_redirects=False, timeout=15,
                        transport=httpx.HTTPTransport(local_address=address))


def assert_security_headers(reply: httpx.Response) -> None:
    where = f"{reply.request.method} {reply.request.url.path} ({reply.status_code})"
    csp = reply.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp, where
    assert reply.headers.get("x-content-type-options") == "nosniff", where
    assert reply.headers.get("referrer-policy") == "no-referrer", where
    assert "strict-transport-security" not in reply.headers, f"{where}: HSTS over plain http"


def test_every_kind_of_response_carries_the_security_headers(app_url):
    with http_client(app_url) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<div id=\"root\">" in page.text
        script = re.search(r'src="\./(static/js/index\.[^"]+\.js)"', page.text).group(1)
        replies = {
            "page": page,
            "static file": client.get(f"/{script}"),
            "favicon": client.get("/favicon.png"),
            "health": client.get("/_stcore/health"),
            "sign-in start": client.get("/signin"),
            "callback as a link": client.get("/signin/callback?code=abc&state=def"),
            "callback without the flow cookie": client.post("/signin/callback", data={"code": "abc", "state": "def"}),
            "sign-out": client.get("/signout"),
        }
    expected = {"page": 200, "static file": 200, "favicon": 200, "health": 200, "sign-in start": 302,
                "callback as a link": 400, "callback without the flow cookie": 400, "sign-out": 303}
    assert {name: reply.status_code for name, reply in replies.items()} == expected
    for reply in replies.values():
        assert_security_headers(reply)
    assert replies["static file"].headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "not started in this browser" in replies["callback without the flow cookie"].text
    assert "Sign-in failed" in replies["callback as a link"].text
    flow_cookie = replies["sign-in start"].headers["set-cookie"].lower()
    assert "samesite=none" in flow_cookie and "secure" in flow_cookie and "path=/signin" in flow_cookie


def test_sign_in_is_rate_limited_per_address_with_a_clear_429_page(app_url):
    with http_client(app_url, "127.0.0.3") as hammering, http_client(app_url, "127.0.0.4") as other:
        statuses = [hammering.get("/signin").status_code for _ in range(LIMIT)]
        assert statuses == [302] * LIMIT
        refused = hammering.get("/signin")
        assert refused.status_code == 429 and refused.headers["retry-after"] == str(60 // LIMIT)
        assert "Too many sign-in attempts" in refused.text and "try again" in refused.text
        assert refused.headers["content-type"].startswith("text/html") and "no-store" in refused.headers["cache-control"]
        assert_security_headers(refused)
        assert hammering.post("/signin/callback", data={"state": "x"}).status_code == 429  # every sign-in route
        assert hammering.get("/").status_code == 200  # the page itself is not limited
        assert other.get("/signin").status_code == 302  # another address has its own allowance


def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_allowance(app_url):
    with http_client(app_url, PROXY) as proxy, http_client(app_url, "127.0.0.5") as spoofer:
        first = {"x-forwarded-for": "203.0.113.5"}
        assert [proxy.get("/signin", headers=first).status_code for _ in range(LIMIT)] == [302] * LIMIT
        assert proxy.get("/signin", headers=first).status_code == 429
        assert proxy.get("/signin", headers={"x-forwarded-for": "203.0.113.6"}).status_code == 302
        # A client that is not a trusted proxy cannot escape its limit by claiming other addresses.
        assert [spoofer.get("/signin", headers={"x-forwarded-for": f"198.51.100.{n}"}).status_code
                for n in range(LIMIT + 1)] == [302] * LIMIT + [429]
