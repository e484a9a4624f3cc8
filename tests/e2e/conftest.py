"""Start the local stack exactly as `make run` does (python -m localdev.stack) and drive Debian's chromium with Playwright."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.processes import Child

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium must not reach the internet either: no background services, and every name except loopback fails.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """`python -m localdev.stack` in a process group of its own; `output` fills with its lines as they come."""

    def __init__(self, child: Child, url: str, ports: dict[str, int], netguard_log: Path):
        self.child, self.url, self.ports, self.netguard_log = child, url, ports, netguard_log
        self.process, self.output = child.process, child.lines

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Ctrl-C, as a person would press it; returns the exit code. Fails (after killing the whole group) if the
        stack does not exit within `timeout` s or leaves a process of its group running."""
        return self.child.stop(sig, timeout)


def start_stack(tmp: Path, *, preexec_fn=None, timeout: float = 120.0, env: dict[str, str] | None = None) -> Stack:
    """Starts the stack as `make run` does, on free loopback ports with the scripted engine, and waits for "ready"."""
    netguard_dir = ROOT / "tests" / "netguard"
    ports = {"app": free_port(), "entra": free_port(), "aoai": free_port(), "graph": free_port()}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_", "LOCALDEV_"))},
        "LOCALDEV_APP_PORT": str(ports["app"]),
        "LOCALDEV_ENTRA_PORT": str(ports["entra"]),
        "LOCALDEV_AOAI_PORT": str(ports["aoai"]),
        "LOCALDEV_GRAPH_PORT": str(ports["graph"]),
        "LOCALDEV_TOKENS_PER_SECOND": "15",
        "LOCALDEV_ENGINE": "scripted",  # deterministic answers for the browser checks
        "APP_DATA_DIR": str(tmp / "data"),
        "NETGUARD": "1",
        "NETGUARD_LOG": str(tmp / "netguard.log"),
        "PYTHONPATH": os.pathsep.join([str(netguard_dir), str(ROOT)]),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),  # e.g. LOCALDEV_API_VERSION=v1
    }
    (tmp / "netguard.log").touch()
    child = Child([sys.executable, "-m", "localdev.stack"], cwd=ROOT, env=env, preexec_fn=preexec_fn,
                  name="python -m localdev.stack")
    url = child.wait_for_line(r"ready: open (http://\S+)", timeout).group(1)
    running = Stack(child, url, ports, tmp / "netguard.log")
    running.server_cert = tmp / "data" / "localdev" / "tls" / "server.pem"
    return running


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    running = start_stack(tmp_path_factory.mktemp("e2e"))
    yield running
    running.stop()


def spki_pin(cert_file: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a certificate, the form chromium's SPKI allow-list takes."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextmanager
def chromium_for(stack: Stack):
    """Debian's chromium trusting exactly this stack's emulator certificate (the local CA is not in chromium's store);
    nothing else is relaxed."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(stack.server_cert)}"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def browser(stack):
    with chromium_for(stack) as chromium:
        yield chromium


def idle(page) -> None:
    """Until Streamlit says this page's script run has ended (a widget clicked mid-run can be redrawn under us)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=30_000)


def choose(page, label: str, option: str, attempts: int = 3) -> None:
    """Pick `option` (a regular expression) in the sidebar select box `label`, again if a rerun closed the list before
    the click landed."""
    box = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text=label)
    for attempt in range(attempts):
        idle(page)
        box.click()
        try:
            page.get_by_role("option", name=re.compile(option)).click(timeout=5_000)
        except Exception:  # noqa: BLE001 - the list closed under a rerun: try once more
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
            continue
        idle(page)
        return


class SecretsAudit:
    """Collects what the browser tests saw (page HTML, process output) and every secret value they know of; at the end
    of the session nothing secret may appear in any of it, nor in any log or audit file the runs wrote."""

    JWT = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.secrets: set[str] = set()
        self.folders: list[Path] = []

    def findings(self, base: Path) -> list[str]:
        texts = list(self.texts)
        for folder in [base, *self.folders]:
            for path in folder.rglob("*"):
                if path.is_file() and (path.suffix in {".log", ".jsonl"} or path.name == "output.txt"):
                    texts.append(path.read_text(errors="replace"))
        everything = "\n".join(texts)
        found = [f"secret {s[:8]}…" for s in self.secrets if s and len(s) >= 8 and s in everything]
        found += [f"JWT {m[:12]}…" for m in self.JWT.findall(everything)]
        return found


@pytest.fixture(scope="session")
def secrets_audit(tmp_path_factory):
    audit = SecretsAudit()
    yield audit
    findings = audit.findings(tmp_path_factory.getbasetemp())
    assert not findings, f"secret values in page HTML, output, logs or audit files: {findings[:5]}"
