"""Only the emulators, for a container (compose.yaml): Entra ID on LOCALDEV_ENTRA_PORT, Azure OpenAI on
LOCALDEV_AOAI_PORT, Microsoft Graph on LOCALDEV_GRAPH_PORT, TLS with the CA kept in LOCALDEV_SHARED_DIR (shared with
the app container, which trusts it).

The app registration's secret comes from LOCALDEV_CLIENT_SECRET so the app container can be given the same value;
LOCALDEV_APP_URL is the app's public URL (its redirect and post-logout URIs are registered for it).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from localdev.stack import StackConfig, start_emulators


def main() -> int:
    secret = os.environ.get("LOCALDEV_CLIENT_SECRET", "")
    if len(secret) < 16:
        print("LOCALDEV_CLIENT_SECRET is missing or shorter than 16 characters: set the emulated app registration's "
              "secret (the app gets the same value as ENTRA_CLIENT_SECRET).", file=sys.stderr)
        return 2
    shared = Path(os.environ.get("LOCALDEV_SHARED_DIR", "/shared"))
    config = StackConfig(
        app_port=int(os.environ.get("LOCALDEV_APP_PORT", 8080)),
        entra_port=int(os.environ.get("LOCALDEV_ENTRA_PORT", 8443)),
        aoai_port=int(os.environ.get("LOCALDEV_AOAI_PORT", 8444)),
        graph_port=int(os.environ.get("LOCALDEV_GRAPH_PORT", 8445)),
        data_dir=shared,
        app_url=os.environ.get("LOCALDEV_APP_URL", "http://localhost:8080"),
    )
    emulators = start_emulators(config, client_secret=secret)
    print(f"[emulators] Entra ID {emulators.entra_server.url} · Azure OpenAI {emulators.aoai_server.url} · "
          f"Microsoft Graph {emulators.graph_server.url} · CA {emulators.tls.ca_file}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    emulators.stop()
    print("[emulators] stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
