"""`make run`: start the Entra ID, Azure OpenAI and Microsoft Graph emulators and the Streamlit app; Ctrl-C stops all.

Everything listens on 127.0.0.1. The emulators run in this process; the app runs as a child process configured
only through environment variables, exactly as it would be against real Azure.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE, LOCAL_V1_CATALOG_FILE
from localdev.aoai import AzureOpenAIEmulator
from localdev.engines import ScriptedEngine
from localdev.entra import EntraEmulator, RegisteredClient, TestUser
from localdev.graph import GraphEmulator
from localdev.server import RunningServer, start_in_thread
from localdev.tls import LocalTLS, ensure_local_tls

ROOT = Path(__file__).resolve().parent.parent
# Identifiers of the emulated tenant, app registration and test person; they mean nothing outside this laptop.
TENANT_ID = "7d3b4c2a-5e6f-4a1b-9c8d-0e1f2a3b4c5d"
CLIENT_ID = "3f8a9b1c-2d4e-4f6a-8b0c-1d2e3f4a5b6c"
TEST_USER = TestUser(oid="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", name="Ada Lovelace", preferred_username="ada@contoso.example",
                     roles=("Chat.User", "Chat.Experimenter"))
# A second person, without app roles, for isolation and access checks (authorize signs in TEST_USER unless the
# emulator's default_user knob says otherwise).
OTHER_USER = TestUser(oid="4b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d", name="Grace Hopper", preferred_username="grace@contoso.example")


@dataclass
class StackConfig:
    app_port: int = 8080
    entra_port: int = 8443
    aoai_port: int = 8444
    graph_port: int = 8445
    data_dir: Path = ROOT / ".data"
    time_to_first_token: float = 0.25
    tokens_per_second: float = 40.0
    load_users: int = 0  # extra test people load-user-<n>@contoso.example, for load tests
    app_url: str | None = None  # the app's public URL when it is not http://127.0.0.1:<app_port> (containers)
    engine: str = "scripted"  # "local" (llama.cpp) for `make run`; tests and benchmarks stay deterministic
    api_version: str | None = None  # "v1": the app calls the v1 API (ChatOpenAI, the Responses API deployments)

    @classmethod
    def from_environment(cls) -> "StackConfig":
        env = os.environ
        return cls(
            app_port=int(env.get("LOCALDEV_APP_PORT", 8080)),
            entra_port=int(env.get("LOCALDEV_ENTRA_PORT", 8443)),
            aoai_port=int(env.get("LOCALDEV_AOAI_PORT", 8444)),
            graph_port=int(env.get("LOCALDEV_GRAPH_PORT", 8445)),
            data_dir=Path(env.get("APP_DATA_DIR", ROOT / ".data")).resolve(),
            time_to_first_token=float(env.get("LOCALDEV_TTFT_SECONDS", 0.25)),
            tokens_per_second=float(env.get("LOCALDEV_TOKENS_PER_SECOND", 40.0)),
            load_users=int(env.get("LOCALDEV_LOAD_USERS", 0)),
            engine=env.get("LOCALDEV_ENGINE", "local"),
            api_version=env.get("LOCALDEV_API_VERSION") or None,
        )

    @property
    def public_url(self) -> str:
        return self.app_url or f"http://127.0.0.1:{self.app_port}"


@dataclass
class Emulators:
    tls: LocalTLS
    entra: EntraEmulator
    aoai: AzureOpenAIEmulator
    entra_server: RunningServer
    aoai_server: RunningServer
    graph: GraphEmulator
    graph_server: RunningServer
    client_secret: str
    banner: str | None = None  # shown on the page when the local model could not be used

    def stop(self) -> None:
        self.graph_server.stop()
        self.aoai_server.stop()
        self.entra_server.stop()


def start_emulators(config: StackConfig, client_secret: str | None = None) -> Emulators:
    """The emulators over TLS with the local CA; the app registration gets a fresh random secret each start."""
    local = config.data_dir / "localdev"
    tls = ensure_local_tls(local / "tls")
    client_secret = client_secret or secrets.token_urlsafe(32)
    client = RegisteredClient(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        redirect_uris=[f"{config.public_url}/signin/callback"],
        post_logout_redirect_uris=[f"{config.public_url}/"],
    )
    people = [TEST_USER, OTHER_USER, *load_users(config.load_users)]
    entra = EntraEmulator(TENANT_ID, [client], people, key_file=local / "entra-signing-key.pem")
    entra_server = start_in_thread(entra.app, tls, port=config.entra_port)
    engine = ScriptedEngine(time_to_first_token=config.time_to_first_token, tokens_per_second=config.tokens_per_second)
    banner = None
    if config.engine == "local":
        from localdev.llama_engine import LlamaEngine, local_engine_available

        reason = local_engine_available()
        if reason is None:
            engine = LlamaEngine()  # the local model answers; the scripted engine stays for tests
        else:
            banner = ("The local model could not be loaded, so answers come from the scripted test engine "
                      f"(it repeats your message). Reason: {reason[:200]}")
    aoai = AzureOpenAIEmulator(
        load_catalog(LOCAL_V1_CATALOG_FILE),  # every deployment the local tenant has (the app may list fewer)
        jwks_url=f"{entra_server.url}/{TENANT_ID}/discovery/v2.0/keys",
        ca_file=tls.ca_file,
        engine=engine,
    )
    aoai_server = start_in_thread(aoai.app, tls, port=config.aoai_port)
    # Microsoft Graph for agent tools: the same people, tokens verified against the same tenant keys.
    graph = GraphEmulator(jwks_url=f"{entra_server.url}/{TENANT_ID}/discovery/v2.0/keys", ca_file=tls.ca_file,
                          users=people, authorization_uri=f"{entra_server.url}/{TENANT_ID}/oauth2/v2.0/authorize")
    try:
        graph_server = start_in_thread(graph.app, tls, port=config.graph_port)
    except BaseException:
        aoai_server.stop()
        entra_server.stop()
        raise
    return Emulators(tls, entra, aoai, entra_server, aoai_server, graph=graph, graph_server=graph_server,
                     client_secret=client_secret, banner=banner)


def load_users(count: int) -> list[TestUser]:
    return [TestUser(oid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"load-user-{n}")), name=f"Load User {n}",
                     preferred_username=f"load-user-{n}@contoso.example") for n in range(count)]


def local_session_secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def app_environment(config: StackConfig, emulators: Emulators) -> dict[str, str]:
    """The settings the app gets: the same variables a real Azure deployment sets, pointed at the emulators."""
    return {
        **emulators.tls.client_env(),
        "APP_DATA_DIR": str(config.data_dir),
        "APP_PUBLIC_URL": config.public_url,
        # Kept in the data directory so sign-ins survive a restart of `make run`; never printed.
        "APP_SESSION_SECRET": local_session_secret(config.data_dir / "localdev" / "session-secret"),
        "ENTRA_TENANT_ID": TENANT_ID,
        "ENTRA_CLIENT_ID": CLIENT_ID,
        "ENTRA_CLIENT_SECRET": emulators.client_secret,
        "ENTRA_CREDENTIAL": "client_secret",
        "ENTRA_AUTHORITY_HOST": emulators.entra_server.url,
        "ENTRA_REDIRECT_URI": f"{config.public_url}/signin/callback",
        "AZURE_OPENAI_ENDPOINT": emulators.aoai_server.url,
        "AZURE_OPENAI_CATALOG_FILE": str(LOCAL_V1_CATALOG_FILE if config.api_version == "v1" else LOCAL_CATALOG_FILE),
        **({"AZURE_OPENAI_API_VERSION": config.api_version} if config.api_version else {}),
        "GRAPH_ENDPOINT": emulators.graph_server.url,
        **({"APP_BANNER": emulators.banner} if emulators.banner else {}),
        "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken")),
    }


def streamlit_command(config: StackConfig) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", str(config.app_port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # People get no tracebacks (.streamlit/config.toml); on a developer's laptop the details help.
        "--client.showErrorDetails", "full",
    ]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


@dataclass
class Stopping:
    started: bool = False  # a plain flag: the signal handler must take no lock


def stop_on_signals() -> Stopping:
    """Ctrl-C (SIGINT) and SIGTERM raise KeyboardInterrupt once, whatever dispositions this process inherited: a
    background job (`make run &` in a script) starts with SIGINT ignored, and Python then installs no handler. Once
    stopping has started, later signals are ignored, so a second Ctrl-C cannot cut the cleanup short."""
    stopping = Stopping()

    def interrupt(signum, frame) -> None:
        if not stopping.started:
            stopping.started = True
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    return stopping


PR_SET_PDEATHSIG = 1


def dies_with_this_process():
    """A preexec_fn making Linux send the child SIGTERM when this process dies, however it dies (even SIGKILL), so the
    app is never left running alone; None where there is no prctl."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    except (OSError, AttributeError):
        return None
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sigterm)

    return preexec


