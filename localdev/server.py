"""Run an ASGI app with uvicorn over TLS on 127.0.0.1, in a background thread (tests) or in the foreground."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn

from localdev.tls import LocalTLS


def bind_socket(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket bound before the server starts, so port 0 gives a free port with no race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class RunningServer:
    """A uvicorn server started in a daemon thread; `url` is its https base URL."""

    server: uvicorn.Server
    sock: socket.socket
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        # Idle keep-alive connections (msal, httpx pools) would hold shutdown for the graceful timeout; nothing is lost
        # by not waiting: requests in flight at stop time are abandoned anyway.
        self.server.force_exit = True
        self.thread.join(timeout)
        self.sock.close()


def make_server(app, tls: LocalTLS, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def start_in_thread(app, tls: LocalTLS, *, port: int = 0, log_level: str = "warning") -> RunningServer:
    """Start `app` on https://localhost:<port> in a daemon thread and wait until it accepts connections."""
    sock = bind_socket(port)
    server = make_server(app, tls, log_level=log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("emulator server did not start")
        time.sleep(0.01)
    return RunningServer(server=server, sock=sock, thread=thread)
