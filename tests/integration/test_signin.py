"""Sign-in through the app's own routes against the Entra ID emulator: PKCE flow bound to the browser, the answer
posted back (response_mode=form_post), the id_token validated by the app, server-side sessions, silent refresh,
on-behalf-of, sign-out, and nothing secret in logs."""
from __future__ import annotations

import html
import logging
import re
import time
import warnings
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from auth.credentials import on_behalf_of_token_provider
from auth.services import auth_services
from auth.sessions import SESSION_COOKIE
from auth.signin import SIGNIN_COOKIE, SignInExpired
from config import load_settings
from config.logs import configure_logging
from localdev.entra import Knobs
from localdev.stack import CLIENT_ID, OTHER_USER, TENANT_ID, TEST_USER
from tests.integration.signin import app_client, entra_answer, entra_get, posted_form, sign_in, sign_out


@pytest.fixture(autouse=True)
def fresh_knobs(emulators):
    emulators.entra.knobs = Knobs()
    yield
    emulators.entra.knobs = Knobs()


def cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


def test_sign_in_creates_a_server_side_session_found_only_through_an_httponly_cookie(settings, emulators):
    trip = sign_in(settings, emulators)
    assert trip.callback.status_code == 303 and trip.callback.headers["location"] == "/"
    set_session = cookie_header(trip.callback, SESSION_COOKIE).lower()
    assert "httponly" in set_session and "samesite=lax" in set_session and "path=/" in set_session
    assert "max-age=28800" in set_session  # a working day
    assert "secure" not in set_session  # served over http://127.0.0.1 locally; Secure when APP_PUBLIC_URL is https
    session = auth_services(settings).sessions.get(trip.session_id)
    assert session.identity.oid == TEST_USER.oid and session.identity.tenant_id == TENANT_ID
    assert session.identity.name == TEST_USER.name
    # The flow cookie was short-lived, HttpOnly, limited to /signin, and is cleared after use. Entra's answer is a
    # cross-site POST, which carries only SameSite=None cookies, and browsers take those only with Secure.
    flow_cookie = cookie_header(trip.start, SIGNIN_COOKIE).lower()
    assert "httponly" in flow_cookie and "max-age=600" in flow_cookie and "path=/signin" in flow_cookie
    assert "samesite=none" in flow_cookie and "secure" in flow_cookie
    cleared = cookie_header(trip.callback, SIGNIN_COOKIE).lower()
    assert ('chat_signin=""' in cleared or "max-age=0" in cleared) and "samesite=none" in cleared and "secure" in cleared


def test_the_answer_comes_back_as_a_form_post_and_msal_no_longer_warns(settings, emulators):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trip = sign_in(settings, emulators)
    assert not [w for w in caught if "form_post" in str(w.message)], [str(w.message) for w in caught]
    assert parse_qs(urlsplit(trip.start.headers["location"]).query)["response_mode"] == ["form_post"]
    assert set(trip.answer) == {"code", "state", "session_state"}  # in the POST body, never in a URL
    assert trip.callback.status_code == 303 and trip.session_id


def test_a_code_in_the_query_string_is_refused_with_a_clear_page(settings, emulators):
    client = app_client(settings)
    start = client.get("/signin")
    _, path, answer = entra_answer(start, emulators.tls.ca_file)
    reply = client.get(path, params=answer)  # the answer as a link: not how this app asked for it
    assert reply.status_code == 400 and "Sign-in failed" in reply.text and "start again" in reply.text
    assert SESSION_COOKIE not in client.cookies
    assert client.post(path, data=answer).status_code == 303  # the flow itself was untouched and still works


def test_a_malformed_answer_is_refused_with_a_clear_page(settings, emulators):
    client = app_client(settings)
    client.get("/signin")
    many = {f"field{n}": "x" for n in range(100)}
    reply = client.post("/signin/callback", data=many)
    assert reply.status_code == 400 and "not understood" in reply.text
    huge = client.post("/signin/callback", data={"code": "x" * 100_000, "state": "s"})
    assert huge.status_code == 400 and "Sign-in failed" in huge.text


def test_authorize_request_uses_pkce_state_nonce_and_the_configured_redirect_uri(settings, emulators):
    client = app_client(settings)
    start = client.get("/signin", headers={"host": "evil.example"})
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["redirect_uri"] == [settings.entra.redirect_uri]  # from settings, never from the Host header
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    assert query["scope"][0].split() == sorted([f"api://{CLIENT_ID}/access_as_user", "offline_access", "openid", "profile"])


def test_the_callback_is_used_once(settings, emulators):
    trip = sign_in(settings, emulators)
    trip.client.cookies.set(SIGNIN_COOKIE, trip.start.cookies[SIGNIN_COOKIE])  # as a replaying attacker would
    replay = trip.client.post("/signin/callback", data=trip.answer)
    assert replay.status_code == 400 and "already used" in replay.text


