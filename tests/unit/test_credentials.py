"""ENTRA_CREDENTIAL picks the azure-identity credential; the emulator authority switches instance discovery off."""
import pytest
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

from auth.credentials import app_credential
from config.settings import EntraSettings

BASE = {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "client_id": "3f8a9b1c-2d4e-4f6a-8b0c-1d2e3f4a5b6c"}


@pytest.mark.parametrize(
    ("credential", "expected"),
    [("client_secret", ClientSecretCredential), ("managed_identity", ManagedIdentityCredential), ("default", DefaultAzureCredential)],
)
def test_setting_selects_the_credential(credential, expected):
    entra = EntraSettings(**BASE, credential=credential, client_secret="x" * 20, _env_file=None)
    assert isinstance(app_credential(entra), expected)


def test_emulator_authority_disables_instance_discovery():
    entra = EntraSettings(**BASE, client_secret="x" * 20, authority_host="https://localhost:8443", _env_file=None)
    credential = app_credential(entra)
    assert credential._instance_discovery is False  # would otherwise call login.microsoftonline.com


def test_microsoft_authority_keeps_instance_discovery():
    entra = EntraSettings(**BASE, client_secret="x" * 20, _env_file=None)
    assert app_credential(entra)._instance_discovery is not False
