"""A local Microsoft Entra ID: the OIDC/OAuth2 endpoints msal and azure-identity use, with Entra's token shapes.

Serve `EntraEmulator(...).app` over HTTPS (msal refuses http authorities) and point the clients at
`https://localhost:PORT/{tenant}` with instance discovery off. What it does, as Entra does:
- tenant-path discovery (`/{tenant}/v2.0/.well-known/openid-configuration`) and JWKS;
- authorize: auto-approves a registered test person, exact redirect_uri, PKCE S256 required; answers by query or
  fragment redirect, or by form_post (an auto-submitting form the browser POSTs to the redirect URI, as Entra does);
- token: authorization_code (single use, PKCE checked), refresh_token (rotating), client_credentials,
  jwt-bearer on-behalf-of (the assertion's signature, audience and expiry are verified);
- logout to a registered post-logout URI only; errors as `{"error", "error_description": "AADSTSnnnnn: ..."}`;
- App Service managed identity (`/msi/token`) for the managed-identity credential.
Tokens: v2 id_token; v1 Cognitive Services access token (`aud=https://cognitiveservices.azure.com`,
`iss=https://sts.windows.net/{tid}/`; the same shape with `aud=https://ai.azure.com` for the newer v1-API scope
`https://ai.azure.com/.default`); v1 Microsoft Graph access token (`aud=https://graph.microsoft.com`, `scp` = the
delegated permissions consented for the app registration, `RegisteredClient.graph_consent`); v2 access token for the
app's own API (`api://{client_id}`).
`requests` records what each call sent, with secrets replaced by "<redacted>", so tests can check the wire.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

COGNITIVE_SERVICES = "https://cognitiveservices.azure.com"
# The newer docs' resource for Azure OpenAI's v1 API (scope `https://ai.azure.com/.default`); tokens carry it as `aud`.
AI_AZURE = "https://ai.azure.com"
MICROSOFT_GRAPH = "00000003-0000-0000-c000-000000000000"  # Graph's application id (a bare scope like User.Read)
GRAPH_RESOURCE = "https://graph.microsoft.com"  # Graph's application ID URI (`https://graph.microsoft.com/.default`)
GRAPH_RESOURCES = (GRAPH_RESOURCE, MICROSOFT_GRAPH)
# What an admin consented to for the app registration by default: enough for the chat's Graph tools.
DEFAULT_GRAPH_CONSENT = ("User.Read", "Calendars.Read", "People.Read", "User.ReadBasic.All")
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SECRET_FIELDS = {"client_secret", "code", "code_verifier", "refresh_token", "assertion", "client_assertion", "password"}


@dataclass(frozen=True)
class TestUser:
    """A person in the emulated tenant; authorize signs in the one named by `login_hint`, else the default."""

    __test__ = False  # not a pytest test class

    oid: str
    name: str
    preferred_username: str
    roles: tuple[str, ...] = ()  # app roles assigned to the person; Entra puts them in id and access tokens


@dataclass(frozen=True)
class RegisteredClient:
    """An app registration: its secret, exact redirect URIs, the object id of its service principal, and the
    Microsoft Graph delegated permissions consented for it (`.default` Graph tokens carry exactly these in `scp`)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    app_roles: tuple[str, ...] = ()
    graph_consent: tuple[str, ...] = DEFAULT_GRAPH_CONSENT

    @property
    def service_principal_oid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"service-principal:{self.client_id}"))


@dataclass
class Knobs:
    """Test hooks. Lifetimes in seconds; msal treats access tokens with < 5 min left as expired."""

    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 24 * 3600
    code_lifetime: int = 600
    default_user: str | None = None  # oid; None = the first user
    tamper_nonce: bool = False
    omit_client_info: bool = False
    id_token_overrides: dict = field(default_factory=dict)  # e.g. {"aud": "someone-else"}; None removes a claim
    sign_id_token_with_foreign_key: bool = False


