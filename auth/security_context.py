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


def client_ip(peer_ip: str | None, forwarded_for: str | None, trusted_proxies: frozenset[str] = frozenset()) -> str | None:
    """The person's IP: the first X-Forwarded-For hop only when the socket peer is a trusted proxy, else the peer."""
    peer = _normalise(peer_ip)
    if peer and peer in trusted_proxies and forwarded_for:
        first_hop = _normalise(forwarded_for.split(",")[0])
        if first_hop:
            return first_hop
    return peer


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
