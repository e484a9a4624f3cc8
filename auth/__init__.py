"""Identity: the app's own Entra credential, token providers for Azure OpenAI, and the per-call security context."""
