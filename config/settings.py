"""Settings by concern (app, Entra ID, Azure OpenAI), read from the environment, a .env file and secret files."""
from __future__ import annotations

import ipaddress
import os
import re
import threading
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.catalog import DEFAULT_CATALOG_FILE, Catalog, load_catalog
from config.errors import ConfigError

GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A CSP host source: an optional scheme, a host (or *.domain), an optional port.
FRAME_SOURCE = re.compile(r"^(?:https?://)?(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::(?:\d{1,5}|\*))?$|^https:$")
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn"}
)


def _https_url(value: str, *, allow_http_loopback: bool = False) -> str:
    """One shared check for every URL setting: absolute, https (http only for loopback where allowed), no trailing slash."""
    parts = urlsplit(str(value).strip())
    loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        raise ValueError("expected an absolute https:// URL")
    if parts.scheme == "http" and not (allow_http_loopback and loopback):
        raise ValueError("expected an https:// URL (http:// is accepted only for localhost)")
    return str(value).strip().rstrip("/")


def _comma_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value or [])


class _Section(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file_encoding="utf-8")


class AppSettings(_Section):
    """The application itself: its name (sent in the security context), where it keeps data, how much it logs."""

    model_config = SettingsConfigDict(env_prefix="APP_")

    name: str = Field("Entra Chat", min_length=1, max_length=64, description="a short application name")
    data_dir: Path = Field(Path(".data"), description="a writable directory for conversations, audit logs and keys")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="one of DEBUG, INFO, WARNING, ERROR")
    public_url: str = Field("http://localhost:8080", description="the URL people open, e.g. https://chat.contoso.com")
    session_secret: SecretStr | None = Field(None, description="a random secret of at least 32 characters that signs and "
                                             "encrypts sign-in state (required when sign-in is on)")
    session_hours: float = Field(8.0, gt=0, le=24 * 14, description="hours a sign-in lasts, e.g. 8")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated IP addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For is trusted, e.g. 127.0.0.1 for a proxy on the same host")
    database_url: SecretStr | None = Field(None, description="a SQLAlchemy URL such as postgresql+psycopg://user:pw@host/db "
                                           "(default: SQLite in the data directory)")
    audit_include_text: bool = Field(False, description="true to put message text in audit records (default false)")
    audit_stdout: bool = Field(False, description="true to also write audit records to stdout (containers)")
    memory_trigger_messages: int = Field(7, ge=2, le=200, description="summarise when the model would see this many "
                                         "messages, e.g. 7")
    memory_keep_messages: int = Field(3, ge=1, le=199, description="recent messages kept verbatim after summarising; "
                                      "less than APP_MEMORY_TRIGGER_MESSAGES")
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0, le=50 * 1024 * 1024, description="bytes per uploaded image, "
                                 "at most 52428800")
    max_document_bytes: int = Field(20 * 1024 * 1024, gt=0, le=200 * 1024 * 1024, description="bytes per attached "
                                    "document, at most 209715200")
    max_document_pages: int = Field(500, gt=0, le=5000, description="pages per PDF, e.g. 500")
    max_files_per_message: int = Field(10, ge=1, le=50, description="files (images and documents) one message may "
                                       "carry, e.g. 10")
    upload_in_flight_bytes: int = Field(100 * 1024 * 1024, ge=1024 * 1024, le=2 * 1024 * 1024 * 1024,
                                        description="bytes one person may be uploading at once (all their pages), "
                                        "e.g. 104857600")
    document_whole_max_tokens: int = Field(8000, ge=0, le=1_000_000, description="tokens up to which a document goes "
                                           "to the model whole with every question (when it fits the context); longer "
                                           "ones are indexed and searched, e.g. 8000")
    retrieved_passages: int = Field(5, ge=1, le=50, description="passages sent with each question from indexed "
                                    "documents, e.g. 5")
    passage_tokens: int = Field(300, ge=50, le=2000, description="tokens per passage of an indexed document, e.g. 300")
    embedding_batch_size: int = Field(16, ge=1, le=2048, description="passages per embeddings request, e.g. 16")
    document_read_seconds: int = Field(30, ge=1, le=600, description="seconds one file may take to read (a worker "
                                       "process, killed after this), e.g. 30")
    document_read_memory_mb: int = Field(1024, ge=128, le=16_384, description="memory one file's reading worker may "
                                         "use, in MB, e.g. 1024")
    document_workers: int = Field(2, ge=1, le=64, description="files read at once on this replica (worker processes; "
                                  "more wait their turn), e.g. 2")
    document_max_rows: int = Field(100_000, ge=100, le=10_000_000, description="rows per CSV file, e.g. 100000")
    index_confirm_tokens: int = Field(200_000, ge=0, le=1_000_000_000, description="embedding tokens above which a "
                                      "document is indexed only after the person agrees to the estimate; 0 to always "
                                      "ask, e.g. 200000")
    image_detail: Literal["auto", "low", "high"] = Field("auto", description="one of auto, low, high")
    default_max_output_tokens: int = Field(1000, gt=0, le=100_000, description="a whole number of tokens, e.g. 1000")
    default_temperature: float = Field(0.7, ge=0.0, le=2.0, description="a number from 0 to 2")
    summary_deployment: str | None = Field(None, description="the catalog deployment that writes conversation "
                                           "summaries (e.g. a cheaper one); default: the deployment of the turn")
    banner: str | None = Field(None, max_length=500, description="a notice shown at the top of the page")
    monthly_budget_usd: Decimal | None = Field(Decimal("50"), ge=0, description="dollars each person may spend per "
                                               "calendar month (UTC), e.g. 50; none for no limit")
    role_budgets: Annotated[dict[str, Decimal], NoDecode] = Field(
        default_factory=dict, description="comma-separated role=dollars budgets that replace the default for people "
        "holding the role, e.g. Chat.Power=200,Chat.Admin=1000")
    rate_limit_requests_per_minute: int = Field(60, ge=0, le=100_000, description="chat turns per person per minute, "
                                                "0 for no limit")
    rate_limit_tokens_per_minute: int = Field(1_000_000, ge=0, le=100_000_000, description="prompt plus answer-limit "
                                              "tokens per person per minute (as Azure counts them), 0 for no limit")
    signin_requests_per_minute: int = Field(20, ge=0, le=10_000, description="requests to the sign-in routes (/signin, "
                                            "/signin/callback, /signout) per client address per minute, counted by "
                                            "each replica; 0 for no limit")
    frame_ancestors: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["'none'"], description="who may show the app in a frame (CSP frame-ancestors), "
        "comma-separated: 'none' (the default), 'self', or https origins such as https://teams.microsoft.com")
    admin_role: str = Field("Chat.Admin", min_length=1, max_length=120, description="the app role that may open the "
                            "usage administration page")
    experimenter_role: str = Field("Chat.Experimenter", min_length=1, max_length=120, description="the app role "
                                   "that may see the side-by-side leaderboard (everyone may vote)")
    metrics_token: SecretStr | None = Field(
        None, description="a random secret of at least 32 characters that a Prometheus scraper sends as "
        "Authorization: Bearer <token> to read /metrics (metrics are off while neither this nor APP_METRICS_NETWORKS "
        "is set)")
    metrics_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated IP addresses or networks (CIDR) that may read /metrics "
        "without the token when they connect directly (not through a trusted proxy), e.g. 10.0.0.0/8")
    auth_disabled: bool = Field(False, description="true only for local experiments: no sign-in, a fixed local identity "
                                "(refused unless APP_PUBLIC_URL is a localhost address)")

    @field_validator("monthly_budget_usd", mode="before")
    @classmethod
    def _no_limit(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in {"", "none"} else value

    @field_validator("role_budgets", mode="before")
    @classmethod
    def _role_budgets(cls, value: object) -> dict[str, Decimal]:
        if isinstance(value, dict):
            return value
        budgets = {}
        for item in _comma_list(value):
            role, _, amount = item.partition("=")
            try:
                budgets[role.strip()] = Decimal(amount.strip())
            except (ArithmeticError, ValueError):
                raise ValueError(f"expected role=dollars, got {item!r}") from None
            if not role.strip() or budgets[role.strip()] < 0:
                raise ValueError(f"expected role=dollars, got {item!r}")
        return budgets

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _https_url(value, allow_http_loopback=True)

    @field_validator("trusted_proxies", "metrics_networks", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> list[str]:
        proxies = _comma_list(value)
        for proxy in proxies:
            ipaddress.ip_network(proxy, strict=False)  # an address or a network; ValueError names the bad one
        return proxies

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # an empty variable: metrics off

    @field_validator("frame_ancestors", mode="before")
    @classmethod
    def _frame_ancestors(cls, value: object) -> list[str]:
        items = [part for item in _comma_list(value) for part in item.split()]
        sources = []
        for item in items:
            keyword = item.strip("'").lower()
            if keyword in {"none", "self"}:
                sources.append(f"'{keyword}'")
            elif FRAME_SOURCE.match(item):  # nothing that could end the directive or add another (; , quotes)
                sources.append(item)
            else:
                raise ValueError(f"expected 'none', 'self' or an origin such as https://teams.microsoft.com, got {item!r}")
        if not sources:
            return ["'none'"]
        if "'none'" in sources and len(sources) > 1:
            raise ValueError("'none' cannot be combined with other sources")
        return sources

    @field_validator("session_secret", "metrics_token")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("too short (at least 32 characters)")
        return value

    @model_validator(mode="after")
    def _auth_off_only_locally(self) -> "AppSettings":
        if self.auth_disabled and urlsplit(self.public_url).hostname not in {"localhost", "127.0.0.1", "::1"}:
            raise ValueError("APP_AUTH_DISABLED=true is allowed only for local experiments, when APP_PUBLIC_URL is a "
                             "localhost address")
        return self

    @property
    def upload_ceiling_bytes(self) -> int:
        """What the upload widget and route let through: twice the larger file limit (at most what one person may
        upload at once), so a file somewhat over its limit reaches the app, which names it and holds the message,
        rather than being dropped by the browser without a word."""
        return min(2 * max(self.max_image_bytes, self.max_document_bytes), self.upload_in_flight_bytes)

    @property
    def metrics_enabled(self) -> bool:
        """/metrics is served (and metrics are counted) only when a token or a network may read them."""
        return self.metrics_token is not None or bool(self.metrics_networks)

    @model_validator(mode="after")
    def _memory(self) -> "AppSettings":
        if self.memory_keep_messages >= self.memory_trigger_messages:
            raise ValueError("APP_MEMORY_KEEP_MESSAGES must be less than APP_MEMORY_TRIGGER_MESSAGES")
        return self


class EntraSettings(_Section):
    """Microsoft Entra ID: the app registration, how the app proves its own identity, who may sign in."""

    model_config = SettingsConfigDict(env_prefix="ENTRA_")

    tenant_id: str = Field(pattern=GUID, description="the directory (tenant) ID, a GUID")
    client_id: str = Field(pattern=GUID, description="the application (client) ID of the app registration, a GUID")
    client_secret: SecretStr | None = Field(None, description="the app registration's client secret")
    credential: Literal["client_secret", "managed_identity", "default"] = Field(
        "client_secret", description="one of client_secret, managed_identity, default"
    )
    managed_identity_client_id: str | None = Field(None, pattern=GUID, description="a user-assigned identity's client ID")
    authority_host: str = Field("https://login.microsoftonline.com", description="the Entra authority host as an https URL")
    redirect_uri: str = Field("http://localhost:8080/signin/callback", description="the registered redirect URI")
    allowed_tenants: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated tenant GUIDs allowed to sign in (default: tenant_id)"
    )
    required_role: str | None = Field(None, min_length=1, max_length=120,
                                      description="an app role every person must hold to use the app (optional)")

    @field_validator("authority_host")
    @classmethod
    def _authority(cls, value: str) -> str:
        return _https_url(value)

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, value: str) -> str:
        return _https_url(value, allow_http_loopback=True)

    @field_validator("allowed_tenants", mode="before")
    @classmethod
    def _tenants(cls, value: object) -> list[str]:
        tenants = _comma_list(value)
        bad = [t for t in tenants if not re.match(GUID, t)]
        if bad:
            raise ValueError(f"expected comma-separated tenant GUIDs; not a GUID: {', '.join(bad)}")
        return tenants

    @model_validator(mode="after")
    def _complete(self) -> "EntraSettings":
        if not self.allowed_tenants:
            self.allowed_tenants = [self.tenant_id]
        return self

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def is_microsoft_cloud(self) -> bool:
        """False for a local emulator: then instance discovery (a call to login.microsoftonline.com) is switched off."""
        return urlsplit(self.authority_host).hostname in MICROSOFT_AUTHORITY_HOSTS


