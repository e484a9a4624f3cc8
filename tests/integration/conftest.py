"""The local stack's emulators, started in-process on free ports, and settings pointing the app at them."""
from __future__ import annotations

import logging
import os

import pytest

from config import load_settings
from config.logs import configure_logging
from localdev.entra import Knobs
from localdev.stack import Emulators, StackConfig, app_environment, start_emulators
from tests.integration.signin import sign_in


@pytest.fixture
def signed_in(settings, emulators, monkeypatch):
    """A real sign-in through the routes and the emulator; the page then finds its session cookie.
    (AppTest cannot send cookies, so the cookie reader is the one seam replaced.)"""
    emulators.entra.knobs = Knobs()
    trip = sign_in(settings, emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: trip.session_id)
    yield trip
    emulators.entra.knobs = Knobs()


# Loggers of the stand-ins for a browser in tests (TestClient, httpx to /authorize): they show URLs as an address bar would.
BROWSER_STAND_INS = ("httpx", "httpcore")


@pytest.fixture(scope="session")
def emulators(tmp_path_factory) -> Emulators:
    config = StackConfig(app_port=8080, entra_port=0, aoai_port=0, graph_port=0, data_dir=tmp_path_factory.mktemp("stack"))
    running = start_emulators(config)
    running.config = config
    yield running
    running.stop()


@pytest.fixture
def stack_env(emulators, monkeypatch, tmp_path) -> dict[str, str]:
    """The exact environment `make run` gives the app, applied to this test process."""
    for name in list(os.environ):
        if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
            monkeypatch.delenv(name)
    env = app_environment(emulators.config, emulators)
    env["APP_DATA_DIR"] = str(tmp_path / "data")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    emulators.aoai.clear_faults()
    emulators.aoai.requests.clear()
    return env


@pytest.fixture
def settings(stack_env):
    return load_settings()


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((record.name, self.format(record)))
        except Exception:  # a record that cannot be formatted is still not a leak
            pass


@pytest.fixture(scope="session", autouse=True)
def no_secret_reaches_any_log(emulators, tmp_path_factory):
    """After every integration test: no code, token, client secret or session secret in any log line or log file."""
    collector = _Collector()
    configure_logging("DEBUG")  # as an operator chasing a problem would run it
    logging.getLogger().addHandler(collector)
    yield
    logging.getLogger().removeHandler(collector)
    texts = ["\n".join(line for name, line in collector.lines if not name.startswith(BROWSER_STAND_INS))]
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        if path.is_file() and path.suffix in {".log", ".jsonl"}:
            texts.append(path.read_text(errors="replace"))
    everything = "\n".join(texts)
    secrets_ = set(emulators.entra.issued) | {emulators.client_secret}
    secrets_ |= {p.read_text().strip() for p in emulators.config.data_dir.rglob("session-secret")}
    leaked = [s[:12] + "…" for s in secrets_ if s and s in everything]
    assert not leaked, f"{len(leaked)} secret value(s) found in logs: {leaked[:5]}"