def stop_app(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """terminate, then kill if it has not exited within `timeout` seconds; no wait is unbounded."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in the kernel; its parent-death signal is the last resort
            pass


def main() -> int:
    config = StackConfig.from_environment()
    # SIGTERM (e.g. from a test or a process manager) stops the stack the same way Ctrl-C does.
    stopping = stop_on_signals()
    say("starting the Entra ID, Azure OpenAI and Microsoft Graph emulators (TLS with a local CA)...")
    try:
        emulators = start_emulators(config)
    except OSError as exc:
        say(f"could not start the emulators: {exc}. Is another copy running? Set LOCALDEV_ENTRA_PORT / LOCALDEV_AOAI_PORT "
            "/ LOCALDEV_GRAPH_PORT.")
        return 1
    except KeyboardInterrupt:  # the emulators' threads are daemons: they end with this process
        say("stopping...")
        say("stopped.")
        return 0
    process = None
    try:
        say(f"Entra ID emulator: {emulators.entra_server.url}/{TENANT_ID}  ·  Azure OpenAI emulator: {emulators.aoai_server.url}"
            f"  ·  Microsoft Graph emulator: {emulators.graph_server.url}  ·  engine: {emulators.aoai.engine.name}")
        if emulators.banner:
            say(emulators.banner)
        say(f"starting the chat app on {config.public_url} ...")
        process = subprocess.Popen(streamlit_command(config), cwd=ROOT, env={**os.environ, **app_environment(config, emulators)},
                                   preexec_fn=dies_with_this_process())
        if not wait_healthy(config.public_url, process):
            say("the chat app did not start; see the messages above.")
            return process.poll() or 1
        say(f"ready: open {config.public_url}  (Ctrl-C stops everything)")
        return process.wait()
    except KeyboardInterrupt:
        say("stopping...")
        return 0
    finally:
        stopping.started = True
        if process is not None:
            stop_app(process)
        emulators.stop()
        say("stopped.")


if __name__ == "__main__":
    sys.exit(main())
