"""`streamlit run app.py` (the container's entry and `make run`'s) upgrades its databases before it serves, and refuses
to start against a database newer than itself, with the reason on stderr and exit status 2."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import text

from config.database import database_engine
from config.migrations import current, head, upgrade
from localdev.stack import StackConfig, streamlit_command, wait_healthy
from tests.processes import Child
from tests.unit.test_migrations import FUTURE, set_revision

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def app_environment(data: Path, port: int, guard_env: dict) -> dict[str, str]:
    """Settings that pass validation; nothing here is reached before the page is opened (no emulators needed)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_"))}
    return {**env, **guard_env, "APP_DATA_DIR": str(data), "APP_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "APP_SESSION_SECRET": "a-test-session-secret-of-at-least-32-chars",
            "ENTRA_TENANT_ID": "11111111-1111-1111-1111-111111111111",
            "ENTRA_CLIENT_ID": "22222222-2222-2222-2222-222222222222", "ENTRA_CLIENT_SECRET": "not-a-real-secret",
            "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_app_upgrades_a_database_made_before_migrations_before_it_serves(tmp_path, guarded_child_env):
    data = tmp_path / "data"
    conversations = database_engine(None, data, "conversations.db")
    upgrade(conversations, "conversations", to="0001_baseline")
    with conversations.begin() as connection:  # as create_all of the last release left it: no revision recorded
        connection.execute(text("DROP TABLE alembic_version_conversations"))
    port = _free_port()
    env = app_environment(data, port, guarded_child_env)
    with Child(streamlit_command(StackConfig(app_port=port)), cwd=ROOT, env=env, name="streamlit run app.py") as app:
        assert wait_healthy(f"http://127.0.0.1:{port}", app.process, timeout=90), app.output[-3000:]
        assert current(conversations, "conversations") == head("conversations")
        assert current(database_engine(None, data, "sessions.db"), "sessions") == head("sessions")
        app.wait_for_line(r"conversations database \(sqlite .*conversations\.db\) made before migrations: brought to "
                          rf"the baseline and upgraded to {head('conversations')}", timeout=10)
        app.stop(timeout=20, check=False)
    assert (tmp_path / "netguard.log").read_text() == ""


def test_the_app_refuses_to_start_against_a_newer_database(tmp_path, guarded_child_env):
    data = tmp_path / "data"
    sessions = database_engine(None, data, "sessions.db")
    upgrade(sessions, "sessions")
    set_revision(sessions, "sessions", FUTURE)
    port = _free_port()
    env = app_environment(data, port, guarded_child_env)
    with Child(streamlit_command(StackConfig(app_port=port)), cwd=ROOT, env=env, name="streamlit run app.py") as app:
        app.wait_for_line(rf"The sessions database \(sqlite .*sessions\.db\) has schema revision {FUTURE}, which this "
                          rf"version of the app does not know: its newest is {head('sessions')}\. The database "
                          r"schema is newer than this app", timeout=90)
        assert app.stop(None, timeout=30) == 2
    assert current(sessions, "sessions") == FUTURE
