"""The app's own HTTP routes for sign-in, added to Streamlit through `st.App(routes=...)`: plain Starlette handlers."""
from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from auth.identity import SignInRejected
from auth.sessions import SESSION_COOKIE, SessionStore
from auth.signin import FLOW_TTL, SIGNIN_COOKIE, EntraSignIn

log = logging.getLogger("chat.auth")
# The answer Entra posts back: code, state, session_state (or error, error_description, error_uri, state); a little room.
MAX_ANSWER_FIELDS = 20
MAX_ANSWER_FIELD_BYTES = 16 * 1024


def build_routes(signin: EntraSignIn, sessions: SessionStore, public_url: str,
                 on_sign_in: Callable[[str], None] | None = None) -> list[Route]:
    """`on_sign_in(outcome)`: told how each sign-in ended: ok, rejected (Entra's answer failed a check), error (the app
    failed finishing it) or unavailable (Entra ID could not be reached to start it); the metrics count them."""
    on_sign_in = on_sign_in or (lambda outcome: None)
    secure = public_url.startswith("https://")  # Secure cookies only where the browser reaches us over https
    session_max_age = int(sessions.lifetime.total_seconds())

    def start(request: Request) -> Response:
        # ?resume=1 comes from the page when a sign-in expired mid-conversation: the kept draft follows the person.
        resume = request.cookies.get(SESSION_COOKIE) if request.query_params.get("resume") else None
        hint = request.query_params.get("login_hint", "")
        hint = hint if re.fullmatch(r"[A-Za-z0-9._%+@-]{1,254}", hint) else None  # an account name, nothing else
        try:
            auth_uri, flow_cookie = signin.begin(resume, hint)
        except Exception as exc:  # Entra unreachable or misconfigured: say so instead of a 500
            log.error("could not start sign-in: %s", type(exc).__name__)
            on_sign_in("unavailable")
            return _page("Sign-in is unavailable", "Microsoft Entra ID could not be reached. Try again in a minute.", 503)
        response = RedirectResponse(auth_uri, status_code=302)
        # Entra's answer is a cross-site POST (from login.microsoftonline.com; locally from https://localhost:<port> to
        # http://127.0.0.1:<port>, cross-site too by host and scheme), which carries no SameSite=Lax cookie. So the flow
        # cookie is SameSite=None, which browsers take only with Secure; Chromium and Firefox keep and send Secure
        # cookies on http://localhost and http://127.0.0.1 as well (verified in Debian's chromium).
        response.set_cookie(SIGNIN_COOKIE, flow_cookie, max_age=int(FLOW_TTL.total_seconds()), httponly=True,
                            samesite="none", secure=True, path="/signin")
        return response

    async def callback(request: Request) -> Response:
        if request.method != "POST":  # sign-in asks for form_post: a code in a URL did not come from our sign-in
            on_sign_in("rejected")
            return _page("Sign-in failed", "This sign-in answer did not come from Microsoft Entra ID the way this app "
                         "asks for it (a form, not a link); start again.", 400)
        try:
            form = await request.form(max_files=0, max_fields=MAX_ANSWER_FIELDS, max_part_size=MAX_ANSWER_FIELD_BYTES)
        except (MultiPartException, HTTPException):  # too many or too large fields (Starlette raises either)
            on_sign_in("rejected")
            return _page("Sign-in failed", "The sign-in answer was not understood; start again.", 400)
        params = {key: value for key, value in form.items() if isinstance(value, str)}
        # Redeeming the code calls Entra and writes the session store: off the event loop.
        return await run_in_threadpool(finish, request.cookies.get(SIGNIN_COOKIE), params)

    def finish(flow_cookie: str | None, params: dict[str, str]) -> Response:
        outcome = "error"  # unless redeem() returns: an exception on the way is the app's failure, not the person's
        try:
            response, outcome = redeem(flow_cookie, params)
            return response
        finally:
            on_sign_in(outcome)

    def redeem(flow_cookie: str | None, params: dict[str, str]) -> tuple[Response, str]:
        try:
            done = signin.complete(flow_cookie, params)
        except SignInRejected as exc:
            log.warning("sign-in rejected: %s", exc)
            response, outcome = _page("Sign-in failed", f"{exc}.", 400), "rejected"
        else:
            draft = sessions.take_draft(done.resume_session, done.identity) if done.resume_session else None
            sessions.delete(done.resume_session)
            session = sessions.create(done.identity, done.token_cache, draft)
            # 303: the browser follows with a GET of the page (a top-level navigation, so the Lax cookie goes along).
            response, outcome = RedirectResponse("/", status_code=303), "ok"
            response.set_cookie(SESSION_COOKIE, session.id, max_age=session_max_age, httponly=True, samesite="lax",
                                secure=secure, path="/")
        response.delete_cookie(SIGNIN_COOKIE, path="/signin", secure=True, httponly=True, samesite="none")
        return response, outcome

    async def signout(request: Request) -> Response:
        """GET shows a confirm button (a link or image on another site cannot sign anybody out); the button posts a
        token only this session's page knows, and only then the session ends."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if request.method == "GET":
            if session_id is None or await run_in_threadpool(sessions.get, session_id) is None:
                return RedirectResponse("/", status_code=303)  # nobody to sign out
            return _confirm_signout(sessions.form_token(session_id, "signout"))
        try:
            form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
        except (MultiPartException, HTTPException):
            form = {}
        token = form.get("token") if isinstance(form.get("token"), str) else None
        if not sessions.check_form_token(session_id, "signout", token):
            return _page("Sign-out not confirmed", "This sign-out did not come from this app's own button, so you "
                         "are still signed in.", 400)
        await run_in_threadpool(sessions.delete, session_id)
        # On to Entra's sign-out by a new navigation: a redirect would still be the form's submission, which the
        # page's CSP (form-action 'self') confines to this app.
        response = _signed_out(signin.end_session_url(f"{public_url}/"))
        response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
        return response

    return [Route("/signin", start), Route("/signin/callback", callback, methods=["GET", "POST"]),
            Route("/signout", signout, methods=["GET", "POST"])]


def _signed_out(end_session_url: str) -> HTMLResponse:
    url = html.escape(end_session_url, quote=True)
    body = ("<!doctype html><html lang='en'><head><title>Signed out</title>"
            f"<meta http-equiv='refresh' content='0;url={url}'></head><body style='font-family:sans-serif;"
            "max-width:40rem;margin:4rem auto'><h1>Signed out</h1><p>You are signed out of the chat. "
            f"<a href='{url}'>Continue to sign out of Microsoft Entra ID</a>.</p></body></html>")
    return HTMLResponse(body, headers={"cache-control": "no-store"})


def _confirm_signout(token: str) -> HTMLResponse:
    body = ("<!doctype html><html lang='en'><head><title>Sign out</title></head><body style='font-family:sans-serif;"
            "max-width:40rem;margin:4rem auto'><h1>Sign out</h1><p>Sign out of the chat and of Microsoft Entra ID in "
            "this browser?</p><form method='post' action='/signout'>"
            f"<input type='hidden' name='token' value='{html.escape(token)}'>"
            "<button type='submit' style='font-size:1rem;padding:.5rem 1rem'>Sign out</button></form>"
            "<p><a href='/'>Back to the chat</a></p></body></html>")
    return HTMLResponse(body, headers={"cache-control": "no-store"})


def _page(title: str, message: str, status: int) -> HTMLResponse:
    body = (f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
            f"max-width:40rem;margin:4rem auto'><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
            f"<p><a href='/signin'>Sign in again</a> · <a href='/'>Back to the chat</a></p></body></html>")
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})
