"""A real nginx (Debian's package) in front of app replicas, with the configuration docs/deployment.md gives people.

The documented configuration is read from the guide itself (its ```nginx block), so a test of this proxy is a test of
the guide. Only what cannot be the same here is changed: the replicas' addresses, the listening address (plain HTTP on
a free loopback port instead of 443 with a certificate), and `proxy_bind` so the proxy reaches the replicas from
127.0.0.2 as a front end on another host would (a peer that is not 127.0.0.1). nginx runs in the foreground as a
child of the test, with its files in a temporary folder, and every wait has a time limit.
"""
from __future__ import annotations

import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.processes import Child

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "deployment.md"
PROXY_ADDRESS = "127.0.0.2"  # where the proxy connects to the replicas from


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def documented_config() -> str:
    """The nginx configuration of docs/deployment.md, as written there."""
    found = re.search(r"```nginx\n(.*?)```", GUIDE.read_text(), re.S)
    assert found, "docs/deployment.md has no ```nginx block"
    return found.group(1)


def proxy_config(upstreams: list[int], port: int, folder: Path, *, bind: str | None = PROXY_ADDRESS) -> str:
    """The documented configuration, pointed at replicas on 127.0.0.1:<upstreams> (in place of the guide's first ones)
    and listening on 127.0.0.1:<port>, inside the few lines nginx needs to run as a foreground child with its files in
    `folder`."""
    documented = documented_config()
    servers = re.findall(r"^\s*server ([\w.-]+:\d+)", documented, re.M)
    assert 1 <= len(upstreams) <= len(servers), f"the guide lists {len(servers)} replicas; asked for {len(upstreams)}"
    for address, upstream in zip(servers, upstreams):
        documented = documented.replace(f"server {address}", f"server 127.0.0.1:{upstream}", 1)
    for address in servers[len(upstreams):]:  # fewer replicas than the guide's (a one-replica baseline): drop the rest
        documented = re.sub(rf"^\s*server {re.escape(address)}.*$\n", "", documented, count=1, flags=re.M)
    documented, listens = re.subn(r"listen 443 ssl;", f"listen 127.0.0.1:{port};", documented)
    assert listens == 1, "the guide's server block should listen on 443 with TLS"
    documented = re.sub(r"^\s*ssl_certificate(_key)? .*$\n", "", documented, flags=re.M)  # plain HTTP here
    if bind:
        documented = documented.replace("proxy_pass http://chat;", f"proxy_pass http://chat;\n        proxy_bind {bind};")
    temp = {name: folder / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(parents=True, exist_ok=True)
    return "\n".join([
        "daemon off;", "master_process off;", f"pid {folder / 'nginx.pid'};", f"error_log {folder / 'error.log'} info;",
        "events { worker_connections 1024; }",
        "http {",
        "    log_format replicas '$remote_addr \"$request\" $status $upstream_addr';",
        f"    access_log {folder / 'access.log'} replicas;",
        *(f"    {name}_temp_path {path};" for name, path in temp.items()),
        documented,
        "}",
    ])


@contextmanager
def running_nginx(upstreams: list[int], *, port: int | None = None, bind: str | None = PROXY_ADDRESS,
                  timeout: float = 30.0):
    """Yields (url, folder) of nginx proxying to the replicas; stops it (and fails the test if it hangs) afterwards.
    `folder / "access.log"` has one line per request: client, request, status, the replica that served it."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("Debian's nginx package is not installed (make test installs it)")
    folder = Path(tempfile.mkdtemp(prefix="nginx-test-"))
    port = port or free_port()
    config = folder / "nginx.conf"
    config.write_text(proxy_config(upstreams, port, folder, bind=bind))
    child = Child([binary, "-c", str(config), "-p", str(folder), "-e", str(folder / "error.log")], cwd=folder,
                  name="nginx")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if child.process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "error.log").read_text() if (folder / "error.log").exists() else ""
                    child.fail(f"nginx did not start: {log[-2000:]}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", folder
    finally:
        child.stop(timeout=10, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
