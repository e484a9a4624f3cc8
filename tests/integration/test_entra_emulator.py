"""The Entra ID emulator over real HTTPS, driven by unchanged msal and azure-identity pointed at its authority."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    OnBehalfOfCredential,
)

from localdev.entra import COGNITIVE_SERVICES, EntraEmulator, RegisteredClient, TestUser
from localdev.server import start_in_thread
from localdev.tls import ensure_local_tls
from tests.integration.signin import posted_form

TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
CLIENT = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
OTHER_CLIENT = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"
SECRET = "s3cret-" + "x" * 30
REDIRECT = "http://127.0.0.1:8080/signin/callback"
ADA = TestUser(oid="11111111-1111-4111-8111-111111111111", name="Ada Lovelace", preferred_username="ada@contoso.example")
GRACE = TestUser(oid="22222222-2222-4222-8222-222222222222", name="Grace Hopper", preferred_username="grace@contoso.example")
API_SCOPE = f"api://{CLIENT}/access_as_user"
CS_SCOPE = f"{COGNITIVE_SERVICES}/.default"


@pytest.fixture(scope="module")
def entra(tmp_path_factory):
    folder = tmp_path_factory.mktemp("entra")
    tls = ensure_local_tls(folder / "tls")
    emulator = EntraEmulator(TENANT, [
        RegisteredClient(CLIENT, SECRET, [REDIRECT], ["http://127.0.0.1:8080/"]),
        RegisteredClient(OTHER_CLIENT, "other-" + "y" * 30, ["http://127.0.0.1:9999/cb"]),
    ], [ADA, GRACE], key_file=folder / "signing-key.pem")
    server = start_in_thread(emulator.app, tls)
    emulator.server, emulator.tls, emulator.key_file = server, tls, folder / "signing-key.pem"
    yield emulator
    server.stop()


@pytest.fixture(autouse=True)
def trust_local_ca(entra, monkeypatch):
    for name, value in entra.tls.client_env().items():
        monkeypatch.setenv(name, value)
    entra.requests.clear()
    knobs = entra.knobs
    yield
    entra.knobs = type(knobs)()


def trusted(entra) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(entra.tls.ca_file))


def authority(entra) -> str:
    return f"{entra.server.url}/{TENANT}"


def msal_app(entra, client_id=CLIENT, secret=SECRET, cache=None) -> msal.ConfidentialClientApplication:
    # A fresh app per test: msal replays identical 400 answers from memory for 60 s.
    return msal.ConfidentialClientApplication(client_id, client_credential=secret, authority=authority(entra),
                                              instance_discovery=False, token_cache=cache)


def browser_authorize(entra, auth_uri: str) -> httpx.Response:
    with httpx.Client(verify=trusted(entra), follow_redirects=False, timeout=10) as http:
        return http.get(auth_uri)


def form_post_answer(entra, flow: dict) -> dict:
    """The browser leg with response_mode=form_post: authorize auto-approves and answers with a form that posts the
    code back to the redirect URI; these are its fields."""
    reply = browser_authorize(entra, flow["auth_uri"])
    assert reply.status_code == 200, reply.text
    action, fields = posted_form(reply.text)
    assert action == REDIRECT
    return fields


def sign_in(entra, app, scopes=(API_SCOPE,), login_hint=None) -> dict:
    """Authorize (form_post, as the app signs in), then msal redeems the code."""
    flow = app.initiate_auth_code_flow(list(scopes), redirect_uri=REDIRECT, login_hint=login_hint,
                                       response_mode="form_post")
    return app.acquire_token_by_auth_code_flow(flow, form_post_answer(entra, flow))


def verify_with_jwks(entra, token: str, audience: str) -> dict:
    jwks = httpx.get(f"{authority(entra)}/discovery/v2.0/keys", verify=trusted(entra)).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience)


# ---- discovery and keys ----
def test_discovery_names_tenant_path_endpoints_and_no_pkce_advertisement(entra):
    doc = httpx.get(f"{authority(entra)}/v2.0/.well-known/openid-configuration", verify=trusted(entra)).json()
    assert doc["issuer"] == f"{entra.server.url}/{TENANT}/v2.0"
    assert doc["token_endpoint"] == f"{authority(entra)}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{authority(entra)}/discovery/v2.0/keys"
    assert doc["end_session_endpoint"] == f"{authority(entra)}/oauth2/v2.0/logout"
    assert "code_challenge_methods_supported" not in doc  # as Entra; PKCE is enforced all the same


def test_unknown_tenant_is_an_aadsts_error(entra):
    reply = httpx.get(f"{entra.server.url}/not-my-tenant/v2.0/.well-known/openid-configuration",
                      verify=trusted(entra))
    assert reply.status_code == 400 and reply.json()["error_description"].startswith("AADSTS90002:")


def test_signing_key_is_kept_across_restarts(entra, tmp_path):
    again = EntraEmulator(TENANT, list(entra.clients.values()), [ADA], key_file=entra.key_file)
    assert again.jwks == entra.jwks
    assert oct(entra.key_file.stat().st_mode & 0o777) == "0o600"


# ---- authorization code with msal ----
def test_msal_sign_in_gives_v2_id_token_and_own_api_token(entra):
    app = msal_app(entra)
    result = sign_in(entra, app)
    assert "error" not in result, result
    id_claims = verify_with_jwks(entra, result["id_token"], CLIENT)
    assert id_claims["iss"] == f"{entra.server.url}/{TENANT}/v2.0" and id_claims["ver"] == "2.0"
    assert (id_claims["oid"], id_claims["tid"], id_claims["preferred_username"]) == (ADA.oid, TENANT, ADA.preferred_username)
    assert id_claims["nonce"]  # msal compared it with the hash it sent; a mismatch would have raised
    access = verify_with_jwks(entra, result["access_token"], CLIENT)
    assert access["scp"] == "access_as_user" and access["azp"] == CLIENT and access["ver"] == "2.0"
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{ADA.oid}.{TENANT}" and account["username"] == ADA.preferred_username


def test_login_hint_picks_the_test_person(entra):
    result = sign_in(entra, msal_app(entra), login_hint=GRACE.preferred_username)
    assert result["id_token_claims"]["oid"] == GRACE.oid


def test_sent_secrets_are_redacted_in_the_recorded_requests(entra):
    sign_in(entra, msal_app(entra))
    authorize = next(r for r in entra.requests if r["endpoint"] == "authorize")
    token = next(r for r in entra.requests if r["endpoint"] == "token")
    assert authorize["params"]["code_challenge_method"] == "S256"
    assert token["params"]["grant_type"] == "authorization_code"
    for name in ("client_secret", "code", "code_verifier"):
        assert token["params"][name] == "<redacted>"
    assert SECRET not in json.dumps(entra.requests)


def test_code_is_single_use(entra):
    app = msal_app(entra)
    flow = app.initiate_auth_code_flow([API_SCOPE], redirect_uri=REDIRECT, response_mode="form_post")
    params = form_post_answer(entra, flow)
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), params)
    again = msal_app(entra).acquire_token_by_auth_code_flow(dict(flow), params)
    assert again["error"] == "invalid_grant" and "AADSTS54005" in again["error_description"]


def test_wrong_pkce_verifier_is_refused(entra):
    app = msal_app(entra)
    flow = app.initiate_auth_code_flow([API_SCOPE], redirect_uri=REDIRECT, response_mode="form_post")
    params = form_post_answer(entra, flow)
    flow["code_verifier"] = secrets.token_urlsafe(32)
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == "invalid_grant" and "AADSTS501481" in result["error_description"]


def test_form_post_answer_is_an_auto_submitting_form_like_entras(entra):
    app = msal_app(entra)
    flow = app.initiate_auth_code_flow([API_SCOPE], redirect_uri=REDIRECT, response_mode="form_post")
    reply = browser_authorize(entra, flow["auth_uri"])
    assert reply.headers["content-type"].startswith("text/html") and "no-store" in reply.headers["cache-control"]
    assert "document.forms[0].submit()" in reply.text and "<noscript>" in reply.text
    action, fields = posted_form(reply.text)
    assert action == REDIRECT and set(fields) == {"code", "state", "session_state"} and fields["state"] == flow["state"]
    assert "location" not in reply.headers  # the code travels in the page body only


def test_query_mode_still_answers_by_redirect_and_msal_warns_about_it(entra):
    """Query mode is kept for other callers; msal warns on every such flow (the app itself uses form_post)."""
    app = msal_app(entra)
    with pytest.warns(UserWarning, match="form_post"):
        flow = app.initiate_auth_code_flow([API_SCOPE], redirect_uri=REDIRECT)
    reply = browser_authorize(entra, flow["auth_uri"])
    assert reply.status_code == 302
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, params)


def test_errors_are_posted_back_too_in_form_post_mode(entra):
    query = {"client_id": CLIENT, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid", "state": "st",
             "response_mode": "form_post"}
    reply = browser_authorize(entra, str(httpx.URL(f"{authority(entra)}/oauth2/v2.0/authorize", params=query)))
    action, fields = posted_form(reply.text)
    assert action == REDIRECT and fields["error"] == "invalid_request" and fields["state"] == "st"
    assert "AADSTS9002325" in fields["error_description"]


def test_authorize_requires_pkce_s256(entra):
    query = {"client_id": CLIENT, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid", "state": "st"}
    reply = browser_authorize(entra, str(httpx.URL(f"{authority(entra)}/oauth2/v2.0/authorize", params=query)))
    assert reply.status_code == 302
    back = parse_qs(urlsplit(reply.headers["location"]).query)
    assert back["error"] == ["invalid_request"] and back["state"] == ["st"] and "AADSTS9002325" in back["error_description"][0]
    plain = {**query, "code_challenge": "abc", "code_challenge_method": "plain"}
    reply = browser_authorize(entra, str(httpx.URL(f"{authority(entra)}/oauth2/v2.0/authorize", params=plain)))
    assert "error" in parse_qs(urlsplit(reply.headers["location"]).query)


@pytest.mark.parametrize("redirect_uri", [REDIRECT + "/", "http://127.0.0.1:8080/signin/callback?x=1",
                                          "http://evil.example/signin/callback", "http://127.0.0.1:9999/cb"])
def test_unregistered_redirect_uri_shows_an_error_page_and_never_redirects(entra, redirect_uri):
    query = {"client_id": CLIENT, "response_type": "code", "redirect_uri": redirect_uri, "scope": "openid",
             "code_challenge": "a" * 43, "code_challenge_method": "S256"}
    reply = browser_authorize(entra, str(httpx.URL(f"{authority(entra)}/oauth2/v2.0/authorize", params=query)))
    assert reply.status_code == 400 and "location" not in reply.headers and "AADSTS50011" in reply.text


def test_wrong_client_secret_is_invalid_client(entra):
    result = msal_app(entra, secret="not-the-secret").acquire_token_for_client([CS_SCOPE])
    assert result["error"] == "invalid_client" and "AADSTS7000215" in result["error_description"]
    assert {"error_codes", "trace_id", "correlation_id", "timestamp"} <= set(result)


# ---- refresh ----
def test_silent_refresh_rotates_the_refresh_token(entra):
    cache = msal.SerializableTokenCache()
    app = msal_app(entra, cache=cache)
    first = sign_in(entra, app)
    refreshed = app.acquire_token_silent([API_SCOPE], account=app.get_accounts()[0], force_refresh=True)
    assert refreshed and "access_token" in refreshed and refreshed["refresh_token"] != first["refresh_token"]
    # the spent refresh token is refused now (a fresh app: msal would replay its own 400s)
    form = {"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"], "scope": API_SCOPE}
    reply = httpx.post(f"{authority(entra)}/oauth2/v2.0/token", data=form, verify=trusted(entra))
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant"


def test_revoked_sign_in_makes_silent_refresh_fail(entra):
    app = msal_app(entra)
    sign_in(entra, app)
    assert entra.revoke(ADA.oid) >= 1
    result = app.acquire_token_silent_with_error([API_SCOPE], account=app.get_accounts()[0], force_refresh=True)
    assert result["error"] == "invalid_grant"


def test_short_lived_access_token_is_refreshed_silently(entra):
    entra.knobs.access_token_lifetime = 200  # msal treats < 5 min left as expired
    app = msal_app(entra)
    first = sign_in(entra, app)
    again = app.acquire_token_silent([API_SCOPE], account=app.get_accounts()[0])
    assert again["access_token"] != first["access_token"]
    assert [r["params"]["grant_type"] for r in entra.requests if r["endpoint"] == "token"][-1] == "refresh_token"


# ---- app identity: client credentials, DefaultAzureCredential, managed identity ----
def test_client_secret_credential_gets_a_v1_cognitive_services_app_token(entra):
    credential = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=entra.server.url,
                                        disable_instance_discovery=True)
    token = credential.get_token(CS_SCOPE)
    claims = verify_with_jwks(entra, token.token, COGNITIVE_SERVICES)
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/" and claims["ver"] == "1.0"
    assert claims["appid"] == CLIENT and claims["tid"] == TENANT and claims["idtyp"] == "app" and claims["oid"]
    assert token.expires_on > time.time() + 3000


def test_client_credentials_need_a_single_default_scope(entra):
    result = msal_app(entra).acquire_token_for_client([f"{COGNITIVE_SERVICES}/user_impersonation"])
    assert result["error"] == "invalid_scope" and "AADSTS1002012" in result["error_description"]


def test_two_resources_in_one_request_are_refused(entra):
    form = {"client_id": CLIENT, "client_secret": SECRET, "grant_type": "client_credentials",
            "scope": f"{CS_SCOPE} https://graph.microsoft.com/.default"}
    reply = httpx.post(f"{authority(entra)}/oauth2/v2.0/token", data=form, verify=trusted(entra))
    assert reply.status_code == 400


def test_default_azure_credential_with_environment_service_principal(entra, monkeypatch):
    for name, value in {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": SECRET,
                        "AZURE_AUTHORITY_HOST": entra.server.url,
                        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential"}.items():
        monkeypatch.setenv(name, value)
    token = DefaultAzureCredential(disable_instance_discovery=True).get_token(CS_SCOPE)
    assert jwt.decode(token.token, options={"verify_signature": False})["appid"] == CLIENT


def test_managed_identity_credential_via_app_service_endpoint(entra, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{entra.server.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", entra.identity_header)
    token = ManagedIdentityCredential().get_token(CS_SCOPE)
    assert verify_with_jwks(entra, token.token, COGNITIVE_SERVICES)["idtyp"] == "app"
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(CS_SCOPE)


# ---- on-behalf-of ----
def test_on_behalf_of_exchanges_the_person_token_for_a_delegated_cognitive_services_token(entra):
    user_token = sign_in(entra, msal_app(entra))["access_token"]
    credential = OnBehalfOfCredential(TENANT, CLIENT, client_secret=SECRET, user_assertion=user_token,
                                      authority=entra.server.url, disable_instance_discovery=True)
    claims = verify_with_jwks(entra, credential.get_token(CS_SCOPE).token, COGNITIVE_SERVICES)
    assert claims["oid"] == ADA.oid and claims["scp"] == "user_impersonation" and "idtyp" not in claims
    assert claims["upn"] == ADA.preferred_username and claims["appid"] == CLIENT
    obo = next(r for r in entra.requests if r["params"].get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer")
    assert obo["params"]["requested_token_use"] == "on_behalf_of" and obo["params"]["assertion"] == "<redacted>"


@pytest.mark.parametrize("make_assertion, code", [
    (lambda e: e.mint_token(user=ADA.oid, resource=f"api://{CLIENT}", foreign_key=True), "AADSTS50013"),
    (lambda e: e.mint_token(user=ADA.oid, resource=f"api://{CLIENT}", exp=int(time.time()) - 600), "AADSTS500133"),
    (lambda e: e.mint_token(user=ADA.oid, resource=f"api://{OTHER_CLIENT}", client_id=OTHER_CLIENT), "AADSTS50013"),
    (lambda e: e.cognitive_services_token(), "AADSTS50013"),
    (lambda e: "not-a-jwt", "AADSTS50013"),
])
def test_on_behalf_of_verifies_the_assertion(entra, make_assertion, code):
    result = msal_app(entra).acquire_token_on_behalf_of(make_assertion(entra), [CS_SCOPE])
    assert result["error"] == "invalid_grant" and code in result["error_description"], result


def test_on_behalf_of_needs_requested_token_use(entra):
    form = {"client_id": CLIENT, "client_secret": SECRET, "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": entra.mint_token(user=ADA.oid, resource=f"api://{CLIENT}"), "scope": CS_SCOPE}
    reply = httpx.post(f"{authority(entra)}/oauth2/v2.0/token", data=form, verify=trusted(entra))
    assert reply.status_code == 400 and "AADSTS900144" in reply.json()["error_description"]


# ---- knobs for the app's own id_token validation ----
def test_knobs_break_the_id_token_in_the_ways_the_app_must_catch(entra):
    entra.knobs.sign_id_token_with_foreign_key = True
    entra.knobs.id_token_overrides = {"aud": "someone-else"}
    result = sign_in(entra, msal_app(entra))
    assert result["id_token_claims"]["aud"] == "someone-else"  # msal decodes without validating (msal#911)
    with pytest.raises(jwt.InvalidSignatureError):
        verify_with_jwks(entra, result["id_token"], "someone-else")


def test_tampered_nonce_is_caught_by_msal(entra):
    entra.knobs.tamper_nonce = True
    with pytest.raises(RuntimeError):
        sign_in(entra, msal_app(entra))


# ---- logout ----
def test_logout_redirects_only_to_a_registered_uri(entra):
    base = f"{authority(entra)}/oauth2/v2.0/logout"
    with httpx.Client(verify=trusted(entra), follow_redirects=False) as http:
        ok = http.get(base, params={"post_logout_redirect_uri": "http://127.0.0.1:8080/", "state": "s1"})
        evil = http.get(base, params={"post_logout_redirect_uri": "http://evil.example/"})
        plain = http.get(base)
    assert ok.status_code == 302 and ok.headers["location"] == "http://127.0.0.1:8080/?state=s1"
    assert evil.status_code == 400 and "location" not in evil.headers
    assert plain.status_code == 200 and "signed out" in plain.text


def test_pkce_challenge_matches_rfc7636_example():
    from localdev.entra import pkce_challenge
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce_challenge(verifier) == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
