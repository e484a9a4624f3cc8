"""A throwaway Postgres on 127.0.0.1 for tests: Debian's server binaries, run as the `postgres` user (the server
refuses root), in a temporary directory on a free port. `make test` installs the package."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.processes import run as run_bounded


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_postgres():
    """Yields a SQLAlchemy URL of a fresh database; stops the server and removes its files afterwards."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("Debian's postgresql package is not installed (make test installs it)")
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        # pg_ctl -w gives up on its own after 60 s; the limit here also covers initdb and a stuck stop.
        run_bounded([*prefix, *command], timeout=120, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"})

    if as_root:
        shutil.chown(folder, "postgres")
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "server.log"), "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
        finally:
            shutil.rmtree(folder, ignore_errors=True)
