"""The `user_security_context` Azure OpenAI receives with every call (for Microsoft Defender for Cloud)."""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SecurityContext:
    """Who is behind a model call. Fields left as None are not sent."""

    application_name: str
    end_user_id: str | None = None
    end_user_tenant_id: str | None = None
    source_ip: str | None = None

    def as_payload(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value}


LOOPBACK = "127.0.0.1"  # what a socket peer on this host is reported as (Streamlit reports it as None)


def client_ip(peer_ip: str | None, forwarded_for: str | None, trusted_proxies: frozenset[str] = frozenset()) -> str | None:
    """The person's IP. When the socket peer is a trusted proxy, X-Forwarded-For is read from the right: each proxy
    appends the address it got the request from, so the first address (from the right) that is not a trusted proxy is
    the person; anything left of it was written by the client and may be forged. Else the socket peer itself.
    `trusted_proxies` holds addresses or networks (CIDR)."""
    peer = _normalise(peer_ip)
    if not peer or not forwarded_for or not _trusted(peer, trusted_proxies):
        return peer
    person = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _normalise(hop)
        if address is None:  # a hop nobody could have written but the client: stop at the last address we trust
            return person
        person = address
        if not _trusted(address, trusted_proxies):
            return address
    return person  # every hop is a trusted proxy: the leftmost is as close to the person as it gets


def _trusted(address: str, trusted_proxies: frozenset[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies)


def _normalise(value: str | None) -> str | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # A proxy on the dual-stack socket appears as ::ffff:127.0.0.1; report the IPv4 form.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)
