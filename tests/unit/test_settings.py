"""Settings: every missing or invalid variable is named in one clear message; .env and secret files are read."""
import os
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from tests.processes import run

ROOT = Path(__file__).resolve().parents[2]
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "3f8a9b1c-2d4e-4f6a-8b0c-1d2e3f4a5b6c"
VALID = {
    "ENTRA_TENANT_ID": TENANT,
    "ENTRA_CLIENT_ID": CLIENT,
    "ENTRA_CLIENT_SECRET": "not-a-real-secret-value",
    "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com",
    "APP_SESSION_SECRET": "a-test-session-secret-of-at-least-32-chars",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _set(monkeypatch, **values):
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_valid_environment_loads_with_defaults(monkeypatch):
    _set(monkeypatch, **VALID)
    settings = load_settings()
    assert settings.entra.allowed_tenants == [TENANT]
    assert settings.entra.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.entra.is_microsoft_cloud
    assert settings.azure_openai.api_version == "2024-10-21"
    assert settings.app.log_level == "INFO"
    assert {"gpt-5-mini", "gpt-5.1", "gpt-5.4-nano"} <= set(settings.catalog.names)  # the product catalog: current models


def test_every_missing_variable_is_named_in_one_message():
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    for variable in ("ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "AZURE_OPENAI_ENDPOINT"):
        assert f"{variable} is missing" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ENTRA_TENANT_ID", "contoso.onmicrosoft.com", "a GUID"),
        ("AZURE_OPENAI_ENDPOINT", "http://contoso.openai.azure.com", "https://"),
        ("AZURE_OPENAI_ENDPOINT", "contoso", "https://"),
        ("APP_LOG_LEVEL", "chatty", "DEBUG, INFO, WARNING, ERROR"),
        ("AZURE_OPENAI_TIMEOUT_SECONDS", "-1", "between 0 and 600"),
        ("ENTRA_ALLOWED_TENANTS", f"{TENANT},not-a-guid", "not a GUID: not-a-guid"),
        ("ENTRA_CREDENTIAL", "password", "client_secret, managed_identity, default"),
    ],
)
def test_invalid_value_names_the_variable_and_what_is_expected(monkeypatch, variable, value, expected):
    _set(monkeypatch, **{**VALID, variable: value})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{variable} is invalid" in message and expected in message


@pytest.mark.parametrize("credential", ["client_secret", "managed_identity"])
def test_client_secret_is_required_for_sign_in_whatever_the_app_credential(monkeypatch, credential):
    _set(monkeypatch, **{k: v for k, v in VALID.items() if k != "ENTRA_CLIENT_SECRET"}, ENTRA_CREDENTIAL=credential)
    with pytest.raises(ConfigError, match="ENTRA_CLIENT_SECRET is missing"):
        load_settings()
    monkeypatch.setenv("ENTRA_CLIENT_SECRET", "x" * 30)
    assert load_settings().entra.credential == credential


def test_session_secret_is_required(monkeypatch):
    _set(monkeypatch, **{k: v for k, v in VALID.items() if k != "APP_SESSION_SECRET"})
    with pytest.raises(ConfigError, match="APP_SESSION_SECRET is missing"):
        load_settings()


def test_secret_values_never_appear_in_errors(monkeypatch):
    _set(monkeypatch, **{**VALID, "ENTRA_CLIENT_SECRET": "Sup3r~Secret.Value_123", "ENTRA_TENANT_ID": "oops"})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "Sup3r~Secret.Value_123" not in str(caught.value)
    monkeypatch.setenv("ENTRA_TENANT_ID", VALID["ENTRA_TENANT_ID"])
    assert "Sup3r~Secret.Value_123" not in repr(load_settings())


def test_dotenv_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("\n".join(f"{k}={v}" for k, v in VALID.items()) + "\nAPP_NAME=From dotenv\nAPP_LOG_LEVEL=debug\n")
    monkeypatch.setenv("APP_LOG_LEVEL", "WARNING")
    settings = load_settings()
    assert settings.app.name == "From dotenv"
    assert settings.app.log_level == "WARNING"
    assert settings.entra.client_secret.get_secret_value() == VALID["ENTRA_CLIENT_SECRET"]