class EntraError(Exception):
    """An OAuth error in Entra's shape. `status` 400 for grant errors, 401 for client authentication."""

    def __init__(self, error: str, code: int, message: str, status: int = 400, suberror: str | None = None) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.error, self.code, self.message, self.status, self.suberror = error, code, message, status, suberror

    def body(self) -> dict:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.message} Trace ID: {trace} Correlation ID: {correlation} "
                                 f"Timestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            **({"suberror": self.suberror} if self.suberror else {}),
        }


def load_or_create_key(key_file: Path | None) -> rsa.RSAPrivateKey:
    """The signing key; kept in `key_file` (owner-only) so tokens stay valid across restarts of `make run`."""
    if key_file is not None and key_file.exists():
        return serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    return key


def key_id(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:15]).decode().rstrip("=")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce_challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class EntraEmulator:
    """One emulated tenant. Serve `.app`; read `.requests`; tune `.knobs`; `revoke(oid)` ends a person's sign-ins."""

    def __init__(self, tenant_id: str, clients: list[RegisteredClient], users: list[TestUser], *,
                 key_file: Path | None = None, identity_header: str | None = None) -> None:
        if not users:
            raise ValueError("the emulated tenant needs at least one test user")
        self.tenant_id = tenant_id
        self.clients = {client.client_id: client for client in clients}
        self.users = {user.oid: user for user in users}
        self.knobs = Knobs()
        self.requests: list[dict] = []
        # Every code and token handed out, so tests can prove none of them ever reaches a log.
        self.issued: set[str] = set()
        # App Service managed identity: the platform gives the app this header value in IDENTITY_HEADER.
        self.identity_header = identity_header or secrets.token_urlsafe(24)
        self.base_url = "https://localhost"  # replaced by the URL of the first request that arrives
        self._key = load_or_create_key(key_file)
        self._kid = key_id(self._key)
        self._foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict] = {}
        self._refresh_tokens: dict[str, dict] = {}
        self._lock = threading.Lock()
        tenant = "/{tenant}"
        self.app = Starlette(routes=[
            Route(f"{tenant}/v2.0/.well-known/openid-configuration", self._discovery),
            Route(f"{tenant}/.well-known/openid-configuration", self._discovery),
            Route(f"{tenant}/discovery/v2.0/keys", self._keys),
            Route(f"{tenant}/discovery/keys", self._keys),
            Route(f"{tenant}/oauth2/v2.0/authorize", self._authorize),
            Route(f"{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route(f"{tenant}/oauth2/v2.0/logout", self._logout),
            Route("/msi/token", self._managed_identity),
        ])

    # ---- issuers and keys -------------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        """The v2 issuer (id_tokens, tokens for the app's own API), like https://login.microsoftonline.com/{tid}/v2.0."""
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    @property
    def v1_issuer(self) -> str:
        """The v1 issuer real Entra puts in Cognitive Services tokens, whatever host signed them."""
        return f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def jwks(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": self._kid, "use": "sig", "kty": "RSA", "x5t": self._kid}]}

    def sign(self, claims: dict, *, foreign_key: bool = False) -> str:
        """Sign claims with the tenant key (or with a key nobody publishes, for negative tests)."""
        key = self._foreign_key if foreign_key else self._key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self._kid, "typ": "JWT"})
        self.issued.add(token)
        return token

    # ---- token shapes -----------------------------------------------------------------------------------------
    def _times(self, lifetime: int) -> dict:
        now = int(time.time())
        return {"iat": now, "nbf": now, "exp": now + lifetime}

    def _pairwise_sub(self, user: TestUser, client_id: str) -> str:
        return _b64url(hashlib.sha256(f"{user.oid}:{client_id}".encode()).digest())

    def id_token_claims(self, user: TestUser, client_id: str, nonce: str | None, auth_time: int) -> dict:
        claims = {"aud": client_id, "iss": self.issuer, **self._times(3600), "sub": self._pairwise_sub(user, client_id),
                  "oid": user.oid, "tid": self.tenant_id, "name": user.name, "preferred_username": user.preferred_username,
                  "ver": "2.0", "auth_time": auth_time, "sid": str(uuid.uuid5(uuid.NAMESPACE_OID, user.oid)),
                  "uti": _b64url(secrets.token_bytes(16))}
        if user.roles:
            claims["roles"] = list(user.roles)
        if nonce is not None:
            claims["nonce"] = "tampered-" + nonce if self.knobs.tamper_nonce else nonce
        for name, value in self.knobs.id_token_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def access_token_claims(self, resource: str, scopes: list[str], client: RegisteredClient,
                            user: TestUser | None, lifetime: int | None = None) -> dict:
        """An access token for `resource`: v1 for Cognitive Services and Graph, v2 for the app's own API."""
        times = self._times(lifetime if lifetime is not None else self.knobs.access_token_lifetime)
        own_api = resource in (client.client_id, f"api://{client.client_id}")
        base = {**times, "tid": self.tenant_id, "uti": _b64url(secrets.token_bytes(16)), "rh": "0.local."}
        if own_api:
            claims = {"aud": client.client_id, "iss": self.issuer, "ver": "2.0", "azp": client.client_id,
                      "azpacr": "1", **base}
        else:
            claims = {"aud": COGNITIVE_SERVICES if resource == COGNITIVE_SERVICES else resource, "iss": self.v1_issuer,
                      "idp": self.v1_issuer, "ver": "1.0", "appid": client.client_id, "appidacr": "1", **base}
        if user is None:  # app-only: the service principal, with its app roles
            claims.update(oid=client.service_principal_oid, sub=client.service_principal_oid, idtyp="app")
            if client.app_roles:
                claims["roles"] = list(client.app_roles)
        else:
            if scopes != [".default"]:
                scp = " ".join(scopes)
            elif resource in GRAPH_RESOURCES:  # .default: every delegated permission consented for the app
                scp = " ".join(client.graph_consent)
            else:
                scp = "user_impersonation"
            claims.update(oid=user.oid, sub=self._pairwise_sub(user, client.client_id), name=user.name, scp=scp,
                          amr=["pwd"])
            if user.roles and own_api:
                claims["roles"] = list(user.roles)
            claims.update({"preferred_username": user.preferred_username} if own_api
                          else {"upn": user.preferred_username, "unique_name": user.preferred_username, "acr": "1"})
        return claims

    def mint_token(self, *, user: TestUser | str | None = None, resource: str = COGNITIVE_SERVICES,
                   client_id: str | None = None, lifetime: int | None = None, foreign_key: bool = False,
                   **overrides) -> str:
        """A token as the token endpoint would issue it, for tests. Overrides replace claims (None removes one)."""
        client = self.clients[client_id] if client_id else next(iter(self.clients.values()))
        person = self.users[user] if isinstance(user, str) else user
        scopes = ["access_as_user"] if resource.startswith("api://") else [".default"]
        claims = self.access_token_claims(resource, scopes, client, person, lifetime)
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.sign(claims, foreign_key=foreign_key)

    def cognitive_services_token(self, **kwargs) -> str:
        """An app-only Cognitive Services token (pass user= for a delegated one)."""
        return self.mint_token(resource=COGNITIVE_SERVICES, **kwargs)

    def graph_token(self, **kwargs) -> str:
        """A Microsoft Graph token (aud https://graph.microsoft.com): delegated with user=, app-only without."""
        return self.mint_token(resource=GRAPH_RESOURCE, **kwargs)

    def set_graph_consent(self, client_id: str, scopes: list[str] | tuple[str, ...] | str) -> None:
        """Change which Graph delegated permissions are consented for an app registration, as an admin would
        (e.g. withdraw Calendars.Read); later Graph tokens carry the new list."""
        names = tuple(scopes.split() if isinstance(scopes, str) else scopes)
        self.clients[client_id] = replace(self.clients[client_id], graph_consent=names)

    def revoke(self, oid: str | None = None) -> int:
        """Revoke the refresh tokens of one person (or everyone), as an admin's "revoke sessions" does."""
        with self._lock:
            doomed = [t for t, grant in self._refresh_tokens.items() if oid is None or grant["oid"] == oid]
            for token in doomed:
                del self._refresh_tokens[token]
        return len(doomed)

    # ---- routes -----------------------------------------------------------------------------------------------
    def _record(self, request: Request, endpoint: str, params: dict) -> None:
        self.base_url = f"{request.url.scheme}://{request.url.netloc}"
        safe = {k: ("<redacted>" if k in SECRET_FIELDS else v) for k, v in params.items()}
        self.requests.append({"endpoint": endpoint, "method": request.method, "path": request.url.path,
                              "params": safe, "basic_auth": request.headers.get("authorization", "").startswith("Basic ")})

    def _check_tenant(self, request: Request) -> None:
        tenant = request.path_params["tenant"]
        if tenant != self.tenant_id:
            raise EntraError("invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the "
                             "correct tenant ID and are signing into the correct cloud.")

    async def _discovery(self, request: Request) -> Response:
        self._record(request, "discovery", {})
        try:
            self._check_tenant(request)
        except EntraError as exc:
            return JSONResponse(exc.body(), status_code=400)
        base = f"{self.base_url}/{self.tenant_id}"
        return JSONResponse({
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "oid", "tid",
                                 "preferred_username", "ver", "sid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "localhost",
            # Like real Entra, no code_challenge_methods_supported (yet PKCE is enforced below).
        })

    async def _keys(self, request: Request) -> Response:
        self._record(request, "keys", {})
        return JSONResponse(self.jwks)

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self._record(request, "authorize", params)
        try:
            self._check_tenant(request)
        except EntraError as exc:
            return _error_page(exc)
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return _error_page(EntraError("unauthorized_client", 700016, f"Application with identifier "
                                          f"'{params.get('client_id')}' was not found in the directory."))
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:  # exact match, and never a redirect to an unregistered URI
            return _error_page(EntraError("invalid_request", 50011, f"The redirect URI '{redirect_uri}' specified in "
                                          f"the request does not match the redirect URIs configured for the application "
                                          f"'{client.client_id}'."))
        mode = params.get("response_mode", "query")
        state = params.get("state")

        def fail(exc: EntraError) -> Response:
            return _authorize_reply(redirect_uri, mode, {"error": exc.error, "error_description": str(exc),
                                                         **({"state": state} if state else {})})

        if params.get("response_type") != "code":
            return fail(EntraError("unsupported_response_type", 700054, "response_type 'code' is required here."))
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return fail(EntraError("invalid_request", 9002325, "Proof Key for Code Exchange is required: send "
                                   "code_challenge with code_challenge_method=S256."))
        scopes = params.get("scope", "").split()
        try:
            resource, _ = _resource_of(scopes, client)
        except EntraError as exc:
            return fail(exc)
        user = self._pick_user(params.get("login_hint"))
        code = _b64url(secrets.token_bytes(48))
        self.issued.add(code)
        with self._lock:
            self._codes[code] = {"client_id": client.client_id, "redirect_uri": redirect_uri, "scopes": scopes,
                                 "resource": resource, "nonce": params.get("nonce"),
                                 "challenge": params["code_challenge"], "oid": user.oid,
                                 "expires": time.time() + self.knobs.code_lifetime, "auth_time": int(time.time())}
        reply = {"code": code, **({"state": state} if state else {}), "session_state": str(uuid.uuid4())}
        return _authorize_reply(redirect_uri, mode, reply)

    def _pick_user(self, login_hint: str | None) -> TestUser:
        for user in self.users.values():
            if login_hint and user.preferred_username.lower() == login_hint.lower():
                return user
        if self.knobs.default_user:
            return self.users[self.knobs.default_user]
        return next(iter(self.users.values()))

    async def _token(self, request: Request) -> Response:
        form = dict(await request.form())
        self._record(request, "token", form)
        try:
            self._check_tenant(request)
            client = self._authenticate_client(request, form)
            grant = form.get("grant_type", "")
            if grant == "authorization_code":
                body = self._redeem_code(form, client)
            elif grant == "refresh_token":
                body = self._redeem_refresh_token(form, client)
            elif grant == "client_credentials":
                body = self._client_credentials(form, client)
            elif grant == JWT_BEARER:
                body = self._on_behalf_of(form, client)
            else:
                raise EntraError("unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                                 f"'{grant}'.")
        except EntraError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers={"cache-control": "no-store"})
        return JSONResponse(body, headers={"cache-control": "no-store", "pragma": "no-cache"})

    def _authenticate_client(self, request: Request, form: dict) -> RegisteredClient:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise EntraError("invalid_client", 7000215, "Invalid client secret provided.", 401) from None
        client = self.clients.get(client_id or "")
        if client is None:
            raise EntraError("unauthorized_client", 700016, f"Application with identifier '{client_id}' was not found "
                             "in the directory.", 400)
        if not secret:
            raise EntraError("invalid_client", 7000218, "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.", 401)
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise EntraError("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent "
                             f"in the request is the client secret value, not the client secret ID, for a secret added "
                             f"to app '{client.client_id}'.", 401)
        return client

    def _redeem_code(self, form: dict, client: RegisteredClient) -> dict:
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use: gone whatever happens next
        if grant is None:
            raise EntraError("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed or is not valid, "
                             "please retry with a new valid code.")
        if time.time() > grant["expires"]:
            raise EntraError("invalid_grant", 70008, "The provided authorization code or refresh token has expired "
                             "due to inactivity. Send a new interactive authorization request for this user and resource.")
        if grant["client_id"] != client.client_id:
            raise EntraError("invalid_grant", 70000, "The provided authorization code was issued to another client.")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            raise EntraError("invalid_grant", 500117, "The reply uri specified in the request does not match the reply "
                             "uri specified in the authorization request.")
        verifier = form.get("code_verifier", "")
        if not verifier:
            raise EntraError("invalid_grant", 501481, "The Code_Verifier is missing: PKCE was used in the "
                             "authorization request.")
        if not hmac.compare_digest(pkce_challenge(verifier), grant["challenge"]):
            raise EntraError("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied "
                             "in the authorization request.")
        user = self.users[grant["oid"]]
        return self._user_tokens(client, user, grant["scopes"], grant["resource"], nonce=grant["nonce"],
                                 auth_time=grant["auth_time"])

    def _redeem_refresh_token(self, form: dict, client: RegisteredClient) -> dict:
        with self._lock:
            grant = self._refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotating: the old one is spent
        if grant is None:
            raise EntraError("invalid_grant", 70000, "The provided grant is invalid or malformed, or was revoked.")
        if time.time() > grant["expires"]:
            raise EntraError("invalid_grant", 700082, "The refresh token has expired due to inactivity.")
        if grant["client_id"] != client.client_id:
            raise EntraError("invalid_grant", 70000, "The refresh token was issued to a different client.")
        scopes = form.get("scope", "").split() or grant["scopes"]
        resource, _ = _resource_of(scopes, client)
        return self._user_tokens(client, self.users[grant["oid"]], scopes, resource, nonce=None,
                                 auth_time=grant["auth_time"])

    def _client_credentials(self, form: dict, client: RegisteredClient) -> dict:
        scopes = form.get("scope", "").split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise EntraError("invalid_scope", 1002012, f"The provided value for scope '{form.get('scope', '')}' is not "
                             "valid. Client credential flows must have a scope value with /.default suffixed to the "
                             "resource identifier (application ID URI).")
        resource, names = _resource_of(scopes, client)
        claims = self.access_token_claims(resource, names, client, None)
        return {"token_type": "Bearer", "expires_in": self.knobs.access_token_lifetime,
                "ext_expires_in": self.knobs.access_token_lifetime, "access_token": self.sign(claims)}

    def _on_behalf_of(self, form: dict, client: RegisteredClient) -> dict:
        if form.get("requested_token_use") != "on_behalf_of":
            raise EntraError("invalid_request", 900144, "The request body must contain the following parameter: "
                             "'requested_token_use' with the value 'on_behalf_of'.")
        try:
            assertion = jwt.decode(form.get("assertion", ""), self._key.public_key(), algorithms=["RS256"],
                                   audience=[client.client_id, f"api://{client.client_id}"], leeway=5,
                                   options={"require": ["exp", "aud", "oid", "tid"]})
        except jwt.ExpiredSignatureError:
            raise EntraError("invalid_grant", 500133, "Assertion is not within its valid time range.") from None
        except jwt.InvalidAudienceError:
            raise EntraError("invalid_grant", 50013, "Assertion failed signature validation or its audience is not "
                             f"this application '{client.client_id}'.") from None
        except jwt.PyJWTError:
            raise EntraError("invalid_grant", 50013, "Assertion failed signature validation.") from None
        if assertion.get("idtyp") == "app" or "scp" not in assertion:
            raise EntraError("invalid_grant", 50013, "The assertion is an app-only token; on-behalf-of needs a "
                             "delegated user token.")
        if assertion["tid"] != self.tenant_id or assertion["oid"] not in self.users:
            raise EntraError("invalid_grant", 50034, "The user account does not exist in this directory.")
        scopes = form.get("scope", "").split()
        resource, names = _resource_of(scopes, client)
        if resource is None:
            raise EntraError("invalid_scope", 70011, "The provided request must include a resource scope.")
        if resource in GRAPH_RESOURCES:
            self._check_graph_consent(client, names)
        return self._user_tokens(client, self.users[assertion["oid"]], scopes, resource, nonce=None,
                                 auth_time=int(assertion.get("iat", time.time())))

    def _check_graph_consent(self, client: RegisteredClient, names: list[str]) -> None:
        """On-behalf-of cannot prompt anyone: Graph permissions must already be consented for the app (AADSTS65001)."""
        consented = {name.lower() for name in client.graph_consent}
        missing = [n for n in names if n != ".default" and n.lower() not in consented]
        if missing or not consented:
            raise EntraError("invalid_grant", 65001, f"The user or administrator has not consented to use the "
                             f"application with ID '{client.client_id}'. Send an interactive authorization request "
                             "for this user and resource.", suberror="consent_required")

    def _user_tokens(self, client: RegisteredClient, user: TestUser, scopes: list[str], resource: str | None,
                     *, nonce: str | None, auth_time: int) -> dict:
        names = [s.rsplit("/", 1)[-1] for s in scopes if s not in OIDC_SCOPES]
        resource = resource or MICROSOFT_GRAPH
        access = self.sign(self.access_token_claims(resource, names or ["User.Read"], client, user))
        granted = " ".join(s for s in scopes if s not in {"openid", "offline_access"}) or "openid profile"
        body = {"token_type": "Bearer", "scope": granted, "expires_in": self.knobs.access_token_lifetime,
                "ext_expires_in": self.knobs.access_token_lifetime, "access_token": access}
        if "openid" in scopes:
            claims = self.id_token_claims(user, client.client_id, nonce, auth_time)
            body["id_token"] = self.sign(claims, foreign_key=self.knobs.sign_id_token_with_foreign_key)
        if "offline_access" in scopes:
            refresh = _b64url(secrets.token_bytes(48))
            self.issued.add(refresh)
            with self._lock:
                self._refresh_tokens[refresh] = {"client_id": client.client_id, "oid": user.oid, "scopes": scopes,
                                                 "auth_time": auth_time,
                                                 "expires": time.time() + self.knobs.refresh_token_lifetime}
            body["refresh_token"] = refresh
        if not self.knobs.omit_client_info:
            body["client_info"] = _b64url(json.dumps({"uid": user.oid, "utid": self.tenant_id}).encode())
        return body

    async def _logout(self, request: Request) -> Response:
        params = dict(request.query_params)
        self._record(request, "logout", params)
        target = params.get("post_logout_redirect_uri")
        if not target:
            return HTMLResponse("<h1>You signed out of your account</h1><p>It's a good idea to close all browser "
                                "windows.</p>")
        registered = {uri for client in self.clients.values() for uri in client.post_logout_redirect_uris}
        if target not in registered:
            return _error_page(EntraError("invalid_request", 50011, f"The post-logout redirect URI '{target}' is not "
                                          "registered for this application."))
        if params.get("state"):
            target += ("&" if "?" in target else "?") + urlencode({"state": params["state"]})
        return RedirectResponse(target, status_code=302)

    async def _managed_identity(self, request: Request) -> Response:
        """App Service's identity endpoint: GET ?api-version=2019-08-01&resource=… with X-IDENTITY-HEADER."""
        params = dict(request.query_params)
        self._record(request, "managed_identity", params)
        header = request.headers.get("x-identity-header", "")
        if not hmac.compare_digest(header.encode(), self.identity_header.encode()):
            return JSONResponse({"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER is missing or wrong."},
                                status_code=401)
        resource = params.get("resource", "").removesuffix("/.default")
        if not resource:
            return JSONResponse({"statusCode": 400, "message": "The resource parameter is required."}, status_code=400)
        client = self.clients.get(params.get("client_id", "")) or next(iter(self.clients.values()))
        claims = self.access_token_claims(resource, [".default"], client, None)
        return JSONResponse({"access_token": self.sign(claims), "expires_on": str(claims["exp"]),
                             "resource": resource, "token_type": "Bearer", "client_id": client.client_id})


