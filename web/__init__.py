"""HTTP protections for every response the app serves: security headers and the sign-in rate limit, as pure ASGI
middleware that app.py hands to `st.App(middleware=...)` (no BaseHTTPMiddleware: it would buffer streams)."""
from __future__ import annotations

from starlette.middleware import Middleware

from config.settings import Settings
from web.headers import SecurityHeaders, inline_script_hashes, security_headers
from web.ratelimit import SignInRateLimit


def security_middleware(settings: Settings, page_html: str = "") -> list[Middleware]:
    """The middleware for the app, outermost first. `page_html` is Streamlit's index.html, whose inline bootstrap
    script the CSP allows by hash."""
    headers = security_headers(frame_ancestors=settings.app.frame_ancestors,
                               https=settings.app.public_url.startswith("https://"),
                               script_hashes=inline_script_hashes(page_html))
    return [
        Middleware(SecurityHeaders, headers=headers),  # outermost: the 429 page gets the headers too
        Middleware(SignInRateLimit, per_minute=settings.app.signin_requests_per_minute,
                   trusted_proxies=settings.app.trusted_proxies),
    ]
