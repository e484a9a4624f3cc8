"""`streamlit run app.py` as a child for tests over real HTTP: a free port, the emulators' environment, the network
guard (the app may reach 127.0.0.1 only), every wait bounded and the child stopped afterwards."""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

from localdev.stack import StackConfig, app_environment, streamlit_command, wait_healthy
from tests.processes import Child

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_app(emulators, tmp: Path, **settings: str):
    """`streamlit run app.py` on a free port with the stack's environment plus `settings`; yields its URL."""
    with socket.socket() as sock:  # a free port: bind 0 and let go
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    (tmp / "netguard.log").touch()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_"))}
    env.update(app_environment(emulators.config, emulators))
    env.update({"APP_DATA_DIR": str(tmp / "data"), "APP_PUBLIC_URL": url, **settings,
                "NETGUARD": "1", "NETGUARD_LOG": str(tmp / "netguard.log"),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "netguard"), str(ROOT)])})
    child = Child(streamlit_command(StackConfig(app_port=port)), cwd=ROOT, env=env, name="streamlit run app.py")
    try:
        assert wait_healthy(url, child.process, timeout=90), f"the app did not start:\n{child.output[-3000:]}"
        yield url
    finally:
        child.stop(timeout=20, check=False)
    assert (tmp / "netguard.log").read_text() == "", "the app tried to reach beyond 127.0.0.1"
