"""Embeddings from an Azure OpenAI embeddings deployment, with the turn's Entra token provider and security context,
in batches within Azure's limits; every request is audited like a chat call (purpose `embedding`).

The openai SDK is called directly rather than through LangChain's AzureOpenAIEmbeddings: that class drops the usage
Azure reports and fires no callbacks, and tokens and cost must come from Azure's own numbers (docs/decisions.md).
The SDK retries 429 (honouring retry-after) and 5xx itself, up to AZURE_OPENAI_MAX_RETRIES times.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import openai

from callbacks.audit import AuditContext, AuditLog
from chains.errors import Failure, classify
from config.catalog import EmbeddingDeployment
from config.settings import Settings

TokenProvider = Callable[[], str]


class EmbeddingFailed(Exception):
    """Azure OpenAI gave no vectors, even after retrying; `failure` says why in words for the person."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class EmbeddedBatch:
    start: int  # index of the batch's first text
    vectors: np.ndarray  # float32, one unit-length row per text
    tokens: int
    cost: Decimal


def build_client(settings: Settings, token_provider: TokenProvider) -> openai.OpenAI:
    """The embeddings client: the classic API (api-version, /deployments/), or the v1 API (the deployment as model)
    with the same Entra token provider as its key."""
    azure = settings.azure_openai
    if azure.style == "v1":
        return openai.OpenAI(base_url=azure.v1_base_url, api_key=token_provider, timeout=azure.timeout_seconds,
                             max_retries=azure.max_retries)
    return openai.AzureOpenAI(azure_endpoint=azure.endpoint, api_version=azure.api_version,
                              azure_ad_token_provider=token_provider, timeout=azure.timeout_seconds,
                              max_retries=azure.max_retries)


class Embedder:
    def __init__(self, client: openai.AzureOpenAI, deployment: EmbeddingDeployment, *, audit: AuditLog,
                 context: AuditContext, security_context: Mapping[str, str] | None = None,
                 records: list[dict] | None = None, batch_size: int = 16) -> None:
        self.client, self.deployment, self.audit = client, deployment, audit
        self.context = AuditContext(**{**asdict(context), "deployment": deployment.name})
        self.security_context = dict(security_context) if security_context else None
        self.records = records if records is not None else []  # the turn's records: its usage includes these calls
        self.batch_size = max(1, min(batch_size, deployment.max_inputs))

    def batches(self, texts: Sequence[str], *, purpose_of: str, document: str | None = None,
                pace: Callable[[int, int], Iterator[object]] | None = None) -> Iterator[EmbeddedBatch | object]:
        """Vectors for `texts`, one request per batch, in order, and ONE audit record for them all (calls, inputs,
        tokens, cost and time summed), written when the last batch is in, at the first failure (EmbeddingFailed), or
        when the caller stops early (outcome `stopped`): a large document is one line of the audit, not thousands.
        `pace(start, end)`: called before each request; whatever it yields (e.g. "waiting for the per-minute
        limit") is passed through, so a caller can wait without blocking its own events."""
        tally = _Tally(time.perf_counter())
        try:
            for start in range(0, len(texts), self.batch_size):
                end = min(start + self.batch_size, len(texts))
                if pace is not None:
                    yield from pace(start, end)
                batch = self._call(list(texts[start:end]), start, tally)
                yield batch
            tally.outcome = "ok"
        finally:
            self._audit(tally, purpose_of, document)

    def embed_one(self, text: str, *, purpose_of: str) -> tuple[np.ndarray, int]:
        tally = _Tally(time.perf_counter())
        try:
            batch = self._call([text], 0, tally)
            tally.outcome = "ok"
        finally:
            self._audit(tally, purpose_of, None)
        return batch.vectors[0], batch.tokens

    def _call(self, texts: list[str], start: int, tally: "_Tally") -> EmbeddedBatch:
        extra = {"user_security_context": self.security_context} if self.security_context else None
        tally.calls += 1
        tally.inputs += len(texts)
        try:
            raw = self.client.embeddings.with_raw_response.create(
                model=self.deployment.name, input=texts, dimensions=self.deployment.dimensions, extra_body=extra)
            response = raw.parse()
        except openai.OpenAIError as exc:
            failure = classify(exc)
            tally.outcome, tally.request_id, tally.status_code = failure.kind, failure.request_id, failure.status_code
            raise EmbeddingFailed(failure) from exc
        vectors = np.asarray([item.embedding for item in sorted(response.data, key=lambda d: d.index)],
                             dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
        tokens = response.usage.prompt_tokens if response.usage else 0
        tally.tokens += tokens
        tally.request_id = raw.headers.get("apim-request-id") or raw.headers.get("x-request-id")
        return EmbeddedBatch(start, vectors, tokens, self.deployment.cost(tokens))

    def _audit(self, tally: "_Tally", purpose_of: str, document: str | None) -> None:
        """A `model_call` record like a chat call's, so usage, cost and the audit agree; a document's name only
        with APP_AUDIT_INCLUDE_TEXT. `calls` says how many requests it sums; the request id is the last one's."""
        if not tally.calls:
            return
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": "model_call",
            "run_id": str(uuid.uuid4()), "purpose": "embedding", "embedding_for": purpose_of,
            **{k: v for k, v in asdict(self.context).items() if k not in ("include_text", "temperature",
                                                                           "max_output_tokens")},
            "calls": tally.calls, "inputs": tally.inputs, "dimensions": self.deployment.dimensions,
            "prompt_tokens": tally.tokens, "completion_tokens": 0, "usage_estimated": False,
            "cost_usd": str(self.deployment.cost(tally.tokens)),
            "latency_ms": round((time.perf_counter() - tally.began) * 1000), "time_to_first_token_ms": None,
            "azure_request_id": tally.request_id, "status_code": tally.status_code, "outcome": tally.outcome,
        }
        if self.context.include_text and document:
            record["document"] = document
        self.records.append(record)
        self.audit.write(record)


@dataclass
class _Tally:
    """What the requests behind one audit record added up to so far."""

    began: float
    calls: int = 0
    inputs: int = 0
    tokens: int = 0
    outcome: str = "stopped"  # until the last batch is in, or a failure says otherwise
    request_id: str | None = None
    status_code: int | None = None
