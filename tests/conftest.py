"""Shared fixtures: no test may reach beyond 127.0.0.1, and tiktoken reads its files from the local cache."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
sys.path.insert(0, str(NETGUARD_DIR))

import netguard  # noqa: E402 - found through the sys.path entry just above

netguard.install()
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))
# Tests run against the local tenant's catalog (reasoning and classic deployments), as `make run` does.
os.environ.setdefault("AZURE_OPENAI_CATALOG_FILE", str(ROOT / "localdev" / "deployments.toml"))
# Tracing to LangSmith would leave the machine; make sure nothing turns it on.
for variable in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING"):
    os.environ.pop(variable, None)


@pytest.fixture(autouse=True)
def no_network_beyond_loopback():
    """Fails the test if it (or anything it called in this process) tried to reach a non-loopback host."""
    before = len(netguard.violations)
    yield
    new = netguard.violations[before:]
    if new:
        pytest.fail(f"test tried to reach the network beyond 127.0.0.1: {new}")


@pytest.fixture
def guarded_child_env(tmp_path) -> dict[str, str]:
    """Environment for child processes: the same guard, with violations written to a file the test can read."""
    log = tmp_path / "netguard.log"
    log.touch()
    path = os.pathsep.join(filter(None, [str(NETGUARD_DIR), str(ROOT), os.environ.get("PYTHONPATH")]))
    return {"NETGUARD": "1", "NETGUARD_LOG": str(log), "PYTHONPATH": path}