def test_a_callback_without_this_browsers_flow_cookie_is_refused(settings, emulators):
    victim = app_client(settings)
    start = victim.get("/signin")
    _, path, answer = entra_answer(start, emulators.tls.ca_file)
    attacker = app_client(settings)  # login CSRF: the answer replayed in another browser
    reply = attacker.post(path, data=answer)
    assert reply.status_code == 400 and "not started in this browser" in reply.text
    assert SESSION_COOKIE not in attacker.cookies


def test_a_flow_cookie_from_another_sign_in_does_not_match(settings, emulators):
    client = app_client(settings)
    first = client.get("/signin")
    second_flow_cookie = client.get("/signin").cookies[SIGNIN_COOKIE]
    _, path, answer = entra_answer(first, emulators.tls.ca_file)
    client.cookies.set(SIGNIN_COOKIE, second_flow_cookie)
    reply = client.post(path, data=answer)
    assert reply.status_code == 400 and "does not belong" in reply.text


@pytest.mark.parametrize("knobs, reason", [
    ({"sign_id_token_with_foreign_key": True}, "signature"),
    ({"id_token_overrides": {"aud": "00000000-0000-4000-8000-000000000000"}}, "another application"),
    ({"id_token_overrides": {"iss": "https://login.microsoftonline.com/someone/v2.0"}}, "unexpected issuer"),
    ({"id_token_overrides": {"exp": int(time.time()) - 3600}}, "expired"),
    ({"id_token_overrides": {"tid": "0f0f0f0f-0000-4000-8000-000000000000"}}, "not allowed"),
])
def test_an_id_token_the_app_cannot_trust_creates_no_session(settings, emulators, knobs, reason):
    for name, value in knobs.items():
        setattr(emulators.entra.knobs, name, value)
    trip = sign_in(settings, emulators)
    assert trip.callback.status_code == 400 and reason in trip.callback.text
    assert trip.session_id is None


def test_entra_error_answer_is_shown_and_creates_no_session(settings, emulators):
    client = app_client(settings)
    start = client.get("/signin")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    reply = client.post("/signin/callback", data={"error": "access_denied", "error_description": "AADSTS65004: declined",
                                                  "state": state})
    assert reply.status_code == 400 and "Sign-in failed" in reply.text and "AADSTS65004" in reply.text
    assert SESSION_COOKIE not in client.cookies


def test_an_error_entra_posts_back_is_shown_on_the_clear_page(settings, emulators):
    """An error answer straight from the emulator's authorize, posted back like any other (here: no PKCE sent)."""
    client = app_client(settings)
    start = client.get("/signin")
    without_pkce = str(start.headers["location"]).replace("code_challenge_method=S256", "code_challenge_method=plain")
    authorize = entra_get(without_pkce, emulators.tls.ca_file)
    action, answer = posted_form(authorize.text)
    assert answer["error"] == "invalid_request"
    reply = client.post(urlsplit(action).path, data=answer)
    assert reply.status_code == 400 and "Microsoft Entra ID refused the sign-in" in reply.text
    assert "AADSTS9002325" in reply.text and SESSION_COOKIE not in client.cookies


def test_tenant_outside_the_allowed_list_is_refused(stack_env, emulators, monkeypatch):
    monkeypatch.setenv("ENTRA_ALLOWED_TENANTS", "0f0f0f0f-0000-4000-8000-000000000000")
    trip = sign_in(load_settings(), emulators)
    assert trip.callback.status_code == 400 and "not allowed" in trip.callback.text


def test_silent_refresh_keeps_the_person_signed_in(settings, emulators):
    emulators.entra.knobs.access_token_lifetime = 200  # msal refreshes tokens with < 5 min left
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    session = services.sessions.get(trip.session_id)
    after_sign_in = len(emulators.entra.requests)
    seen = set()
    for _ in range(3):
        token, changed = services.signin.user_access_token(session.token_cache)
        assert changed, "an expiring token should be refreshed silently and the cache saved"
        services.sessions.save_token_cache(session.id, changed)
        session = services.sessions.get(trip.session_id)
        seen.add(token)
    assert len(seen) == 3
    grants = [r["params"]["grant_type"] for r in emulators.entra.requests if r["endpoint"] == "token"]
    assert grants[-3:] == ["refresh_token"] * 3
    assert not [r for r in emulators.entra.requests[after_sign_in:] if r["endpoint"] == "authorize"]


