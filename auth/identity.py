"""Who signed in: the id_token validated by the app itself (msal only base64-decodes it, see msal#911)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass

import jwt

from config.settings import EntraSettings

# Clock skew tolerated on exp/nbf/iat: small, as tokens live an hour.
LEEWAY_SECONDS = 120


class SignInRejected(Exception):
    """The sign-in cannot be trusted. The message is safe to show and to log (no token content)."""


@dataclass(frozen=True)
class Identity:
    """The signed-in person, from a validated id_token."""

    oid: str
    tenant_id: str
    name: str
    username: str
    roles: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name or self.username or self.oid


# With APP_AUTH_DISABLED (local experiments only) everyone is this one person, in this one "session": the page's
# ui.session.LOCAL_EXPERIMENT and the file routes (web/files.py, which must not import Streamlit) both mean it.
LOCAL_EXPERIMENT_SESSION_ID = "local-experiment"
LOCAL_EXPERIMENT_IDENTITY = Identity(oid="00000000-0000-0000-0000-000000000000",
                                     tenant_id="00000000-0000-0000-0000-000000000000", name="Local experiment",
                                     username="not signed in")


class IdTokenValidator:
    """RS256 signature via the tenant's JWKS, issuer, audience, exp/nbf with small skew, tid in the allowed tenants."""

    def __init__(self, entra: EntraSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._entra = entra
        # The default context honours SSL_CERT_FILE, which is how the local stack trusts its emulator CA.
        self._jwks = jwt.PyJWKClient(f"{entra.authority}/discovery/v2.0/keys", cache_keys=True,
                                     ssl_context=ssl_context or ssl.create_default_context(), timeout=10)

    def validate(self, id_token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") != "RS256":
                raise SignInRejected("the sign-in token is not signed with RS256")
            key = self._jwks.get_signing_key_from_jwt(id_token)
            unverified_tid = jwt.decode(id_token, options={"verify_signature": False}).get("tid")
            if unverified_tid not in self._entra.allowed_tenants:
                raise SignInRejected("accounts from this organisation (tenant) are not allowed to use this app")
            claims = jwt.decode(
                id_token, key.key, algorithms=["RS256"], audience=self._entra.client_id,
                issuer=f"{self._entra.authority_host}/{unverified_tid}/v2.0", leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "oid", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignInRejected("the sign-in token has expired; sign in again") from None
        except jwt.InvalidSignatureError:
            raise SignInRejected("the sign-in token's signature is not valid") from None
        except jwt.InvalidAudienceError:
            raise SignInRejected("the sign-in token was issued to another application") from None
        except jwt.InvalidIssuerError:
            raise SignInRejected("the sign-in token comes from an unexpected issuer") from None
        except jwt.PyJWKClientError:
            raise SignInRejected("the sign-in token's signing key is unknown to the tenant") from None
        except jwt.PyJWTError as exc:
            raise SignInRejected(f"the sign-in token is not valid ({type(exc).__name__})") from None
        roles = claims.get("roles") or []
        identity = Identity(oid=claims["oid"], tenant_id=claims["tid"], name=claims.get("name", ""),
                            username=claims.get("preferred_username") or claims.get("upn", ""),
                            roles=tuple(r for r in roles if isinstance(r, str)))
        required = self._entra.required_role
        if required and required not in identity.roles:
            raise SignInRejected(f"{identity.display_name} is signed in but does not have the '{required}' role this "
                                 "app requires; ask an administrator to assign it")
        return identity
