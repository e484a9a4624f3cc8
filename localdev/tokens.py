"""Verifying Entra access tokens in the emulated resources (Azure OpenAI, Microsoft Graph), as the real ones do.

`TokenVerifier(jwks_url, ca_file, audience=...)` checks the RS256 signature against the tenant's JWKS (fetched over
HTTPS with the local CA, keys cached), the audience (one value or a list of accepted values), exp/nbf with a small
leeway, and the issuer when one is configured. `verify` raises jwt.PyJWTError (or a subclass) on any failure.
"""
from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

import jwt


class TokenVerifier:
    """Checks Entra access tokens for one resource. `verify(token)` returns the claims or raises jwt.PyJWTError."""

    def __init__(self, jwks_url: str, ca_file: Path | None, *, audience: str | Sequence[str],
                 issuer: str | None = None, leeway: float = 10.0) -> None:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        # cooldown 0: a signing key the Entra emulator rotates in is picked up at once, not 30 s later.
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, ssl_context=context, timeout=10, cooldown_duration=0)
        self.audience = audience if isinstance(audience, str) else list(audience)
        self.issuer, self.leeway = issuer, leeway

    def verify(self, token: str) -> dict:
        if jwt.get_unverified_header(token).get("alg") != "RS256":  # before any key lookup: no alg=none, no HS256
            raise jwt.InvalidAlgorithmError("only RS256 tokens are accepted")
        key = self._jwks.get_signing_key_from_jwt(token)
        return jwt.decode(token, key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer,
                          leeway=self.leeway, options={"require": ["exp", "aud"]})