def _resource_of(scopes: list[str], client: RegisteredClient) -> tuple[str | None, list[str]]:
    """The single resource the scopes name (None for only openid/profile/…) and the scope names on it."""
    resources: dict[str, list[str]] = {}
    for scope in scopes:
        if scope in OIDC_SCOPES:
            continue
        if "/" in scope:
            resource, _, name = scope.rpartition("/")
        else:  # a bare name like User.Read is a Microsoft Graph scope
            resource, name = MICROSOFT_GRAPH, scope
        resources.setdefault(resource, []).append(name)
    if len(resources) > 1:
        raise EntraError("invalid_request", 28000, "Provided value for the input parameter scope is not valid because "
                         "it contains more than one resource. Scope " + " ".join(scopes) + " is not valid.")
    if not resources:
        return None, []
    resource, names = next(iter(resources.items()))
    known = {COGNITIVE_SERVICES, AI_AZURE, MICROSOFT_GRAPH, "https://graph.microsoft.com", client.client_id,
             f"api://{client.client_id}"}
    if resource not in known:
        raise EntraError("invalid_resource", 500011, f"The resource principal named {resource} was not found in the "
                         "tenant. This can happen if the application has not been installed by the administrator of "
                         "the tenant or consented to by any user in the tenant.")
    return resource, names


def _authorize_reply(redirect_uri: str, mode: str, values: dict) -> Response:
    """The answer, the way the client asked for it (`response_mode`): query (the default for code) or fragment in a
    302 to the redirect URI, or form_post: a page whose form the browser POSTs to the redirect URI at once, shaped
    like Entra's (a script submits it; without script, a button)."""
    if mode == "form_post":
        inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}" />'
                         for k, v in values.items())
        return HTMLResponse(
            f'<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" '
            f'action="{html.escape(redirect_uri)}">{inputs}<noscript><p>Script is disabled. Click Submit to continue.'
            f'</p><input type="submit" value="Submit" /></noscript></form><script language="javascript">'
            f'document.forms[0].submit();</script></body></html>',
            headers={"cache-control": "no-store, no-cache", "pragma": "no-cache"})
    separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(values)}", status_code=302)


def _error_page(exc: EntraError) -> Response:
    """Entra shows an error page (and never redirects) when the client or redirect URI cannot be trusted."""
    return HTMLResponse(f"<html><body><h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>"
                        f"<p id='error'>{html.escape(str(exc))}</p></body></html>", status_code=400)
