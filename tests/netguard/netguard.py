"""Blocks and records every attempt to reach a host other than loopback (tests must never touch the internet)."""
from __future__ import annotations

import ipaddress
import os
import socket

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
violations: list[str] = []
_installed = False


def is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host.lower() in LOOPBACK_NAMES or host == "":
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _is_ip_literal(host: str) -> bool:
    # Resolving a literal address makes no DNS query; the connect check decides about it.
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def _record(what: str) -> None:
    violations.append(what)
    log_file = os.environ.get("NETGUARD_LOG")
    if log_file:
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {what}\n")


def install() -> None:
    """Patch socket connect and name resolution; non-loopback attempts raise and are recorded."""
    global _installed
    if _installed:
        return
    _installed = True
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not is_loopback(address[0]):
            _record(f"connect {address[0]}:{address[1]}")
            raise ConnectionRefusedError(f"netguard: tests may not connect to {address[0]}")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_ip_literal(name) and not is_loopback(name):
            _record(f"resolve {name}")
            raise socket.gaierror(socket.EAI_NONAME, f"netguard: tests may not resolve {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