def test_a_valid_token_is_served_from_the_cache_without_calling_entra(settings, emulators):
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    before = len(emulators.entra.requests)
    token, changed = services.signin.user_access_token(services.sessions.get(trip.session_id).token_cache)
    assert changed is None and len(emulators.entra.requests) == before
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == CLIENT_ID


def test_revoked_sign_in_raises_sign_in_expired(settings, emulators):
    emulators.entra.knobs.access_token_lifetime = 200
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    emulators.entra.revoke(TEST_USER.oid)
    with pytest.raises(SignInExpired):
        services.signin.user_access_token(services.sessions.get(trip.session_id).token_cache)


def test_sessions_expire_and_token_caches_are_encrypted_at_rest(settings, emulators):
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    session = services.sessions.get(trip.session_id)
    assert timedelta(hours=7.9) < session.expires_at - session.expires_at.replace(microsecond=0) + timedelta(hours=8)
    raw = (settings.app.data_dir / "sessions.db").read_bytes()
    assert b"refresh_token" not in raw.lower() and b"RefreshToken" not in raw and trip.session_id.encode() not in raw
    services.sessions.lifetime = timedelta(seconds=-1)
    expired = services.sessions.create(session.identity, session.token_cache)
    assert services.sessions.get(expired.id) is None


def test_resume_carries_the_kept_draft_into_the_new_session(settings, emulators):
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    old_session = trip.session_id
    services.sessions.keep_draft(old_session, "my unsent question")
    again = sign_in(settings, emulators, client=trip.client, start_path="/signin?resume=1")
    assert again.session_id != old_session
    assert services.sessions.get(old_session) is None  # the old session is gone
    ada = services.sessions.get(again.session_id).identity
    assert services.sessions.take_draft(again.session_id, ada) == "my unsent question"
    assert services.sessions.take_draft(again.session_id, ada) is None


def test_a_kept_draft_goes_only_to_the_person_who_wrote_it(settings, emulators):
    """Security finding: /signin?resume=1 handed Ada's kept draft to whoever signed in next in that browser."""
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    ada_session = trip.session_id
    services.sessions.keep_draft(ada_session, "Ada's unsent salary question")
    grace = sign_in(settings, emulators, client=trip.client, start_path="/signin?resume=1&login_hint=grace@contoso.example")
    session = services.sessions.get(grace.session_id)
    assert session.identity.name == "Grace Hopper"
    assert session.draft is None and services.sessions.take_draft(grace.session_id, session.identity) is None
    assert services.sessions.get(ada_session) is None  # Ada's session is ended all the same


def test_sign_out_ends_the_server_session_and_returns_through_entra(settings, emulators):
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    session_id = trip.session_id
    out = sign_out(trip)
    assert out.status_code == 200 and "chat_session" not in trip.client.cookies
    assert services.sessions.get(session_id) is None
    # On to Entra by a new navigation (a redirect would still be the form post, which CSP form-action confines).
    location = html.unescape(re.search(r"http-equiv='refresh' content='0;url=([^']+)'", out.text).group(1))
    assert location.startswith(f"{settings.entra.authority}/oauth2/v2.0/logout?")
    back = entra_get(location, emulators.tls.ca_file)
    assert back.status_code == 302 and back.headers["location"] == f"{settings.app.public_url}/"


def test_on_behalf_of_gives_each_person_their_own_token(settings, emulators):
    services = auth_services(settings)
    ada = sign_in(settings, emulators)
    emulators.entra.knobs.default_user = OTHER_USER.oid
    grace = sign_in(settings, emulators)
    oids = []
    for trip in (ada, grace):
        user_token, _ = services.signin.user_access_token(services.sessions.get(trip.session_id).token_cache)
        claims = jwt.decode(on_behalf_of_token_provider(settings.entra, user_token)(), options={"verify_signature": False})
        assert claims["aud"] == "https://cognitiveservices.azure.com" and claims["scp"] == "user_impersonation"
        oids.append(claims["oid"])
    assert oids == [TEST_USER.oid, OTHER_USER.oid]


def test_no_token_code_secret_or_cookie_reaches_the_logs(settings, emulators, caplog):
    configure_logging("DEBUG")  # what an operator chasing a problem would set
    caplog.set_level(logging.DEBUG)
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    token, _ = services.signin.user_access_token(services.sessions.get(trip.session_id).token_cache)
    code = trip.answer["code"]
    # The browser stand-ins (test client, httpx to authorize) log URLs via httpx/httpcore: not the app's logs.
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    for secret in (token, code, trip.session_id, trip.start.cookies[SIGNIN_COOKIE],
                   settings.entra.client_secret.get_secret_value(), settings.app.session_secret.get_secret_value()):
        assert secret not in text
    assert f"signed in oid={TEST_USER.oid}" in text


