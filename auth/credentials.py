"""The app's own identity towards Azure OpenAI, built with azure-identity from settings."""
from __future__ import annotations

from typing import Callable

from azure.core.credentials import TokenCredential
from azure.identity import (
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    OnBehalfOfCredential,
    get_bearer_token_provider,
)

from config.settings import EntraSettings

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"  # AZURE_OPENAI_SCOPE's default
AI_AZURE_SCOPE = "https://ai.azure.com/.default"  # the newer docs' scope, accepted by the v1 API
GRAPH_SCOPE = "https://graph.microsoft.com/.default"  # the delegated Graph permissions consented to the app

TokenProvider = Callable[[], str]


def app_credential(entra: EntraSettings) -> TokenCredential:
    """The credential chosen by ENTRA_CREDENTIAL: client secret, managed identity, or DefaultAzureCredential."""
    # Outside Microsoft's clouds (the local emulator) instance discovery would call login.microsoftonline.com.
    authority = {"authority": entra.authority_host, "disable_instance_discovery": not entra.is_microsoft_cloud}
    if entra.credential == "client_secret":
        secret = entra.client_secret.get_secret_value() if entra.client_secret else ""
        return ClientSecretCredential(entra.tenant_id, entra.client_id, secret, **authority)
    if entra.credential == "managed_identity":
        return ManagedIdentityCredential(client_id=entra.managed_identity_client_id)
    return DefaultAzureCredential(managed_identity_client_id=entra.managed_identity_client_id, **authority)


def app_token_provider(entra: EntraSettings, scope: str = COGNITIVE_SERVICES_SCOPE) -> TokenProvider:
    """A callable returning a bearer token for Azure OpenAI (AZURE_OPENAI_SCOPE); azure-identity caches and refreshes
    it."""
    return get_bearer_token_provider(app_credential(entra), scope)


def on_behalf_of_token_provider(entra: EntraSettings, user_access_token: str,
                                scope: str = COGNITIVE_SERVICES_SCOPE) -> TokenProvider:
    """The person's own token for Azure OpenAI, exchanged on-behalf-of their sign-in. Build one per person and
    session; never share it (azure-identity binds the credential to that one person's assertion)."""
    credential = OnBehalfOfCredential(
        entra.tenant_id, entra.client_id,
        client_secret=entra.client_secret.get_secret_value() if entra.client_secret else None,
        user_assertion=user_access_token, authority=entra.authority_host,
        disable_instance_discovery=not entra.is_microsoft_cloud,
    )
    return get_bearer_token_provider(credential, scope)
