"""Sign-in with msal's authorization-code flow (PKCE S256, state, nonce) and the person's tokens afterwards.

The flow is bound to the browser by an encrypted, short-lived HttpOnly cookie (Streamlit's session does not survive
the redirect to Entra and back) and can be redeemed once. The id_token is validated here, not trusted from msal.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import msal
from cryptography.fernet import InvalidToken

from auth.identity import Identity, IdTokenValidator, SignInRejected
from auth.sessions import SessionStore, derive_fernet
from config.settings import EntraSettings

log = logging.getLogger("chat.auth")

SIGNIN_COOKIE = "chat_signin"
FLOW_TTL = timedelta(minutes=10)


class SignInExpired(Exception):
    """The person's sign-in can no longer produce tokens (expired, revoked, or consent withdrawn)."""


@dataclass(frozen=True)
class CompletedSignIn:
    identity: Identity
    token_cache: str
    resume_session: str | None  # the session whose kept draft the new session inherits


def sign_in_scopes(entra: EntraSettings) -> list[str]:
    # Only the app's own API: the token's audience is this app, which is what on-behalf-of requires.
    return [f"api://{entra.client_id}/access_as_user"]


class EntraSignIn:
    def __init__(self, entra: EntraSettings, session_secret: str, sessions: SessionStore,
                 validator: IdTokenValidator | None = None) -> None:
        self._entra = entra
        self._secret = entra.client_secret.get_secret_value() if entra.client_secret else None
        self._flows = derive_fernet(session_secret, "signin-flow")
        self._sessions = sessions
        self._validator = validator or IdTokenValidator(entra)
        # Shared by every per-person msal app so discovery is fetched once, not on every request.
        self._http_cache: dict = {}

    def _app(self, cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
        # One msal app per use: its token cache is fixed at construction, and caches must never mix people.
        return msal.ConfidentialClientApplication(
            self._entra.client_id, client_credential=self._secret, authority=self._entra.authority,
            instance_discovery=None if self._entra.is_microsoft_cloud else False,
            token_cache=cache, http_cache=self._http_cache,
        )

    def begin(self, resume_session: str | None = None, login_hint: str | None = None) -> tuple[str, str]:
        """(URL to send the browser to, value of the flow cookie). `login_hint` pre-fills the account at Entra."""
        # form_post (RFC 9700 §4.3.1): the code comes back in a POST body, never in a URL (history, logs, Referer).
        flow = self._app().initiate_auth_code_flow(sign_in_scopes(self._entra), redirect_uri=self._entra.redirect_uri,
                                                   login_hint=login_hint, response_mode="form_post")
        sealed = self._flows.encrypt(json.dumps({"flow": flow, "resume": resume_session}).encode()).decode()
        return flow["auth_uri"], sealed

    def complete(self, flow_cookie: str | None, params: dict[str, str]) -> CompletedSignIn:
        """Redeem the code once, validate the id_token, and return who signed in with their token cache."""
        if not flow_cookie:
            raise SignInRejected("this sign-in was not started in this browser, or the browser blocked its cookie")
        try:
            sealed = json.loads(self._flows.decrypt(flow_cookie.encode(), ttl=int(FLOW_TTL.total_seconds())))
        except (InvalidToken, ValueError):
            raise SignInRejected("the sign-in took longer than 10 minutes or was tampered with; start again") from None
        flow = sealed["flow"]
        if params.get("state") != flow.get("state"):
            raise SignInRejected("the sign-in answer does not belong to the sign-in this browser started")
        if not self._sessions.use_state_once(flow["state"], FLOW_TTL):
            raise SignInRejected("this sign-in answer was already used; start again")
        if params.get("error"):
            log.warning("sign-in refused by Entra: %s", params.get("error"))
            raise SignInRejected(f"Microsoft Entra ID refused the sign-in: {params.get('error_description') or params['error']}")
        cache = msal.SerializableTokenCache()
        try:
            result = self._app(cache).acquire_token_by_auth_code_flow(flow, params)
        except ValueError:  # msal's own state check
            raise SignInRejected("the sign-in answer does not match the sign-in this browser started") from None
        except RuntimeError:  # msal's nonce check
            raise SignInRejected("the sign-in token does not carry this sign-in's nonce") from None
        if "error" in result:
            log.warning("sign-in code redemption failed: %s %s", result.get("error"), (result.get("error_codes") or [""])[0])
            raise SignInRejected(f"Microsoft Entra ID did not complete the sign-in ({result.get('error')})")
        identity = self._validator.validate(result.get("id_token", ""))
        log.info("signed in oid=%s tid=%s", identity.oid, identity.tenant_id)
        return CompletedSignIn(identity, cache.serialize(), sealed.get("resume"))

    def user_access_token(self, token_cache: str) -> tuple[str, str | None]:
        """The person's access token for this app (silent; refreshed when < 5 min are left), and the changed cache
        to save (None when unchanged). Raises SignInExpired when only a new interactive sign-in can help."""
        cache = msal.SerializableTokenCache()
        cache.deserialize(token_cache)
        app = self._app(cache)
        accounts = app.get_accounts()
        if not accounts:
            raise SignInExpired("no account in this sign-in")
        result = app.acquire_token_silent_with_error(sign_in_scopes(self._entra), account=accounts[0])
        if not result or "access_token" not in result:
            log.info("silent token failed: %s", (result or {}).get("error", "no token"))
            raise SignInExpired((result or {}).get("error", "no token"))
        return result["access_token"], cache.serialize() if cache.has_state_changed else None

    def end_session_url(self, post_logout_redirect_uri: str) -> str:
        return f"{self._entra.authority}/oauth2/v2.0/logout?" + urlencode({"post_logout_redirect_uri": post_logout_redirect_uri})
