"""The local stack's emulators, started in-process on free ports, and settings pointing the app at them."""
from __future__ import annotations

import os

import pytest

from config import load_settings
from localdev.stack import Emulators, StackConfig, app_environment, start_emulators


@pytest.fixture(scope="session")
def emulators(tmp_path_factory) -> Emulators:
    config = StackConfig(app_port=8080, entra_port=0, aoai_port=0, data_dir=tmp_path_factory.mktemp("stack"))
    running = start_emulators(config)
    running.config = config
    yield running
    running.stop()


@pytest.fixture
def stack_env(emulators, monkeypatch, tmp_path) -> dict[str, str]:
    """The exact environment `make run` gives the app, applied to this test process."""
    for name in list(os.environ):
        if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_")):
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
