"""What the browser benchmarks share: free ports, Debian's chromium with exactly the local certificates trusted, and
the whole local stack (`python -m localdev.stack`, as `make run` starts it) as a child process group that is always
stopped, with a time limit on every wait; sign-in and "the script run has ended" in the page."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium_available() -> bool:
    return bool(shutil.which("chromium")) or Path("/usr/bin/chromium").exists()


def chromium_options(*server_certs: Path) -> dict:
    """`playwright.chromium.launch(**chromium_options(cert, ...))`, sync or async: Debian's chromium, headless, no
    internet, trusting exactly these local servers' certificates (the local CA is not in chromium's store)."""
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, spki_pin

    pins = ",".join(spki_pin(cert) for cert in server_certs)
    return {"executable_path": CHROMIUM, "headless": True,
            "args": [*CHROMIUM_ARGS, *([f"--ignore-certificate-errors-spki-list={pins}"] if pins else [])]}


class LocalStack:
    """`python -m localdev.stack` (both emulators and the Streamlit app) as a child in a process group of its own
    (tests/processes.py's Child: output read by a thread, every wait limited, the whole group killed at the end).

    Started with the scripted engine on free ports; `stop()` (also on leaving a `with` block) presses Ctrl-C, then
    kills whatever is left of the group."""

    READY = r"ready: open (http://\S+)"

    def __init__(self, data_dir: Path, *, time_to_first_token: float = 0.05, tokens_per_second: float = 200.0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.url: str | None = None
        self.child = None
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_", "LOCALDEV_"))},
            "LOCALDEV_APP_PORT": str(free_port()),
            "LOCALDEV_ENTRA_PORT": str(free_port()),
            "LOCALDEV_AOAI_PORT": str(free_port()),
            "LOCALDEV_GRAPH_PORT": str(free_port()),
            "LOCALDEV_ENGINE": "scripted",  # deterministic answers, no local model
            "LOCALDEV_TTFT_SECONDS": str(time_to_first_token),
            "LOCALDEV_TOKENS_PER_SECOND": str(tokens_per_second),
            "APP_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
            "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken")),
            **(extra_env or {}),
        }

    @property
    def server_cert(self) -> Path:
        return self.data_dir / "localdev" / "tls" / "server.pem"

    @property
    def output(self) -> list[str]:
        return self.child.lines if self.child else []

    def start(self, timeout: float = 120.0) -> "LocalStack":
        import localdev.stack
        from tests.processes import Child

        # If this process dies without stopping it (SIGKILL), the stack gets SIGTERM and stops its app in turn.
        dies_with_us = getattr(localdev.stack, "dies_with_this_process", lambda: None)()
        self.child = Child([sys.executable, "-m", "localdev.stack"], cwd=ROOT, env=self.env, preexec_fn=dies_with_us,
                           name=f"python -m localdev.stack ({self.data_dir.name})")
        self.url = self.child.wait_for_line(self.READY, timeout).group(1)  # kills the group and raises on failure
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.child is None:
            return None
        return self.child.stop(signal.SIGINT, timeout, check=False)  # Ctrl-C; the group is killed afterwards anyway

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_idle(page, timeout_ms: float = 60_000) -> None:
    """Until Streamlit says the script run of this page has ended."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)


def sign_in(page, url: str, timeout_ms: float = 60_000) -> None:
    """Through the page's own "Sign in with Microsoft" link and the Entra ID emulator."""
    page.goto(url)
    page.get_by_text("Sign in with Microsoft").click(timeout=timeout_ms)
    page.get_by_text("Signed in as").wait_for(timeout=timeout_ms)
