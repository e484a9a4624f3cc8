"""Two app replicas on one Postgres: a person signed in through replica A keeps their session and their conversations
when the next page load lands on replica B (as behind a proxy that is not sticky across reloads)."""
from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, spki_pin
from tests.postgres import running_postgres, server_binaries
from tests.processes import Child

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed")]


def test_session_and_history_follow_the_person_across_replicas(tmp_path, secrets_audit):
    from playwright.sync_api import sync_playwright

    from localdev.stack import StackConfig, app_environment, start_emulators, streamlit_command, wait_healthy

    with running_postgres() as database_url:
        port_a, port_b = free_port(), free_port()
        config = StackConfig(app_port=port_a, entra_port=0, aoai_port=0, graph_port=0, data_dir=tmp_path / "emulators")
        emulators = start_emulators(config)
        env = {**os.environ, **app_environment(config, emulators), "APP_DATABASE_URL": database_url}
        replicas = []
        try:
            for port, name in ((port_a, "a"), (port_b, "b")):
                # Each replica has its own data directory: only Postgres is shared. Each is reached here at its own
                # address, which is then its public URL (the page's WebSocket must come from the app's own origin);
                # behind a proxy (test_proxy.py) both have the proxy's.
                replica_env = {**env, "APP_DATA_DIR": str(tmp_path / f"replica-{name}"),
                               "APP_PUBLIC_URL": f"http://127.0.0.1:{port}"}
                command = streamlit_command(StackConfig(app_port=port))
                replicas.append(Child(command, env=replica_env, capture=False, name=f"streamlit replica {name}"))
            for replica, port in zip(replicas, (port_a, port_b)):
                assert wait_healthy(f"http://127.0.0.1:{port}", replica.process), "a replica did not start"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    *CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(emulators.tls.cert_file)}"])
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port_a}")
                page.get_by_text("Sign in with Microsoft").click()
                page.get_by_text("Signed in as").wait_for(timeout=30_000)
                box = page.get_by_test_id("stChatInputTextArea")
                box.fill("asked on replica A")
                box.press("Enter")
                page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)

                page.goto(f"http://127.0.0.1:{port_b}")  # the same browser, the same cookie, the other replica
                page.get_by_text("Signed in as").wait_for(timeout=30_000)
                assert "Ada Lovelace" in page.get_by_test_id("stSidebar").inner_text()
                page.get_by_test_id("stSidebar").get_by_role("button", name="asked on replica A").click()
                page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)
                assert "asked on replica A" in page.locator('[data-testid="stChatMessage"]').nth(0).inner_text()
                secrets_audit.texts.append(page.content())
                secrets_audit.secrets |= {c["value"] for c in page.context.cookies()}
                browser.close()
        finally:
            for replica in replicas:
                replica.send_signal(signal.SIGTERM)
            for replica in replicas:
                replica.stop(None, timeout=20, check=False)  # killed (its whole group) if it is still running
            emulators.stop()
            secrets_audit.secrets |= emulators.entra.issued | {emulators.client_secret}
