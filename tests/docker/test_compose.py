"""compose.yaml's structure: the local stack's four services wired as documented, and no real secret in it."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_local_stack_services_and_wiring():
    services = COMPOSE["services"]
    assert {"app", "emulators", "postgres", "app-azure"} <= set(services)
    app = services["app"]
    assert app["depends_on"]["emulators"]["condition"] == "service_healthy"
    env = app["environment"]
    assert env["ENTRA_AUTHORITY_HOST"] == "https://localhost:8443" and env["AZURE_OPENAI_ENDPOINT"] == "https://localhost:8444"
    assert env["APP_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == "/shared/localdev/tls/ca.pem"
    assert (ROOT / services["emulators"]["build"]["dockerfile"]).exists()
    assert services["emulators"]["environment"]["LOCALDEV_APP_URL"] + "/signin/callback" == env["ENTRA_REDIRECT_URI"]


def test_azure_profile_takes_secrets_from_files():
    azure = COMPOSE["services"]["app-azure"]
    assert azure["profiles"] == ["azure"] and azure["environment"]["APP_SECRETS_DIR"] == "/run/secrets"
    assert set(azure["secrets"]) == {"ENTRA_CLIENT_SECRET", "APP_SESSION_SECRET"}
    assert all(spec["file"].startswith("./secrets/") for spec in COMPOSE["secrets"].values())
