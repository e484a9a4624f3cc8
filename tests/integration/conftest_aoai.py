"""Fixtures for the Azure OpenAI emulator tests: a local CA, a test signing key whose JWKS a tiny HTTPS app serves,
and the emulator itself on a free port. Independent of the Entra ID emulator on purpose.

Import the fixtures into a test module: `from tests.integration.conftest_aoai import *  # noqa: F403`.
"""
from __future__ import annotations

import json
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from config.catalog import load_catalog
from localdev import LOCAL_CATALOG_FILE
from localdev.aoai import AUDIENCE, AzureOpenAIEmulator
from localdev.engines import ScriptedEngine
from localdev.server import RunningServer, start_in_thread
from localdev.tls import LocalTLS, ensure_local_tls

ROOT = Path(__file__).resolve().parents[2]
TIKTOKEN_CACHE = ROOT / ".cache" / "tiktoken"
TENANT_ID = "11111111-2222-4333-8444-555555555555"
ISSUER = f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"
APP_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
USER_OID = "99999999-8888-4777-8666-555555555555"
API_KEY = "local-test-api-key"
API_VERSION = "2024-10-21"


@dataclass
class Signer:
    """Signs access tokens with a test RSA key; `jwks` is what the JWKS endpoint publishes for it."""

    key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls, kid: str | None = None) -> "Signer":
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid or uuid.uuid4().hex)

    @property
    def jwks(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"aud": AUDIENCE, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + 3600, "oid": USER_OID,
                  "tid": TENANT_ID, "appid": APP_ID, "idtyp": "app", "roles": ["Chat.Use"]}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, **overrides) -> str:
        return jwt.encode(self.claims(**overrides), self.key, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class RunningEmulator:
    emulator: AzureOpenAIEmulator
    server: RunningServer
    tls: LocalTLS
    signer: Signer
    # Open keep-alive TLS connections hold up the server's shutdown, so every client made here is closed after the test.
    clients: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def sdk(self, token: str | None = None, **options) -> openai.AzureOpenAI:
        """An openai SDK client for the emulator with a valid (or the given) token and no retries."""
        token = token or self.signer.token()
        client = openai.AzureOpenAI(azure_endpoint=self.url, api_version=API_VERSION,
                                    azure_ad_token_provider=lambda: token, max_retries=0, **options)
        self.clients.append(client)
        return client

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca_file))


@pytest.fixture(scope="session")
def aoai_stack(tmp_path_factory) -> RunningEmulator:
    """JWKS server + emulator (catalog from localdev/deployments.toml, api-key enabled, issuer checked)."""
    tls = ensure_local_tls(tmp_path_factory.mktemp("aoai-tls"))
    signer = Signer.generate()
    jwks_app = Starlette(routes=[Route("/keys", lambda request: JSONResponse(signer.jwks))])
    jwks_server = start_in_thread(jwks_app, tls)
    emulator = AzureOpenAIEmulator(load_catalog(LOCAL_CATALOG_FILE), jwks_url=f"{jwks_server.url}/keys", ca_file=tls.ca_file,
                                   engine=ScriptedEngine(), issuer=ISSUER, api_key=API_KEY)
    server = start_in_thread(emulator.app, tls)
    yield RunningEmulator(emulator, server, tls, signer)
    server.stop()
    jwks_server.stop()


@pytest.fixture
def aoai(aoai_stack, monkeypatch) -> RunningEmulator:
    """The running emulator, reset (no faults, no recorded requests, instant engine), with clients trusting its CA."""
    for name, value in aoai_stack.tls.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
    emulator = aoai_stack.emulator
    emulator.clear_faults()
    emulator.requests.clear()
    emulator.engine = ScriptedEngine()
    yield aoai_stack
    emulator.clear_faults()
    while aoai_stack.clients:
        aoai_stack.clients.pop().close()


def raw_post(aoai: "RunningEmulator", body: dict, *, route: str, deployment: str, token: str | None = "default",
             headers: dict | None = None, query: str = f"?api-version={API_VERSION}") -> httpx.Response:
    """A raw HTTPS request (no SDK in between), for exact status codes, headers and bodies; `token="default"` is a
    valid one from the test signer, None sends none."""
    sent = dict(headers or {})
    if token == "default":
        token = aoai.signer.token()
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    with httpx.Client(verify=aoai.ssl_context(), timeout=10) as http:
        return http.post(f"{aoai.url}/openai/deployments/{deployment}/{route}{query}", json=body, headers=sent)
