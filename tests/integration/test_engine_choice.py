"""`make run` uses the local model; when it cannot be loaded, the stack falls back to the scripted engine and the
page says so in a banner."""
from __future__ import annotations

from localdev.engines import ScriptedEngine
from localdev.stack import StackConfig, app_environment, start_emulators


def test_fallback_to_the_scripted_engine_with_a_banner(tmp_path, monkeypatch):
    monkeypatch.setattr("localdev.llama_engine.local_engine_available", lambda: "ModuleNotFoundError: llama_cpp")
    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=tmp_path, engine="local")
    emulators = start_emulators(config)
    try:
        assert isinstance(emulators.aoai.engine, ScriptedEngine)
        banner = app_environment(config, emulators)["APP_BANNER"]
        assert "could not be loaded" in banner and "llama_cpp" in banner
    finally:
        emulators.stop()


def test_tests_and_benchmarks_default_to_the_scripted_engine(tmp_path):
    assert StackConfig().engine == "scripted"
    assert StackConfig.from_environment().engine in ("local", "scripted")


def test_banner_is_shown_on_the_page(stack_env, monkeypatch):
    from tests.integration.apptest import open_page

    monkeypatch.setenv("APP_BANNER", "The local model could not be loaded")
    at = open_page()
    assert "The local model could not be loaded" in at.warning[0].value