class AzureOpenAISettings(_Section):
    """The Azure OpenAI resource and the catalog of its deployments."""

    model_config = SettingsConfigDict(env_prefix="AZURE_OPENAI_")

    endpoint: str = Field(description="the resource endpoint, e.g. https://contoso.openai.azure.com")
    # A dated version: the classic API (/openai/deployments/{name}/..., AzureChatOpenAI); "v1": the versionless v1 API
    # (/openai/v1/..., ChatOpenAI with the deployment as model), which the Responses API needs.
    api_version: str = Field("2024-10-21", pattern=r"^(\d{4}-\d{2}-\d{2}(-preview)?|v1)$",
                             description="a dated version such as 2024-10-21 (the classic API), or v1 (the v1 API)")
    scope: Literal["https://cognitiveservices.azure.com/.default", "https://ai.azure.com/.default"] = Field(
        "https://cognitiveservices.azure.com/.default", description="the Entra scope of tokens for Azure OpenAI: "
        "https://cognitiveservices.azure.com/.default or https://ai.azure.com/.default")
    catalog_file: Path = Field(DEFAULT_CATALOG_FILE, description="a TOML deployment catalog")
    timeout_seconds: float = Field(60.0, gt=0, le=600, description="seconds, between 0 and 600")
    max_retries: int = Field(2, ge=0, le=10, description="a whole number from 0 to 10")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _https_url(value)

    @model_validator(mode="after")
    def _v1_in_the_endpoint(self) -> "AzureOpenAISettings":
        """An endpoint given as the v1 base URL (…/openai/v1/) means the v1 API: the resource URL is kept and the
        style follows, unless a dated version was asked for explicitly (then say which to change)."""
        trimmed = self.endpoint.rstrip("/")
        if trimmed.lower().endswith("/openai/v1"):
            if "api_version" in self.model_fields_set and self.api_version != "v1":
                raise ValueError(f"AZURE_OPENAI_ENDPOINT is the v1 API's base URL (…/openai/v1/) but "
                                 f"AZURE_OPENAI_API_VERSION is {self.api_version}: set AZURE_OPENAI_API_VERSION=v1, or "
                                 "give the resource URL without /openai/v1/ for the classic API")
            self.endpoint, self.api_version = trimmed[: -len("/openai/v1")], "v1"
        return self

    @property
    def style(self) -> str:
        """"v1" (the versionless v1 API) or "classic" (api-version and /deployments/ paths)."""
        return "v1" if self.api_version == "v1" else "classic"

    @property
    def v1_base_url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/openai/v1/"


