"""What the browser benchmarks share: free ports, Debian's chromium with exactly the local certificates trusted, and
the whole local stack (`python -m localdev.stack`, as `make run` starts it) as a child process group that is always
stopped, with a time limit on every wait (or, for a benchmark that observes the emulators, the emulators in this process
and only the app as a child: InProcessStack); sign-in and "the script run has ended" in the page."""
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


class InProcessStack:
    """The emulators in this process and only the Streamlit app as a child, for a benchmark that must observe the
    emulators (`.emulators`: read their `requests`, swap `aoai.engine`) with this process's clock. Otherwise as
    LocalStack: scripted engine, free ports, the app in a process group of its own with every wait limited and the
    whole group stopped on `stop()` (also on leaving a `with` block). The app gets the settings `make run` gives it."""

    def __init__(self, data_dir: Path, *, time_to_first_token: float = 0.05, tokens_per_second: float = 200.0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.time_to_first_token, self.tokens_per_second = time_to_first_token, tokens_per_second
        self.extra_env = extra_env or {}
        self.url: str | None = None
        self.child = None
        self.emulators = None

    @property
    def server_cert(self) -> Path:
        return self.data_dir / "localdev" / "tls" / "server.pem"

    @property
    def output(self) -> list[str]:
        return self.child.lines if self.child else []

    def start(self, timeout: float = 120.0) -> "InProcessStack":
        import localdev.stack
        from localdev.stack import StackConfig, app_environment, start_emulators, streamlit_command
        from tests.processes import Child

        config = StackConfig(app_port=free_port(), entra_port=0, aoai_port=0, graph_port=0, data_dir=self.data_dir,
                             time_to_first_token=self.time_to_first_token, tokens_per_second=self.tokens_per_second,
                             engine="scripted")
        self.emulators = start_emulators(config)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_", "LOCALDEV_"))},
            **app_environment(config, self.emulators),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        dies_with_us = getattr(localdev.stack, "dies_with_this_process", lambda: None)()
        try:
            self.child = Child(streamlit_command(config), cwd=ROOT, env=env, preexec_fn=dies_with_us,
                               name=f"streamlit ({self.data_dir.name})")
            # Its health endpoint, as `make run` waits for it (bounded; False if the app exits meanwhile).
            if not localdev.stack.wait_healthy(config.public_url, self.child.process, timeout):
                self.child.fail(f"did not answer {config.public_url}/_stcore/health within {timeout:g} s")
        except BaseException:
            self.stop()
            raise
        self.url = config.public_url
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        code = None
        try:
            if self.child is not None:
                code = self.child.stop(signal.SIGTERM, timeout, check=False)  # the group is killed afterwards anyway
        finally:
            if self.emulators is not None:
                self.emulators.stop()
                self.emulators = None
        return code

    def __enter__(self) -> "InProcessStack":
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
