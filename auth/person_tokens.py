"""One signed-in person's tokens for the calls a turn makes: Azure OpenAI with the app's identity or the person's own
(on-behalf-of), and Microsoft Graph for agent tools. Nothing here touches the page: the page keeps one `PersonTokens`
per browser session and hands the engine its bound methods, so the engine never reaches back into Streamlit.
"""
from __future__ import annotations

import hashlib
import threading

from auth.credentials import GRAPH_SCOPE, TokenProvider, app_token_provider, on_behalf_of_token_provider
from auth.services import AuthServices
from auth.sessions import AuthSession
from config.settings import Settings

_APP_PROVIDERS: dict[str, TokenProvider] = {}
_APP_PROVIDERS_LOCK = threading.Lock()


def app_identity_provider(settings: Settings) -> TokenProvider:
    """The app's own identity for Azure OpenAI: the same for everyone, so one credential (and its token cache) serves
    every session of this process."""
    entra, scope = settings.entra, settings.azure_openai.scope
    key = f"{entra.authority}|{entra.client_id}|{entra.credential}|{scope}"
    with _APP_PROVIDERS_LOCK:
        if key not in _APP_PROVIDERS:
            _APP_PROVIDERS[key] = app_token_provider(entra, scope)
        return _APP_PROVIDERS[key]


class PersonTokens:
    """The tokens of the person signed in to one browser session (`session`)."""

    def __init__(self, settings: Settings, services: AuthServices | None, session: AuthSession) -> None:
        self.settings, self.services, self.session = settings, services, session
        self._on_behalf_of: dict[str, tuple[str, TokenProvider]] = {}  # scope → (the person's token's hash, provider)

    def azure_openai(self, mode: str) -> TokenProvider:
        """Check the sign-in is still good (silent refresh when needed), then pick the identity for Azure OpenAI
        (`mode` app or on_behalf_of). Raises SignInExpired when only a new sign-in can help."""
        if self.settings.app.auth_disabled:
            return app_identity_provider(self.settings)
        user_token = self._user_token()
        if mode == "app":
            return app_identity_provider(self.settings)
        return self._provider_for(user_token, self.settings.azure_openai.scope)

    def graph(self) -> TokenProvider:
        """The person's delegated Microsoft Graph token, on-behalf-of their sign-in, for agent tools."""
        return self._provider_for(self._user_token(), GRAPH_SCOPE)

    def _user_token(self) -> str:
        """The person's own access token for this app (silently refreshed); raises SignInExpired."""
        user_token, changed_cache = self.services.signin.user_access_token(self.session.token_cache)
        if changed_cache:
            self.services.sessions.save_token_cache(self.session.id, changed_cache)
            self.session.token_cache = changed_cache
        return user_token

    def _provider_for(self, user_token: str, scope: str) -> TokenProvider:
        """An on-behalf-of provider for `scope`, rebuilt when the person's own token changes."""
        fingerprint = hashlib.sha256(user_token.encode()).hexdigest()
        cached = self._on_behalf_of.get(scope)
        if not cached or cached[0] != fingerprint:
            cached = (fingerprint, on_behalf_of_token_provider(self.settings.entra, user_token, scope))
            self._on_behalf_of[scope] = cached
        return cached[1]
