"""The emulators' container entry point (compose.yaml's `emulators` service), run as a process on free ports."""
from __future__ import annotations

import os
import signal
import ssl
import sys
from pathlib import Path

import httpx
import msal

from localdev.stack import CLIENT_ID, TENANT_ID
from tests.e2e.conftest import free_port
from tests.processes import Child, run

ROOT = Path(__file__).resolve().parents[2]


def test_emulators_serve_the_shared_ca_and_the_configured_app_secret(tmp_path, monkeypatch):
    entra, aoai, graph = free_port(), free_port(), free_port()
    env = {**os.environ, "LOCALDEV_CLIENT_SECRET": "compose-test-secret-value", "LOCALDEV_SHARED_DIR": str(tmp_path),
           "LOCALDEV_ENTRA_PORT": str(entra), "LOCALDEV_AOAI_PORT": str(aoai), "LOCALDEV_GRAPH_PORT": str(graph)}
    process = Child([sys.executable, "-m", "localdev.emulators_main"], cwd=ROOT, env=env)
    try:
        process.wait_for_line(r"\S", timeout=60)
        assert "[emulators] Entra ID" in process.lines[0]
        ca = tmp_path / "localdev" / "tls" / "ca.pem"
        context = ssl.create_default_context(cafile=str(ca))
        discovery = httpx.get(f"https://localhost:{entra}/{TENANT_ID}/v2.0/.well-known/openid-configuration",
                              verify=context).json()
        assert discovery["token_endpoint"].startswith(f"https://localhost:{entra}/")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))  # as compose.yaml sets it for the app container
        app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential="compose-test-secret-value",
                                                 authority=f"https://localhost:{entra}/{TENANT_ID}",
                                                 instance_discovery=False)
        assert "access_token" in app.acquire_token_for_client(["https://cognitiveservices.azure.com/.default"])
        unauthorized = httpx.post(f"https://localhost:{aoai}/openai/deployments/gpt-4o/chat/completions"
                                  "?api-version=2024-10-21", json={"messages": []}, verify=context)
        assert unauthorized.status_code == 401
        graph_token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
        me = httpx.get(f"https://localhost:{graph}/v1.0/me", headers={"authorization": f"Bearer {graph_token}"},
                       verify=context)  # the Graph emulator verified the token against this Entra's keys
        assert me.status_code == 401 and "scp or roles" in me.json()["error"]["message"]  # no Graph app permissions
        assert httpx.get(f"https://localhost:{graph}/v1.0/me", verify=context).json()["error"]["message"] == (
            "Access token is empty.")
    finally:
        returncode = process.stop(signal.SIGTERM, timeout=15)
    assert returncode == 0 and "stopped." in process.output


def test_a_missing_secret_stops_with_a_clear_message(tmp_path):
    done = run([sys.executable, "-m", "localdev.emulators_main"], cwd=ROOT, capture_output=True, text=True,
               env={**os.environ, "LOCALDEV_CLIENT_SECRET": "", "LOCALDEV_SHARED_DIR": str(tmp_path)}, timeout=60)
    assert done.returncode == 2 and "LOCALDEV_CLIENT_SECRET is missing" in done.stderr
