"""Crash safety: the app is killed with SIGKILL in the middle of a streamed answer and started again on the same data.
Every completed turn is intact, the interrupted one is absent (a turn is stored only once it has ended) and its message
is handed back with a notice (ui/failover.py), the sign-in survives (server-side sessions in SQL), and the SQLite store
passes its integrity check."""
from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, spki_pin
from tests.processes import Child

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sigkill_mid_answer_loses_no_completed_turn(tmp_path, secrets_audit):
    from playwright.sync_api import sync_playwright

    from localdev.engines import ScriptedEngine
    from localdev.stack import StackConfig, app_environment, start_emulators, streamlit_command, wait_healthy

    config = StackConfig(app_port=free_port(), entra_port=0, aoai_port=0, graph_port=0, data_dir=tmp_path / "data")
    emulators = start_emulators(config)
    emulators.aoai.engine = ScriptedEngine(time_to_first_token=0.05, tokens_per_second=60)
    env = {**os.environ, **app_environment(config, emulators)}

    def start_app() -> Child:
        app = Child(streamlit_command(config), env=env, capture=False, name="streamlit")
        if not wait_healthy(config.public_url, app.process):
            app.kill()
            pytest.fail("the app did not start")
        return app

    app = start_app()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                *CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(emulators.tls.cert_file)}"])
            page = browser.new_page()
            page.goto(config.public_url)
            page.get_by_text("Sign in with Microsoft").click()
            page.get_by_text("Signed in as").wait_for(timeout=30_000)
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("first question survives")
            box.press("Enter")
            page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)

            emulators.aoai.engine.tokens_per_second = 5  # a slow answer, to be killed in the middle
            box.fill("second question is interrupted")
            box.press("Enter")
            answer = page.locator('[data-testid="stChatMessage"]').nth(3)
            answer.wait_for(timeout=30_000)
            deadline = time.monotonic() + 30
            while len(answer.inner_text()) < 12:
                assert time.monotonic() < deadline, "the answer did not start streaming"
                time.sleep(0.05)
            app.stop(signal.SIGKILL, timeout=10)

            app = start_app()
            page.reload()
            page.get_by_text("Signed in as").wait_for(timeout=30_000)  # the session outlived the process
            page.get_by_test_id("stSidebar").get_by_role("button", name="first question survives").click()
            page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)
            messages = page.locator('[data-testid="stChatMessage"]')
            assert messages.count() == 2
            assert "first question survives" in messages.nth(0).inner_text()
            assert "second question is interrupted" not in messages.all_inner_texts()[0] + messages.all_inner_texts()[1]
            # Not stored, not lost: the restarted app says the answer was interrupted and hands the message back.
            page.get_by_text("stopped before the answer was finished").wait_for(timeout=30_000)
            assert page.get_by_test_id("stText").filter(has_text="second question").inner_text() == (
                "second question is interrupted")
            secrets_audit.texts.append(page.content())
            secrets_audit.secrets |= {c["value"] for c in page.context.cookies()}
            browser.close()
    finally:
        try:
            app.stop(signal.SIGTERM, timeout=20)
        finally:
            emulators.stop()
        secrets_audit.secrets |= emulators.entra.issued | {emulators.client_secret}

    for name in ("conversations.db", "sessions.db"):
        with sqlite3.connect(config.data_dir / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with sqlite3.connect(config.data_dir / "conversations.db") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (2,)