# ---- attacks: each ends on a clear page and no session ----
def test_missing_or_forged_state_is_refused(settings, emulators):
    client = app_client(settings)
    start = client.get("/signin")
    _, path, answer = entra_answer(start, emulators.tls.ca_file)
    flow_cookie = start.cookies[SIGNIN_COOKIE]
    missing = client.post(path, data={"code": answer["code"]})
    assert missing.status_code == 400 and "does not belong" in missing.text
    client.cookies.set(SIGNIN_COOKIE, flow_cookie)  # a failed answer clears the flow cookie; put it back
    forged = client.post(path, data={"code": answer["code"], "state": "forged-state"})
    assert forged.status_code == 400 and "does not belong" in forged.text
    assert SESSION_COOKIE not in client.cookies


def test_wrong_nonce_is_refused(settings, emulators):
    emulators.entra.knobs.tamper_nonce = True
    trip = sign_in(settings, emulators)
    assert trip.callback.status_code == 400 and "nonce" in trip.callback.text and trip.session_id is None


def test_an_unregistered_redirect_uri_never_comes_back(stack_env, emulators, monkeypatch):
    monkeypatch.setenv("ENTRA_REDIRECT_URI", "http://127.0.0.1:8080/elsewhere/callback")
    client = app_client(load_settings())
    authorize = entra_get(client.get("/signin").headers["location"], emulators.tls.ca_file)
    assert authorize.status_code == 400 and "AADSTS50011" in authorize.text and "location" not in authorize.headers


def test_a_preset_session_cookie_is_replaced_at_sign_in(settings, emulators):
    """Session fixation: a cookie value planted before sign-in must not become the signed-in session."""
    client = app_client(settings)
    client.cookies.set(SESSION_COOKIE, "attacker-chosen-value")
    trip = sign_in(settings, emulators, client=client)
    issued = trip.callback.cookies[SESSION_COOKIE]
    assert issued != "attacker-chosen-value" and auth_services(settings).sessions.get(issued) is not None
    assert auth_services(settings).sessions.get("attacker-chosen-value") is None


def test_an_app_only_token_cannot_be_used_for_on_behalf_of(settings, emulators):
    from azure.core.exceptions import ClientAuthenticationError

    from auth.credentials import app_token_provider

    app_token = app_token_provider(settings.entra)()
    with pytest.raises(ClientAuthenticationError):
        on_behalf_of_token_provider(settings.entra, app_token)()


def test_a_person_without_the_required_role_gets_no_session(stack_env, emulators, monkeypatch):
    monkeypatch.setenv("ENTRA_REQUIRED_ROLE", "Chat.User")
    settings = load_settings()
    emulators.entra.knobs.default_user = OTHER_USER.oid  # Grace has no app roles
    denied = sign_in(settings, emulators)
    assert denied.callback.status_code == 400 and "Chat.User&#x27; role" in denied.callback.text
    assert denied.session_id is None
    emulators.entra.knobs.default_user = TEST_USER.oid
    allowed = sign_in(settings, emulators)
    assert allowed.callback.status_code == 303
    assert auth_services(settings).sessions.get(allowed.session_id).identity.roles == ("Chat.User", "Chat.Experimenter")


def test_login_hint_is_passed_to_entra_and_only_an_account_name(settings, emulators):
    client = app_client(settings)
    start = client.get("/signin?login_hint=grace@contoso.example")
    assert parse_qs(urlsplit(start.headers["location"]).query)["login_hint"] == ["grace@contoso.example"]
    trip = sign_in(settings, emulators, client=client, start_path="/signin?login_hint=grace@contoso.example")
    assert auth_services(settings).sessions.get(trip.session_id).identity.oid == OTHER_USER.oid
    odd = client.get("/signin?login_hint=%3Cscript%3E")
    assert "login_hint" not in parse_qs(urlsplit(odd.headers["location"]).query)


def test_sign_out_needs_the_pages_own_form(settings, emulators):
    """Security finding: GET /signout was a cross-site logout (an image or link on any site signed people out)."""
    trip = sign_in(settings, emulators)
    services = auth_services(settings)
    confirm = trip.client.get("/signout")  # what a link or <img src="/signout"> on another site gets
    assert confirm.status_code == 200 and "<form method='post' action='/signout'>" in confirm.text
    assert confirm.headers["cache-control"] == "no-store"
    assert services.sessions.get(trip.session_id) is not None
    for forged in ({}, {"token": "0" * 64}, {"token": services.sessions.form_token("another-session", "signout")}):
        refused = trip.client.post("/signout", data=forged)  # a cross-site form cannot know the token
        assert refused.status_code == 400 and services.sessions.get(trip.session_id) is not None
    session_id = trip.session_id
    assert sign_out(trip).status_code == 200 and services.sessions.get(session_id) is None