class GraphSettings(_Section):
    """Microsoft Graph, which agent tools call with the person's own delegated (on-behalf-of) token."""

    model_config = SettingsConfigDict(env_prefix="GRAPH_")

    endpoint: str = Field("https://graph.microsoft.com", description="the Graph endpoint, e.g. https://graph.microsoft.com")
    timeout_seconds: float = Field(20.0, gt=0, le=120, description="seconds, between 0 and 120")
    max_retries: int = Field(2, ge=0, le=5, description="retries after 429/503, a whole number from 0 to 5")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _https_url(value)


class Settings(BaseModel):
    """Everything the app is configured with; built by `load_settings`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    app: AppSettings
    entra: EntraSettings
    azure_openai: AzureOpenAISettings
    graph: GraphSettings
    catalog: Catalog


SECTIONS: dict[str, type[_Section]] = {"app": AppSettings, "entra": EntraSettings, "azure_openai": AzureOpenAISettings,
                                       "graph": GraphSettings}


def load_settings(env_file: str | os.PathLike[str] | None = ".env", secrets_dir: str | None = None) -> Settings:
    """Read all settings; every problem is collected into one ConfigError that names the variables."""
    secrets_dir = secrets_dir or os.environ.get("APP_SECRETS_DIR") or None
    if env_file is not None and not Path(env_file).exists():
        env_file = None
    sections: dict[str, _Section] = {}
    problems: list[str] = []
    for key, cls in SECTIONS.items():
        try:
            sections[key] = cls(_env_file=env_file, _secrets_dir=secrets_dir)
        except ValidationError as exc:
            problems += [_describe(cls, error) for error in exc.errors()]
    if not problems:
        problems += _cross_checks(sections["app"], sections["entra"])
    if problems:
        raise ConfigError("Configuration problem:\n" + "\n".join(f"  - {p}" for p in problems))
    catalog = load_catalog(sections["azure_openai"].catalog_file)
    summary = sections["app"].summary_deployment
    if summary and summary not in catalog.names:
        raise ConfigError("Configuration problem:\n  - APP_SUMMARY_DEPLOYMENT is invalid: expected one of the catalog's "
                          f"deployments ({', '.join(catalog.names)}), got {summary!r}")
    return Settings(catalog=catalog, **sections)


class _SettingsCache:
    """load_settings() again only when something it reads has changed: the environment, the .env file, the secrets
    folder or the catalog file. A page reruns on every click and every streamed update; building four pydantic
    settings sections and parsing the catalog each time was a tenth of one replica's CPU with 20 people chatting
    (bench/capacity.py), while a changed setting still applies on the next rerun."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: tuple[tuple, Path, tuple, Settings] | None = None

    @staticmethod
    def _stat(path: Path | str | None) -> tuple:
        try:
            info = os.stat(path) if path else None
        except OSError:
            return ()
        return () if info is None else (info.st_mtime_ns, info.st_size, info.st_ino)

    def _inputs(self, env_file, secrets_dir) -> tuple:
        secrets_dir = secrets_dir or os.environ.get("APP_SECRETS_DIR") or None
        secrets = ()
        if secrets_dir and os.path.isdir(secrets_dir):
            secrets = tuple((entry.name, self._stat(entry.path)) for entry in sorted(os.scandir(secrets_dir),
                                                                                   key=lambda e: e.name))
        return (tuple(sorted(os.environ.items())), os.getcwd(), str(env_file), self._stat(env_file), secrets_dir,
                secrets)

    def get(self, env_file, secrets_dir) -> Settings:
        inputs = self._inputs(env_file, secrets_dir)
        held = self._held
        if held is not None and held[0] == inputs and held[2] == self._stat(held[1]):
            return held[3]
        with self._lock:
            settings = load_settings(env_file, secrets_dir)
            catalog_file = settings.azure_openai.catalog_file
            self._held = (inputs, catalog_file, self._stat(catalog_file), settings)
            return settings


