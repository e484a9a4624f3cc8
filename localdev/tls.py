"""Local certificate authority for the emulators: created once with trustme, kept in the data directory."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class LocalTLS:
    """Paths to the CA bundle clients must trust and to the server certificate and key the emulators serve."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_env(self) -> dict[str, str]:
        """Environment that makes requests (msal, azure-identity) and httpx (openai) trust the local CA."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_file), "SSL_CERT_FILE": str(self.ca_file)}


def ensure_local_tls(directory: str | os.PathLike[str]) -> LocalTLS:
    """Create the CA and a localhost server certificate on first use; reuse them afterwards."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key = folder / "server.pem", folder / "server-key.pem"
    if ca_cert.exists() and ca_key.exists():
        ca = trustme.CA.from_pem(ca_cert.read_bytes(), ca_key.read_bytes())
    else:
        ca = trustme.CA(organization_name="Local Entra chat dev CA")
        _write_private(ca_key, ca.private_key_pem.bytes())
        ca_cert.write_bytes(ca.cert_pem.bytes())
    if not (cert.exists() and key.exists()):
        leaf = ca.issue_cert(*SERVER_NAMES)
        cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        _write_private(key, leaf.private_key_pem.bytes())
    return LocalTLS(ca_file=ca_cert, cert_file=cert, key_file=key)


def _write_private(path: Path, data: bytes) -> None:
    # Keys are readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
