"""Sign-in in chromium with response_mode=form_post: Entra's answer is a cross-site POST (https://localhost:<entra> to
http://127.0.0.1:<app>, as login.microsoftonline.com to the app in production), bound to the browser by the
SameSite=None; Secure flow cookie; the same answer posted from another browser is refused with the clear page. The
page runs under the app's Content-Security-Policy without a single violation (chat, streamed answer, components,
usage dialog with its table and chart)."""
from __future__ import annotations

import html
from urllib.parse import parse_qsl

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Recorded from the first script of every document: CSP violations the page reports (securitypolicyviolation events).
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
"""


def watched_page(context):
    page = context.new_page()
    page.add_init_script(WATCH_CSP)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    return page, console


def csp_problems(page, console: list[str]) -> list[str]:
    reported = page.evaluate("window.__csp || []")
    return reported + [line for line in console if "Content Security Policy" in line or "Content-Security-Policy" in line]


def test_form_post_sign_in_works_in_chromium_and_the_page_has_no_csp_violations(stack, browser, secrets_audit):
    context = browser.new_context()
    page, console = watched_page(context)
    requests: list[tuple[str, str]] = []
    page.on("request", lambda request: requests.append((request.method, request.url)))
    callbacks = []
    page.on("request", lambda request: callbacks.append(request) if "/signin/callback" in request.url else None)

    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    assert "Ada Lovelace" in page.get_by_test_id("stSidebar").inner_text()

    # The code came back in a POST body, never in a URL the browser requested.
    assert [c.method for c in callbacks] == ["POST"]
    posted = callbacks[0].post_data or ""
    assert "code=" in posted and "state=" in posted
    assert callbacks[0].headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    assert not [url for _, url in requests if "code=" in url.split("?", 1)[-1] and "/authorize" not in url]
    cookies = {c["name"]: c for c in context.cookies()}
    assert "chat_signin" not in cookies  # the flow cookie was spent and cleared
    assert cookies["chat_session"]["httpOnly"] and cookies["chat_session"]["sameSite"] == "Lax"

    # A streamed answer (WebSocket, components.v2 copy button) and the usage dialog (metrics, table, Vega chart).
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Is this page allowed to run under its CSP?")
    box.press("Enter")
    page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)
    page.get_by_text("Copy answer").first.wait_for(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_role("button", name="My usage").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Spent this month").wait_for(timeout=30_000)
    dialog.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=30_000)
    dialog.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for(
        timeout=30_000)
    dialog.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # late resources (fonts, chunks) report their violations too

    problems = csp_problems(page, console)
    assert problems == [], "\n".join(problems)
    assert not [line for line in console if line.startswith("pageerror")], console
    secrets_audit.texts.append(page.content())
    secrets_audit.secrets |= {c["value"] for c in context.cookies()}
    context.close()


def test_the_flow_cookie_survives_the_cross_site_post_and_an_answer_replayed_elsewhere_is_refused(stack, browser):
    # Browser A starts a sign-in; its flow cookie is SameSite=None and Secure (kept by chromium on http://127.0.0.1).
    victim = browser.new_context()
    answered: list[str] = []

    def capture(route):
        answered.append(route.request.post_data or "")
        route.fulfill(status=200, content_type="text/html", body="<p>captured</p>")

    page = victim.new_page()
    page.route("**/signin/callback", capture)  # keep Entra's answer instead of letting browser A post it
    page.goto(f"{stack.url}/signin")
    page.get_by_text("captured").wait_for(timeout=30_000)
    flow = next(c for c in victim.cookies() if c["name"] == "chat_signin")
    assert flow["sameSite"] == "None" and flow["secure"] and flow["httpOnly"] and flow["path"] == "/signin"
    fields = dict(parse_qsl(answered[0]))
    assert {"code", "state", "session_state"} <= set(fields)

    # Browser B posts that answer (login CSRF): no flow cookie there, so the clear page and no session.
    attacker = browser.new_context()
    other, console = watched_page(attacker)
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    other.set_content(f'<form method="POST" action="{stack.url}/signin/callback">{inputs}</form>')
    with other.expect_navigation(timeout=30_000) as navigation:
        other.evaluate("document.forms[0].submit()")
    response = navigation.value
    assert response.status == 400
    assert "Sign-in failed" in other.inner_text("h1")
    assert "not started in this browser" in other.inner_text("body")
    assert "chat_session" not in {c["name"] for c in attacker.cookies()}
    assert response.headers["content-security-policy"] and response.headers["x-content-type-options"] == "nosniff"
    assert csp_problems(other, console) == []

    # A code in the address bar is not how this app asked for it: the same clear page.
    link = other.goto(f"{stack.url}/signin/callback?code=abc&state=def")
    assert link.status == 400 and "Sign-in failed" in other.inner_text("h1")

    # Browser A can still finish its own sign-in with the answer it was given (the code was never redeemed).
    page.unroute("**/signin/callback")
    page.set_content(f'<form method="POST" action="{stack.url}/signin/callback">{inputs}</form>')
    with page.expect_navigation(timeout=30_000):
        page.evaluate("document.forms[0].submit()")
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    victim.close()
    attacker.close()