def test_secret_files_are_read_from_the_secrets_directory(monkeypatch, tmp_path):
    _set(monkeypatch, **{k: v for k, v in VALID.items() if k != "ENTRA_CLIENT_SECRET"})
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "ENTRA_CLIENT_SECRET").write_text("from-a-mounted-secret")
    monkeypatch.setenv("APP_SECRETS_DIR", str(secrets_dir))
    assert load_settings().entra.client_secret.get_secret_value() == "from-a-mounted-secret"


def test_emulator_authority_is_not_a_microsoft_cloud(monkeypatch):
    _set(monkeypatch, **{**VALID, "ENTRA_AUTHORITY_HOST": "https://localhost:8443/"})
    entra = load_settings().entra
    assert entra.authority_host == "https://localhost:8443"
    assert not entra.is_microsoft_cloud


def test_bad_catalog_file_is_reported_with_its_path(monkeypatch, tmp_path):
    _set(monkeypatch, **{**VALID, "AZURE_OPENAI_CATALOG_FILE": str(tmp_path / "missing.toml")})
    with pytest.raises(ConfigError, match="missing.toml does not exist"):
        load_settings()


def test_app_start_up_with_bad_settings_prints_one_message_and_no_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_"))}
    env["AZURE_OPENAI_ENDPOINT"] = "http://insecure.example"
    result = run(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true", "--server.port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert "ENTRA_TENANT_ID is missing" in output
    assert "AZURE_OPENAI_ENDPOINT is invalid" in output
    assert "Traceback" not in output


def test_memory_keep_must_be_below_trigger(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in {**VALID, "APP_MEMORY_TRIGGER_MESSAGES": "7", "APP_MEMORY_KEEP_MESSAGES": "7"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "APP_MEMORY_KEEP_MESSAGES must be less than APP_MEMORY_TRIGGER_MESSAGES" in str(error.value)


def test_short_session_secret_and_bad_proxy_are_named_without_echoing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in {**VALID, "APP_SESSION_SECRET": "short-secret-value", "APP_TRUSTED_PROXIES": "10.0.0.1,proxy"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "APP_SESSION_SECRET is invalid" in message and "short-secret-value" not in message
    assert "APP_TRUSTED_PROXIES is invalid" in message


@pytest.mark.parametrize("name, value", [("APP_DEFAULT_TEMPERATURE", "2.5"), ("APP_DEFAULT_MAX_OUTPUT_TOKENS", "0"),
                                         ("APP_DEFAULT_MAX_OUTPUT_TOKENS", "-5")])
def test_out_of_range_response_defaults_stop_start_up_naming_the_variable(monkeypatch, name, value):
    _set(monkeypatch, **VALID, **{name: value})
    with pytest.raises(ConfigError, match=f"{name} is invalid"):
        load_settings()


def test_current_settings_are_shared_until_an_input_changes(monkeypatch, tmp_path):
    """A page rerun reuses the settings; a changed variable, .env, secret file or catalog applies on the next one."""
    from config import current_settings

    catalog = tmp_path / "catalog.toml"
    catalog.write_text((ROOT / "localdev" / "deployments.toml").read_text())
    _set(monkeypatch, **{k: v for k, v in VALID.items() if k != "ENTRA_CLIENT_SECRET"},
         AZURE_OPENAI_CATALOG_FILE=str(catalog))
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "ENTRA_CLIENT_SECRET").write_text("first-secret")
    monkeypatch.setenv("APP_SECRETS_DIR", str(secrets_dir))
    (tmp_path / ".env").write_text("APP_NAME=First name\n")
    first = current_settings()
    assert current_settings() is first and first.app.name == "First name"

    monkeypatch.setenv("APP_LOG_LEVEL", "WARNING")
    second = current_settings()
    assert second is not first and second.app.log_level == "WARNING"

    (tmp_path / ".env").write_text("APP_NAME=Second name, longer\n")
    third = current_settings()
    assert third.app.name == "Second name, longer"

    (secrets_dir / "ENTRA_CLIENT_SECRET").write_text("second-secret, longer")
    fourth = current_settings()
    assert fourth.entra.client_secret.get_secret_value() == "second-secret, longer"

    catalog.write_text(catalog.read_text().replace("gpt-4o-mini", "gpt-4o-mini-renamed"))
    fifth = current_settings()
    assert "gpt-4o-mini-renamed" in fifth.catalog.names
    assert current_settings() is fifth

    monkeypatch.setenv("APP_LOG_LEVEL", "shouting")  # a broken change is reported, never served from the cache
    with pytest.raises(ConfigError, match="APP_LOG_LEVEL"):
        current_settings()
