"""The deployment catalog: which Azure OpenAI deployments exist, what they accept and what they cost."""
from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.capabilities import Capabilities, ImageRule, family_capabilities
from config.errors import ConfigError

DEFAULT_CATALOG_FILE = Path(__file__).with_name("deployments.toml")


CAPABILITY_FIELDS = tuple(Capabilities.model_fields)
# A reasoning model spends hidden tokens before it answers: its default answer limit leaves room for both.
REASONING_DEFAULT_OUTPUT_TOKENS = 8000


class Deployment(BaseModel):
    """One Azure OpenAI deployment as the app knows it. Its capabilities (config/capabilities.py) come from its model's
    family; any of them can be set on the row to override."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Azure deployment name")
    model: str = Field(min_length=1, description="model name, e.g. gpt-5-mini")
    label: str = ""
    # Capabilities: filled from the model's family before validation (see _with_family).
    reasoning: bool = False
    accepts_sampling: bool = True
    reasoning_efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    accepts_images: bool = False
    image_rule: ImageRule | None = None
    max_images: int = Field(10, gt=0)
    streaming: bool = True
    api: Literal["chat_completions", "responses"] = "chat_completions"
    responses_only: bool = False
    reasoning_summaries: bool = False
    # The answer limit offered first (None: the app's default, or 8000 for a reasoning model), within max_output_tokens.
    default_output_tokens: int | None = Field(None, gt=0)
    # Whose identity calls this deployment: the app's own, the signed-in person's (on-behalf-of), or the person's choice.
    identity: Literal["app", "on_behalf_of", "either"] = "app"
    # App roles that may pick this deployment (any one of them); empty means everyone signed in.
    roles: tuple[str, ...] = ()
    # Tools an agent may offer the model on this deployment: None every tool (that the person's roles allow), () none.
    tools: tuple[str, ...] | None = None
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    input_price_per_1m: Decimal = Field(ge=0)
    output_price_per_1m: Decimal = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _with_family(cls, data: object) -> object:
        """The row's capabilities over its family's, checked together (e.g. a default effort the model offers)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "accepts_temperature" in data:  # the seed's name for sampling parameters
            data.setdefault("accepts_sampling", data.pop("accepts_temperature"))
        family = family_capabilities(str(data.get("model", ""))).model_dump()
        given = {k: data[k] for k in CAPABILITY_FIELDS if k in data}
        if given.get("accepts_images") is False:
            family["image_rule"] = None
        if given.get("reasoning") is False:  # a row that says "not a reasoning model" drops the family's reasoning
            family.update(reasoning_summaries=False, reasoning_efforts=(), default_effort=None)
        merged = Capabilities.model_validate({**family, **given})
        data.update({k: getattr(merged, k) for k in CAPABILITY_FIELDS})
        return data

    @model_validator(mode="after")
    def _output_fits_context(self) -> "Deployment":
        if self.max_output_tokens >= self.context_window:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) must be smaller than context_window ({self.context_window})"
            )
        if self.default_output_tokens is not None and self.default_output_tokens > self.max_output_tokens:
            raise ValueError(f"default_output_tokens ({self.default_output_tokens}) must not exceed max_output_tokens "
                             f"({self.max_output_tokens})")
        return self

    @property
    def display_name(self) -> str:
        return self.label or self.name

    @property
    def accepts_temperature(self) -> bool:
        return self.accepts_sampling

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(**{k: getattr(self, k) for k in CAPABILITY_FIELDS})

    def answer_limit(self, app_default: int) -> int:
        """The answer limit offered before anybody chose: the row's, else room for reasoning, else the app's."""
        if self.default_output_tokens is not None:
            return self.default_output_tokens
        wanted = max(app_default, REASONING_DEFAULT_OUTPUT_TOKENS) if self.reasoning else app_default
        return min(wanted, self.max_output_tokens)

    def effort(self, chosen: str | None) -> str | None:
        """The reasoning_effort to send: the person's choice when this deployment offers it, else its default."""
        if not self.reasoning_efforts:
            return None
        return chosen if chosen in self.reasoning_efforts else self.default_effort

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Cost in USD of one call with these token counts, at this deployment's prices (reasoning tokens are part of
        completion_tokens: Azure bills them as output)."""
        million = Decimal(1_000_000)
        return (prompt_tokens * self.input_price_per_1m + completion_tokens * self.output_price_per_1m) / million


class EmbeddingDeployment(BaseModel):
    """An Azure OpenAI embeddings deployment: documents too long to send whole are indexed with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Azure deployment name")
    model: str = Field(min_length=1, description="model name, e.g. text-embedding-3-small")
    label: str = ""
    # Vector length asked for (text-embedding-3 models shorten on request); stored vectors have this length.
    dimensions: int = Field(gt=0, le=3072)
    input_price_per_1m: Decimal = Field(ge=0)
    # Azure's limits per request: inputs in one call, and tokens in one input.
    max_inputs: int = Field(2048, gt=0, le=2048)
    max_input_tokens: int = Field(8191, gt=0)

    @property
    def display_name(self) -> str:
        return self.label or self.name

    def cost(self, tokens: int) -> Decimal:
        return tokens * self.input_price_per_1m / Decimal(1_000_000)