_CACHE = _SettingsCache()


def current_settings(env_file: str | os.PathLike[str] | None = ".env", secrets_dir: str | None = None) -> Settings:
    """The settings for this page run: load_settings()'s result, shared until an input changes. Read-only: treat it
    as frozen (it is shared by every session of the process)."""
    return _CACHE.get(env_file, secrets_dir)


def _cross_checks(app: AppSettings, entra: EntraSettings) -> list[str]:
    problems = []
    if not (entra.client_secret and entra.client_secret.get_secret_value()):
        problems.append("ENTRA_CLIENT_SECRET is missing: expected the app registration's client secret (sign-in redeems "
                        "authorization codes with it, whichever ENTRA_CREDENTIAL the app uses for Azure OpenAI)")
    if app.session_secret is None and not app.auth_disabled:
        problems.append("APP_SESSION_SECRET is missing: expected a random secret of at least 32 characters (for example "
                        "the output of `python -c \"import secrets; print(secrets.token_urlsafe(48))\"`)")
    return problems


def _describe(cls: type[_Section], error: dict) -> str:
    """Turn one pydantic error into 'VARIABLE is missing/invalid: expected …' without echoing the value (it may be secret)."""
    prefix = cls.model_config.get("env_prefix", "")
    field_name = str(error["loc"][0]) if error.get("loc") else ""
    if not field_name:  # a check across fields names its variables itself
        return str(error.get("msg", "")).removeprefix("Value error, ")
    variable = f"{prefix}{field_name}".upper()
    info = cls.model_fields.get(field_name)
    expected = info.description if info and info.description else "a valid value"
    if error.get("type") == "missing":
        return f"{variable} is missing: expected {expected}"
    reason = "wrong format" if error.get("type") == "string_pattern_mismatch" else str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{variable} is invalid ({reason}): expected {expected}"