class Catalog(BaseModel):
    """All deployments, in the order the file lists them, and the one picked when nobody chose."""

    model_config = ConfigDict(frozen=True)

    deployments: tuple[Deployment, ...]
    default: str
    # Embeddings deployments ([[embedding]] tables); the first indexes documents. None: long documents are refused.
    embeddings: tuple[EmbeddingDeployment, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> "Catalog":
        names = [d.name for d in self.deployments]
        if not names:
            raise ValueError("the catalog lists no deployment")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"deployment names must be unique; repeated: {', '.join(duplicates)}")
        if self.default not in names:
            raise ValueError(f"default = {self.default!r} is not one of the deployments ({', '.join(names)})")
        clashes = sorted({e.name for e in self.embeddings} & set(names))
        if clashes:
            raise ValueError(f"a deployment cannot be both chat and embedding: {', '.join(clashes)}")
        return self

    @property
    def embedding(self) -> EmbeddingDeployment | None:
        """The deployment that indexes documents (the first [[embedding]] table), if any."""
        return self.embeddings[0] if self.embeddings else None

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.deployments]

    def available_to(self, roles: tuple[str, ...] | list[str]) -> list[Deployment]:
        """The deployments a person with these app roles may pick."""
        return [d for d in self.deployments if not d.roles or set(d.roles) & set(roles)]

    def get(self, name: str) -> Deployment:
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        raise KeyError(f"unknown deployment {name!r}; the catalog has {', '.join(self.names)}")


def load_catalog(path: str | Path = DEFAULT_CATALOG_FILE) -> Catalog:
    """Read and validate the catalog file; any problem becomes one ConfigError naming the file and the entry."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Deployment catalog {path} does not exist (set AZURE_OPENAI_CATALOG_FILE to a TOML file).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Deployment catalog {path} is not valid TOML: {exc}.") from None
    entries = raw.get("deployment", [])
    try:
        return Catalog(deployments=tuple(entries), default=raw.get("default") or (entries[0].get("name", "") if entries else ""),
                       embeddings=tuple(raw.get("embedding", [])))
    except ValidationError as exc:
        raise ConfigError(f"Deployment catalog {path} is invalid: " + "; ".join(_describe(e, entries, raw.get("embedding", []))
                                                                    for e in exc.errors())) from None


def _describe(error: dict, entries: list[dict], embeddings: list[dict] = ()) -> str:
    loc = error.get("loc", ())
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] in ("deployments", "embeddings") and isinstance(loc[1], int):
        index = loc[1]
        entries = entries if loc[0] == "deployments" else embeddings
        name = entries[index].get("name", f"#{index + 1}") if index < len(entries) else f"#{index + 1}"
        field = ".".join(str(part) for part in loc[2:])
        return f"deployment {name!r}" + (f" field {field}" if field else "") + f": {message}"
    return message
