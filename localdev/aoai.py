"""Azure OpenAI emulator: the Chat Completions data-plane API over HTTPS, with Entra token checks and test knobs.

Clients (the openai SDK, LangChain's AzureChatOpenAI) talk to it exactly as to a real resource:
`POST /openai/deployments/{deployment}/chat/completions?api-version=...` with `authorization: Bearer <token>`.
Answers, errors and SSE streams have Azure's shapes; an `Engine` (localdev.engines) writes the text or the tool calls.
Tools: `tools`, `tool_choice` and `parallel_tool_calls` are validated as Azure does (400 with Azure's error body), as
are assistant `tool_calls` and `tool` messages in the history; tool calls go out as `message.tool_calls` or as
streamed deltas (id, type and name first, then argument fragments) with `finish_reason: "tool_calls"`.
Embeddings: `POST /openai/deployments/{deployment}/embeddings` on the catalog's embeddings deployments, with Azure's
request (a string, strings, token ids or lists of token ids; `dimensions`, `encoding_format` float or base64) and
response shapes, limits and errors; the engine's `embed` writes the vectors. Calling one kind of deployment with the
other's operation is Azure's 400 OperationNotSupported.
Model families (config/capabilities.py): each request is checked against the rules of its deployment's MODEL family,
never the catalog row's overrides (a catalog that claims too much gets Azure's 400, as on Azure). Reasoning models
refuse `max_tokens` and the sampling parameters (temperature/top_p other than 1, penalties, logprobs, logit_bias);
`reasoning_effort` must be one of the family's efforts (absent: the family's default); a family that cannot stream
refuses `stream: true`; more images than the family allows is a 400. A reasoning answer bills hidden reasoning tokens,
fixed per effort (REASONING_TOKENS), out of the answer limit first: `usage.completion_tokens` counts them and
`completion_tokens_details.reasoning_tokens` names them; a limit they use up gives an empty answer at "length".
Test knobs: fault injection (in process or under `/_emulator/`; `endpoint="embeddings"` or `"chat"` aims a fault at
one operation) and a record of every authenticated request (`kind` "chat", "embeddings" or "responses"; `api`
"classic" or "v1").
The versionless v1 API (`/openai/v1/...`, the plain `openai.OpenAI(base_url=f"{endpoint}/openai/v1/")` client): no
`api-version` (a dated one is Azure's 400 "API version not supported"; "v1" and "preview" are accepted), the deployment
named by `model` in the body, tokens for `https://cognitiveservices.azure.com` or `https://ai.azure.com` (the classic
routes take only the first). `POST /openai/v1/chat/completions` and `/openai/v1/embeddings` behave exactly as the
classic routes. `POST /openai/v1/responses` is the Responses API: `input` (a string or message / function_call /
function_call_output items) becomes the chat `messages` the engine answers; `reasoning: {effort, summary}` is checked
per family, and a requested summary is written by the emulator (its tokens are part of the hidden reasoning); the
answer is a `response` object, or OpenAI's typed SSE events (`event:` and `data:` lines, `sequence_number` on each).
Models with no Chat Completions (RESPONSES_ONLY: the pro and codex models) answer chat with Azure's 400
OperationNotSupported "The requested operation is unsupported."
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, NamedTuple

import jsonschema
import jwt
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from config.capabilities import Capabilities, family_capabilities
from config.catalog import Catalog, EmbeddingDeployment
from localdev.embeddings import accepts_dimensions, as_float32, hashed_vectors, native_dimensions, to_base64
from localdev.engines import (
    FAULT_MARKER,
    ChatRequest,
    Engine,
    ScriptedEngine,
    ToolCallPiece,
    image_parts,
    last_user_text,
)
from localdev.faults import EmulatorControls, FaultQueue
from localdev.prompt_tokens import UnreadableImage, count_image_tokens, encoding_for_model
from localdev.tokens import TokenVerifier

log = logging.getLogger(__name__)

AUDIENCE = "https://cognitiveservices.azure.com"
AI_AUDIENCE = "https://ai.azure.com"  # the newer docs' scope https://ai.azure.com/.default: the v1 API accepts it too
V1_AUDIENCES = (AUDIENCE, AI_AUDIENCE)
V1_API_VERSIONS = ("v1", "preview")  # what /openai/v1 takes in `api-version`; a dated version is a 400
# Models Azure serves only through the Responses API (reasoning how-to, "API & feature support"), matched like the
# families (re.match, case-insensitive): the fallback when config/capabilities.py has no `responses_only` flag.
RESPONSES_ONLY = re.compile(r"gpt-5(\.\d+)?-pro|gpt-5(\.\d+)?-codex|codex-mini|o3-pro|o1-pro", re.IGNORECASE)
SUMMARY_MODES = ("auto", "concise", "detailed")
NO_CONCISE_SUMMARY = re.compile(r"gpt-5", re.IGNORECASE)  # "The gpt-5 series does not support concise"
# Parameters of Chat Completions the Responses API does not know (OpenAI answers 400 unknown_parameter).
CHAT_ONLY_PARAMETERS = ("messages", "max_tokens", "max_completion_tokens", "reasoning_effort", "stop", "n",
                        "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "response_format", "seed")
MIN_OUTPUT_TOKENS = 16  # the Responses API's minimum `max_output_tokens`
SUMMARY_WORDS_PER_DELTA = 4
FAULT_KINDS = ("429", "500", "timeout", "cut", "prompt_filter", "completion_filter", "context_length")
EMBEDDING_FAULT_KINDS = ("429", "500", "timeout", "cut", "context_length")  # Azure filters no embeddings
FAULT_ENDPOINTS = ("any", "chat", "embeddings")
FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
RECORDED_CLAIMS = ("oid", "tid", "appid", "azp", "idtyp", "scp", "roles", "aud")
SECRET_HEADERS = {"authorization", "api-key", "cookie"}
# Dated versions Azure reports in `model`; a model not listed here is reported as the catalog names it.
MODEL_VERSIONS = {"gpt-4o": "2024-11-20", "gpt-4o-mini": "2024-07-18", "gpt-4.1": "2025-04-14",
                  "gpt-4.1-mini": "2025-04-14", "gpt-4": "0613", "gpt-35-turbo": "0125",
                  "gpt-5": "2025-08-07", "gpt-5-mini": "2025-08-07", "gpt-5-nano": "2025-08-07",
                  "gpt-5.1": "2025-11-13", "gpt-5.4": "2026-03-05", "gpt-5.4-mini": "2026-03-17",
                  "gpt-5.4-nano": "2026-03-17", "gpt-5.5": "2026-04-24", "o4-mini": "2025-04-16", "o3": "2025-04-16"}
# Hidden reasoning tokens a reasoning model spends per effort (deterministic here; real models vary per question).
REASONING_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 256, "high": 1024, "xhigh": 2048}
# Sampling parameters a reasoning model accepts at their default value only; the others it refuses outright.
DEFAULT_ONLY = {"temperature": 1, "top_p": 1}
REFUSED_BY_REASONING = ("presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias")
REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE = 1000, 150_000
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
MAX_TOOL_NAME, MAX_TOOLS = 64, 128
TOOL_CHOICES = ("none", "auto", "required")

NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
UNAUTHORIZED = {"error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
                          f"({AUDIENCE}), or have expired."}}
BAD_API_KEY = {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make "
                         "sure to provide a valid key for an active subscription and use a correct regional API endpoint for "
                         "your resource."}}
API_VERSION_NOT_SUPPORTED = {"error": {"code": "BadRequest", "message": "API version not supported"}}
OPERATION_UNSUPPORTED = {"error": {"code": "OperationNotSupported", "message": "The requested operation is unsupported."}}
DEPLOYMENT_NOT_FOUND = {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. "
                                  "If you created the deployment within the last 5 minutes, please wait a moment and try again."}}
SERVER_ERROR = {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                          "type": "server_error", "param": None, "code": None}}
TIMEOUT = {"error": {"code": "Timeout", "message": "The operation was timeout."}}
MODELS_BY_OPERATION = "https://go.microsoft.com/fwlink/?linkid=2197993"
INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
ENCODING_FORMATS = ("float", "base64")
PROMPT_FILTERED = ("The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please "
                   "modify your prompt and retry. To learn more about our content filtering policies please read our "
                   "documentation: https://go.microsoft.com/fwlink/?linkid=2198766")


@dataclass(frozen=True)
class Fault:
    """One injected failure: `retry_after` (s) for "429", `seconds` that "timeout" holds the request, `after_chunks`
    answer tokens "cut"/"completion_filter" let through, `category`/`severity` the content filters report, and
    `endpoint` the requests it hits: "any" (chat completions and, for the kinds that apply, embeddings), "chat" or
    "embeddings" only. Responses requests take the faults aimed at chat (any route, classic or v1)."""

    kind: str
    retry_after: int = 1
    seconds: float = 30.0
    after_chunks: int = 3
    category: str = "violence"
    severity: str = "high"
    endpoint: str = "any"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.category not in FILTER_CATEGORIES:
            raise ValueError(f"unknown content filter category {self.category!r}")
        if self.endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"unknown fault endpoint {self.endpoint!r}; known: {', '.join(FAULT_ENDPOINTS)}")
        if self.endpoint == "embeddings" and self.kind not in EMBEDDING_FAULT_KINDS:
            raise ValueError(f"fault {self.kind!r} does not apply to embeddings; those that do: "
                             f"{', '.join(EMBEDDING_FAULT_KINDS)}")

    def hits_chat(self) -> bool:
        return self.endpoint in ("any", "chat")

    def hits_embeddings(self) -> bool:
        return self.endpoint in ("any", "embeddings") and self.kind in EMBEDDING_FAULT_KINDS

    @classmethod
    def from_marker(cls, kind: str, options: str) -> "Fault":
        """The fault of a `[[fault:KIND key=value ...]]` marker; values take the type of the option's default."""
        pairs = (pair.split("=", 1) for pair in options.replace(",", " ").split() if "=" in pair)
        return cls(kind, **{key: type(getattr(cls, key, ""))(value) for key, value in pairs})


class FaultInjector(FaultQueue):
    """Picks the fault (if any) for the next request: a marker in the last user message first, then the queue of
    injected faults, then the random rate."""

    def __init__(self) -> None:
        super().__init__(Fault, ("429", "500"))

    def next_fault(self, user_text: str) -> Fault | None:
        """The fault for the next chat completion."""
        marker = FAULT_MARKER.search(user_text)
        if marker:
            return Fault.from_marker(marker.group(1), marker.group(2))
        return self.take(Fault.hits_chat)

    def next_embeddings_fault(self) -> Fault | None:
        """The fault for the next embeddings request: queued or random ones aimed at embeddings (or at any request)
        whose kind applies to embeddings; the others stay queued for chat."""
        return self.take(Fault.hits_embeddings)


class _Admitted(NamedTuple):
    request_id: str
    headers: dict
    api_version: str
    claims: dict
    deployment: object  # a chat Deployment or an EmbeddingDeployment
    body: object


@dataclass
class _Finish:
    reason: str  # "stop", "length", "content_filter" or "cut"


class AzureOpenAIEmulator(EmulatorControls):
    """The emulated Azure OpenAI resource. Serve `.app` over TLS; read `.requests`; `.engine` may be swapped."""

    def __init__(self, catalog: Catalog, *, jwks_url: str, ca_file: Path | None, engine: Engine | None = None,
                 issuer: str | None = None, api_key: str | None = None, region: str = "Local Emulator",
                 leeway_seconds: float = 10.0) -> None:
        self.catalog = catalog
        self.engine: Engine = engine or ScriptedEngine()
        self.requests: list[dict] = []
        self.faults = FaultInjector()
        self.region = region
        self._verifier = TokenVerifier(jwks_url, ca_file, audience=AUDIENCE, issuer=issuer, leeway=leeway_seconds)
        self._v1_verifier = TokenVerifier(jwks_url, ca_file, audience=V1_AUDIENCES, issuer=issuer, leeway=leeway_seconds)
        self._api_key = api_key
        self._minute = [0, 0, 0]  # minute, requests, tokens: feeds the x-ratelimit-remaining-* headers
        _install_cut_log_filter()
        not_found = lambda request, exc: JSONResponse(NOT_FOUND, 404)  # noqa: E731 (Azure answers JSON, not text)
        self.app = Starlette(routes=[
            Route("/openai/deployments/{deployment}/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", self._embeddings, methods=["POST"]),
            Route("/openai/v1/chat/completions", self._v1_chat_completions, methods=["POST"]),
            Route("/openai/v1/embeddings", self._v1_embeddings, methods=["POST"]),
            Route("/openai/v1/responses", self._responses, methods=["POST"]),
            Route("/_emulator/faults", self._faults_route, methods=["GET", "POST", "DELETE"]),
            Route("/_emulator/requests", self._requests_route, methods=["GET", "DELETE"]),
            Route("/_emulator/engine", self._engine_route, methods=["GET", "POST"]),
        ], exception_handlers={404: not_found, 405: not_found})

    def inject(self, fault: str, count: int = 1, **options) -> None:
        """Queue `count` copies of a fault for the next requests, e.g. inject("429", count=1, retry_after=2);
        `endpoint="embeddings"` (or "chat") aims it at one operation."""
        self.faults.inject(fault, count, **options)

    def set_fault_rate(self, rate: float, faults: list[str] | None = None, seed: int | None = None, **options) -> None:
        """Fail a random share `rate` of requests with one of `faults` (default 429 and 500), reproducible by seed."""
        self.faults.set_rate(rate, faults, seed, **options)

    def clear_faults(self) -> None:
        """Forget queued faults and the random rate."""
        self.faults.clear()

    # ---- the data plane ----
    async def _admit(self, request: Request, operation: str) -> "_Admitted | Response":
        """What every data-plane call checks first, in Azure's order: api-version, token, a deployment that exists and
        serves this operation (chat or embeddings), a JSON body."""
        request_id = str(uuid.uuid4())
        headers = {"apim-request-id": request_id, "x-request-id": request_id, "x-ms-region": self.region}
        api_version = request.query_params.get("api-version")
        if not api_version:
            return JSONResponse(NOT_FOUND, 404, headers)
        claims, refusal = await self._authenticate(request)
        if refusal:
            return JSONResponse(refusal, 401, headers)
        deployment = self._deployment_for(request.path_params["deployment"], operation)
        if isinstance(deployment, tuple):
            return JSONResponse(deployment[0], deployment[1], headers)
        headers["x-ms-deployment-name"] = deployment.name
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(_invalid("We could not parse the JSON body of your request."), 400, headers)
        return _Admitted(request_id, headers, api_version, claims, deployment, body)

    async def _admit_v1(self, request: Request, operation: str) -> "_Admitted | Response":
        """The v1 API's admission: no dated api-version (absent, "v1" or "preview"), a token for either accepted
        audience, a JSON object naming in `model` a deployment that serves this operation ("chatCompletion" and
        "responses" on chat deployments, "embeddings" on embeddings deployments)."""
        request_id = str(uuid.uuid4())
        headers = {"apim-request-id": request_id, "x-request-id": request_id, "x-ms-region": self.region}
        api_version = request.query_params.get("api-version")
        if api_version is not None and api_version not in V1_API_VERSIONS:
            return JSONResponse(API_VERSION_NOT_SUPPORTED, 400, headers)
        claims, refusal = await self._authenticate(request, self._v1_verifier)
        if refusal:
            return JSONResponse(refusal, 401, headers)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(_invalid("We could not parse the JSON body of your request."), 400, headers)
        if not isinstance(body, dict):
            return JSONResponse(_wrong_type("body", "an object", body), 400, headers)
        name = body.get("model")
        if name is None:
            return JSONResponse(_missing("model"), 400, headers)
        if not isinstance(name, str):
            return JSONResponse(_wrong_type("model", "a string", name), 400, headers)
        deployment = self._deployment_for(name, operation)
        if isinstance(deployment, tuple):
            return JSONResponse(deployment[0], deployment[1], headers)
        headers["x-ms-deployment-name"] = deployment.name
        return _Admitted(request_id, headers, api_version, claims, deployment, body)

    def _deployment_for(self, name: str, operation: str):
        """The deployment `name` when it serves `operation` (embeddings on embeddings deployments, everything else on
        chat ones); else (Azure's error body, status): OperationNotSupported for the other kind, else not found."""
        chat = next((d for d in self.catalog.deployments if d.name == name), None)
        embedding = next((e for e in self.catalog.embeddings if e.name == name), None)
        deployment = embedding if operation == "embeddings" else chat
        if deployment is not None:
            return deployment
        other = embedding or chat
        if other is not None:
            return _operation_not_supported(operation, other.model), 400
        return DEPLOYMENT_NOT_FOUND, 404

    async def _chat_completions(self, request: Request) -> Response:
        admitted = await self._admit(request, "chatCompletion")
        if isinstance(admitted, Response):
            return admitted
        return await self._chat(request, admitted, "classic")

    async def _v1_chat_completions(self, request: Request) -> Response:
        admitted = await self._admit_v1(request, "chatCompletion")
        if isinstance(admitted, Response):
            return admitted
        return await self._chat(request, admitted, "v1")

    async def _chat(self, request: Request, admitted: _Admitted, api: str) -> Response:
        """Chat Completions after admission, the same on the classic and the v1 route (`api` is recorded)."""
        request_id, headers, api_version, claims, deployment, body = admitted
        if _responses_only(deployment.model):  # a Responses-only model: Azure refuses the operation itself
            return JSONResponse(OPERATION_UNSUPPORTED, 400, headers)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return JSONResponse(_invalid("'messages' is a required property", "messages"), 400, headers)
        tools = body.get("tools")
        record = {"kind": "chat", "api": api, "deployment": deployment.name, "api_version": api_version, "body": body,
                  "headers": {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
                  "token_claims": {name: claims.get(name) for name in RECORDED_CLAIMS}, "request_id": request_id,
                  "tools": _tool_names(tools), "tool_choice": body.get("tool_choice"),
                  "tool_messages": [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "tool"],
                  "tool_calls": [], "reasoning_effort": None, "reasoning_tokens": None,
                  # The caller's address and port: the same port on two calls means one kept-alive connection.
                  "peer": f"{request.client.host}:{request.client.port}" if request.client else None}
        self.requests.append(record)

        # Azure's rules are the model family's, whatever the catalog row claims.
        family = family_capabilities(deployment.model)
        limit_param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        requested = body.get(limit_param)
        error = _check_family(body, family) or _check_tools(body) or _check_tool_messages(body["messages"])
        if error:
            return JSONResponse(error, 400, headers)
        chat = ChatRequest(deployment=deployment, messages=body["messages"], max_tokens=requested,
                           temperature=body.get("temperature"), stream=bool(body.get("stream")), top_p=body.get("top_p"),
                           stop=body.get("stop"), seed=body.get("seed"), body=body, tools=tools,
                           tool_choice=body.get("tool_choice") if tools else None,
                           parallel_tool_calls=body.get("parallel_tool_calls") if tools else None)
        error = _check_request(chat, requested, limit_param, family)
        if error:
            return JSONResponse(error, 400, headers)
        try:
            prompt_tokens = await run_in_threadpool(self.engine.count_prompt_tokens, chat)
        except UnreadableImage:
            return JSONResponse(_invalid("You uploaded an unsupported image. Please make sure your image is valid.",
                                         "messages", "invalid_image_format"), 400, headers)
        window = deployment.context_window
        if prompt_tokens + (requested or 0) > window or prompt_tokens >= window:
            return JSONResponse(_context_error(window, prompt_tokens, requested), 400, headers)
        limit = min(requested or deployment.max_output_tokens, deployment.max_output_tokens, window - prompt_tokens)
        record["prompt_tokens"] = prompt_tokens
        # The images' share of the bill (tests and bench/conformance.py compare it with the app's estimate).
        record["image_tokens"] = await run_in_threadpool(count_image_tokens, body["messages"], deployment.model)
        headers.update(self._rate_headers(prompt_tokens + limit))
        # Reasoning comes out of the answer limit first; the engine writes at most what is left (maybe nothing).
        effort = (body.get("reasoning_effort") or family.default_effort) if family.reasoning else None
        reasoning = min(REASONING_TOKENS.get(effort, 0), limit)
        record["reasoning_effort"], record["reasoning_tokens"] = effort, reasoning
        chat.max_tokens = limit - reasoning
        try:
            fault = self.faults.next_fault(last_user_text(chat.messages))
        except (TypeError, ValueError) as exc:
            return JSONResponse(_invalid(f"Bad emulator fault marker: {exc}", "messages"), 400, headers)
        record["fault"] = fault.kind if fault else None
        if fault:
            log.info("injecting fault %s into request %s", fault.kind, request_id)
            refusal = await self._refusal(fault, api_version or "v1", window, headers)
            if refusal:
                return refusal
        admit = getattr(self.engine, "admit", None)
        if admit is not None and not admit():  # a local model's queue is full: Azure's own answer to overload
            wait = getattr(self.engine, "retry_after_seconds", 1)
            return JSONResponse({"error": {"code": "429", "message": "The local model is busy with other requests. "
                                           f"Please retry after {wait} seconds."}}, 429,
                                {**headers, "retry-after": str(wait), "retry-after-ms": str(wait * 1000)})
        meta = {"id": "chatcmpl-" + secrets.token_hex(15), "created": int(time.time()),
                "model": _reported_model(deployment.model),
                "system_fingerprint": "fp_" + hashlib.sha256(deployment.model.encode()).hexdigest()[:10]}
        if chat.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._stream(chat, fault, meta, prompt_tokens, include_usage, record, reasoning)
            return _EventStream(events, headers=headers, media_type="text/event-stream")
        return await self._complete(chat, fault, meta, prompt_tokens, record, headers, reasoning)

    async def _embeddings(self, request: Request) -> Response:
        """Azure's embeddings operation: checks as for chat (api-version, token, deployment), then the input limits,
        the faults aimed at embeddings, and the engine's vectors in the requested format."""
        admitted = await self._admit(request, "embeddings")
        if isinstance(admitted, Response):
            return admitted
        return await self._embed(admitted, request, "classic")

    async def _v1_embeddings(self, request: Request) -> Response:
        admitted = await self._admit_v1(request, "embeddings")
        if isinstance(admitted, Response):
            return admitted
        return await self._embed(admitted, request, "v1")

    async def _embed(self, admitted: _Admitted, request: Request, api: str) -> Response:
        """Embeddings after admission, the same on the classic and the v1 route (`api` is recorded)."""
        request_id, headers, api_version, claims, deployment, body = admitted
        if not isinstance(body, dict) or "input" not in body:
            return JSONResponse(_invalid("'input' is a required property", "input"), 400, headers)
        record = {"kind": "embeddings", "api": api, "deployment": deployment.name, "api_version": api_version, "body": body,
                  "headers": {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
                  "token_claims": {name: claims.get(name) for name in RECORDED_CLAIMS}, "request_id": request_id,
                  "inputs": None, "prompt_tokens": None, "dimensions": None, "encoding_format": body.get("encoding_format"),
                  "user": body.get("user"), "user_security_context": body.get("user_security_context"), "fault": None}
        self.requests.append(record)

        # In a worker thread: tokenising up to 2048 inputs of 8191 tokens takes a while.
        texts, token_counts, error = await run_in_threadpool(_embedding_inputs, body["input"], deployment.model)
        if error:
            return JSONResponse(error, 400, headers)
        record["inputs"], record["prompt_tokens"] = len(texts), sum(token_counts)
        dimensions, error = _embedding_options(body, deployment)
        if error:
            return JSONResponse(error, 400, headers)
        record["dimensions"] = dimensions
        error = _embedding_limits(token_counts, deployment)
        if error:
            return JSONResponse(error, 400, headers)
        prompt_tokens = sum(token_counts)
        headers.update(self._rate_headers(prompt_tokens))
        fault = self.faults.next_embeddings_fault()
        record["fault"] = fault.kind if fault else None
        if fault:
            log.info("injecting fault %s into embeddings request %s", fault.kind, request_id)
            if fault.kind == "context_length":
                tokens = deployment.max_input_tokens + 1
                return JSONResponse(_embedding_context_error(deployment, tokens), 400, headers)
            refusal = await self._refusal(fault, api_version or "v1", 0, headers, operation="Embeddings_Create")
            if refusal:
                return refusal
        embed = getattr(self.engine, "embed", None) or hashed_vectors
        vectors = await run_in_threadpool(embed, texts, dimensions)
        base64_format = body.get("encoding_format") == "base64"
        data = []
        for index, vector in enumerate(vectors):
            values = as_float32(vector)
            data.append({"object": "embedding", "index": index,
                         "embedding": to_base64(values) if base64_format else values.tolist()})
        record["usage"] = usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        body_bytes = json.dumps({"object": "list", "data": data, "model": deployment.model, "usage": usage}).encode()
        if fault and fault.kind == "cut":  # half a JSON body, then the connection drops
            return _EventStream([body_bytes[: len(body_bytes) // 2], None], headers=headers, media_type="application/json")
        return Response(body_bytes, 200, headers, media_type="application/json")

    async def _responses(self, request: Request) -> Response:
        """The Responses API (`POST /openai/v1/responses`): the request's `input` and `instructions` become the chat
        messages the engine answers (the same engine, tools and faults as Chat Completions), checked by the model
        family's Responses rules; the answer is a `response` object or its stream of typed events."""
        admitted = await self._admit_v1(request, "responses")
        if isinstance(admitted, Response):
            return admitted
        request_id, headers, api_version, claims, deployment, body = admitted
        if "input" not in body:
            return JSONResponse(_missing("input"), 400, headers)
        settings = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        record = {"kind": "responses", "api": "v1", "deployment": deployment.name, "api_version": api_version,
                  "body": body, "headers": {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
                  "token_claims": {name: claims.get(name) for name in RECORDED_CLAIMS}, "request_id": request_id,
                  "messages": None, "tools": _responses_tool_names(body.get("tools")),
                  "tool_choice": body.get("tool_choice"), "tool_messages": [], "tool_calls": [],
                  "reasoning_effort": None, "reasoning_tokens": None, "reasoning_summary": settings.get("summary"),
                  "summary": None, "store": body.get("store"), "user": body.get("user"),
                  "user_security_context": body.get("user_security_context"), "fault": None,
                  "peer": f"{request.client.host}:{request.client.port}" if request.client else None}
        self.requests.append(record)

        family = family_capabilities(deployment.model)
        error = _check_responses_body(body, family, deployment.model)
        if error:
            return JSONResponse(error, 400, headers)
        messages, error = _responses_messages(body)
        if error:
            return JSONResponse(error, 400, headers)
        record["messages"] = messages
        record["tool_messages"] = [m for m in messages if m.get("role") == "tool"]
        tools, tool_choice = _responses_tools(body)
        if tools is not None:
            error = _check_tools({"tools": tools, "tool_choice": tool_choice,
                                  "parallel_tool_calls": body.get("parallel_tool_calls")})
            if error:
                return JSONResponse(_in_responses_terms(error), 400, headers)
        requested = body.get("max_output_tokens")
        if isinstance(requested, int) and not isinstance(requested, bool) and requested < MIN_OUTPUT_TOKENS:
            return JSONResponse(_invalid(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                                         f"{MIN_OUTPUT_TOKENS}, but got {requested} instead.", "max_output_tokens",
                                         "integer_below_min_value"), 400, headers)
        chat = ChatRequest(deployment=deployment, messages=messages, max_tokens=requested,
                           temperature=body.get("temperature"), stream=bool(body.get("stream")), top_p=body.get("top_p"),
                           body=body, tools=tools, tool_choice=tool_choice if tools else None,
                           parallel_tool_calls=body.get("parallel_tool_calls") if tools else None)
        error = _check_request(chat, requested, "max_output_tokens", family)
        if error:
            return JSONResponse(_in_responses_terms(error), 400, headers)
        try:
            prompt_tokens = await run_in_threadpool(self.engine.count_prompt_tokens, chat)
        except UnreadableImage:
            return JSONResponse(_invalid("You uploaded an unsupported image. Please make sure your image is valid.",
                                         "input", "invalid_image_format"), 400, headers)
        window = deployment.context_window
        if prompt_tokens >= window or prompt_tokens + (requested or 0) > window:
            return JSONResponse(RESPONSES_CONTEXT_ERROR, 400, headers)
        limit = min(requested or deployment.max_output_tokens, deployment.max_output_tokens, window - prompt_tokens)
        record["prompt_tokens"] = prompt_tokens
        record["image_tokens"] = await run_in_threadpool(count_image_tokens, messages, deployment.model)
        headers.update(self._rate_headers(prompt_tokens + limit))
        effort = (settings.get("effort") or family.default_effort) if family.reasoning else None
        reasoning = min(REASONING_TOKENS.get(effort, 0), limit)
        record["reasoning_effort"], record["reasoning_tokens"] = effort, reasoning
        mode = settings.get("summary") or settings.get("generate_summary")
        # A summary when asked for, the model reasoned, and the family writes summaries (a `reasoning_summaries` flag
        # in config/capabilities.py, where there is one); summaries are "not guaranteed", none for none/minimal.
        writes = getattr(family, "reasoning_summaries", True)
        summary = (_reasoning_summary(messages, mode) if mode and writes and reasoning
                   and effort not in ("none", "minimal") else None)
        record["summary"] = summary
        chat.max_tokens = limit - reasoning
        try:
            fault = self.faults.next_fault(last_user_text(messages))
        except (TypeError, ValueError) as exc:
            return JSONResponse(_invalid(f"Bad emulator fault marker: {exc}", "input"), 400, headers)
        record["fault"] = fault.kind if fault else None
        if fault:
            log.info("injecting fault %s into responses request %s", fault.kind, request_id)
            if fault.kind == "context_length":
                return JSONResponse(RESPONSES_CONTEXT_ERROR, 400, headers)
            refusal = await self._refusal(fault, api_version or "v1", window, headers, operation="Responses_Create")
            if refusal:
                return refusal
        admit = getattr(self.engine, "admit", None)
        if admit is not None and not admit():
            wait = getattr(self.engine, "retry_after_seconds", 1)
            return JSONResponse({"error": {"code": "429", "message": "The local model is busy with other requests. "
                                           f"Please retry after {wait} seconds."}}, 429,
                                {**headers, "retry-after": str(wait), "retry-after-ms": str(wait * 1000)})
        shell = _ResponseShell(id="resp_" + secrets.token_hex(24), created_at=int(time.time()),
                               model=_reported_model(deployment.model), body=body,
                               reasoning={"effort": effort, "summary": mode} if family.reasoning else
                               {"effort": None, "summary": None})
        events = self._response_events(chat, fault, shell, prompt_tokens, record, reasoning, summary)
        if chat.stream:
            return _EventStream(_as_sse(events), headers=headers, media_type="text/event-stream")
        final = None
        async with contextlib.aclosing(events):
            async for event in events:
                if event is None:  # "cut": half a JSON body, then the connection drops
                    partial = json.dumps(shell.response("in_progress", [], None)).encode()
                    return _EventStream([partial[: len(partial) // 2], None], headers=headers,
                                        media_type="application/json")
                final = event
        return JSONResponse(final["response"], 200, headers)

    async def _response_events(self, chat: ChatRequest, fault: Fault | None, shell: "_ResponseShell",
                               prompt_tokens: int, record: dict, reasoning: int,
                               summary: list[str] | None) -> AsyncIterator[dict | None]:
        """The Responses stream's events in OpenAI's order (the non-streamed answer is the last one's `response`):
        created, in_progress; the reasoning item (with its summary part and deltas when a summary was asked for);
        the message item (content part, one text delta per token) or one function_call item per tool call
        (argument deltas); then completed, or incomplete when the limit or a content filter ended the answer.
        A None item means: drop the connection here (the "cut" fault)."""
        events = _Sequence()
        output: list[dict] = []
        yield events.next("response.created", response=shell.response("in_progress", [], None))
        yield events.next("response.in_progress", response=shell.response("in_progress", [], None))
        if reasoning:
            item = {"id": "rs_" + secrets.token_hex(24), "type": "reasoning", "summary": []}
            where = {"item_id": item["id"], "output_index": len(output)}
            output.append(item)
            yield events.next("response.output_item.added", output_index=where["output_index"], item=dict(item))
            for number, text in enumerate(summary or ()):
                at = {**where, "summary_index": number}
                yield events.next("response.reasoning_summary_part.added", **at,
                                  part={"type": "summary_text", "text": ""})
                for delta in _summary_deltas(text):
                    yield events.next("response.reasoning_summary_text.delta", **at, delta=delta)
                yield events.next("response.reasoning_summary_text.done", **at, text=text)
                part = {"type": "summary_text", "text": text}
                yield events.next("response.reasoning_summary_part.done", **at, part=part)
                item["summary"].append(part)
            yield events.next("response.output_item.done", output_index=where["output_index"], item=item)
        message, call, texts, visible, finish = None, None, [], 0, "stop"
        calls = _ToolCalls(record)
        async for piece in self._pieces(chat, fault):
            if isinstance(piece, _Finish):
                finish = piece.reason
                break
            visible += _tokens_of(piece)
            if isinstance(piece, ToolCallPiece):
                calls.add(piece)
                if piece.id is not None:  # a new call: the one before it is complete
                    if call is not None:
                        for event in _close_call(events, call, output, "completed"):
                            yield event
                    call = {"id": "fc_" + secrets.token_hex(24), "type": "function_call", "status": "in_progress",
                            "arguments": "", "call_id": piece.id, "name": piece.name}
                    output.append(call)
                    yield events.next("response.output_item.added", output_index=len(output) - 1, item=dict(call))
                if piece.arguments:
                    call["arguments"] += piece.arguments
                    yield events.next("response.function_call_arguments.delta", item_id=call["id"],
                                      output_index=output.index(call), delta=piece.arguments)
                continue
            if message is None:
                message = {"id": "msg_" + secrets.token_hex(24), "type": "message", "status": "in_progress",
                           "content": [], "role": "assistant"}
                output.append(message)
                yield events.next("response.output_item.added", output_index=len(output) - 1, item=dict(message))
                yield events.next("response.content_part.added", item_id=message["id"], output_index=len(output) - 1,
                                  content_index=0, part={"type": "output_text", "annotations": [], "logprobs": [],
                                                         "text": ""})
            texts.append(piece)
            yield events.next("response.output_text.delta", item_id=message["id"], output_index=output.index(message),
                              content_index=0, delta=piece, logprobs=[])
        record["usage"] = usage = _responses_usage(prompt_tokens, reasoning + visible, reasoning)
        if finish == "cut":
            yield None
            return
        ended = "incomplete" if finish in ("length", "content_filter") else "completed"
        if call is not None:
            for event in _close_call(events, call, output, ended):
                yield event
        if message is not None:
            where = {"item_id": message["id"], "output_index": output.index(message), "content_index": 0}
            text = "".join(texts)
            yield events.next("response.output_text.done", **where, text=text, logprobs=[])
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            yield events.next("response.content_part.done", **where, part=part)
            message.update(status=ended, content=[part])
            yield events.next("response.output_item.done", output_index=where["output_index"], item=message)
        reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish)
        final = shell.response(ended, output, usage, reason)
        record["output"] = output
        yield events.next("response.completed" if ended == "completed" else "response.incomplete", response=final)

    async def _authenticate(self, request: Request, verifier: TokenVerifier | None = None) -> tuple[dict, dict | None]:
        """(claims of the verified token, None); ({}, None) for the right api-key; or ({}, Azure's 401 body). The
        classic routes' verifier takes Cognitive Services tokens only; the v1 routes pass theirs (either audience)."""
        key = request.headers.get("api-key")
        if key is not None:
            ok = self._api_key is not None and hmac.compare_digest(key.encode(), self._api_key.encode())
            return {}, None if ok else BAD_API_KEY
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return {}, UNAUTHORIZED
        try:  # in a worker thread: the first use fetches the JWKS with a blocking HTTPS call
            return await run_in_threadpool((verifier or self._verifier).verify, token.strip()), None
        except jwt.PyJWTError as exc:
            log.warning("rejected access token: %s", type(exc).__name__)  # never the token itself
            return {}, UNAUTHORIZED

    async def _refusal(self, fault: Fault, api_version: str, window: int, headers: dict,
                       operation: str = "ChatCompletions_Create") -> Response | None:
        """The error response of a fault that fails the request before any answer; None for faults in the answer."""
        if fault.kind == "429":
            seconds = fault.retry_after
            message = (f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} "
                       "have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry after "
                       f"{seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to "
                       "further increase the default rate limit.")
            retry = {"retry-after": str(seconds), "retry-after-ms": str(seconds * 1000), "x-ratelimit-remaining-requests": "0"}
            return JSONResponse({"error": {"code": "429", "message": message}}, 429, {**headers, **retry})
        if fault.kind == "timeout":
            await asyncio.sleep(fault.seconds)  # the client's own timeout is meant to fire first
            return JSONResponse(TIMEOUT, 408, headers)
        if fault.kind == "prompt_filter":
            result = _prompt_filter_results(fault)[0]["content_filter_results"]
            return JSONResponse({"error": {"message": PROMPT_FILTERED, "type": None, "param": "prompt", "code": "content_filter",
                                           "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                                         "content_filter_result": result}}}, 400, headers)
        if fault.kind == "500":
            return JSONResponse(SERVER_ERROR, 500, headers)
        if fault.kind == "context_length":
            return JSONResponse(_context_error(window, window + 1, None), 400, headers)
        return None

    async def _pieces(self, chat: ChatRequest, fault: Fault | None) -> AsyncIterator[str | ToolCallPiece | _Finish]:
        """The engine's pieces (run in a worker thread), capped at max_tokens and cut short by answer faults;
        the last item is always a _Finish ("tool_calls" instead of "stop" when the answer called tools). No room left
        after reasoning (max_tokens 0): an empty answer at "length", the engine never asked."""
        if chat.max_tokens <= 0:
            yield _Finish("length")
            return
        ends = fault.kind if fault and fault.kind in ("cut", "completion_filter") else None
        generator = self.engine.generate(chat)
        chunks, tokens, called = 0, 0, False
        stop = threading.Event()
        try:
            async for piece in _from_worker_thread(generator, stop):
                if ends and chunks >= fault.after_chunks:
                    break
                if piece:
                    yield piece
                    chunks += 1
                    tokens += _tokens_of(piece)
                    called = called or isinstance(piece, ToolCallPiece)
                if tokens >= chat.max_tokens:
                    yield _Finish("length")
                    return
            default = "tool_calls" if called else "stop"
            yield _Finish({"cut": "cut", "completion_filter": "content_filter"}.get(ends, default))
        finally:
            stop.set()  # the worker closes the generator: a local model stops when the answer ends early or the client leaves

    async def _stream(self, chat: ChatRequest, fault: Fault | None, meta: dict, prompt_tokens: int,
                      include_usage: bool, record: dict, reasoning: int = 0) -> AsyncIterator[bytes | None]:
        """SSE events in Azure's order: prompt filter results, role, one chunk per token, finish, usage, [DONE].
        A None item means: drop the connection here (the "cut" fault)."""
        chunk = {**meta, "object": "chat.completion.chunk"}
        yield _sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                    "prompt_filter_results": _prompt_filter_results()})
        count, started, finish = 0, False, None
        calls = _ToolCalls(record)
        async for item in self._pieces(chat, fault):
            if isinstance(item, ToolCallPiece):
                calls.add(item)
                delta = {"tool_calls": [_tool_call_delta(item)]}
                if not started:  # the role comes with the first tool call, as Azure sends it
                    delta = {"content": None, "refusal": None, "role": "assistant", **delta}
                started = True
                count += item.tokens
                yield _sse({**chunk, "choices": [_choice(delta=delta, content_filter_results={})]})
                continue
            if not started:  # the role chunk comes with the first token (or the end)
                started = True
                delta = {"content": "", "refusal": None, "role": "assistant"}
                yield _sse({**chunk, "choices": [_choice(delta=delta, content_filter_results={})]})
            if isinstance(item, _Finish):
                finish = item.reason
            else:
                count += 1
                yield _sse({**chunk, "choices": [_choice(delta={"content": item}, content_filter_results=_filter_results())]})
        record["usage"] = usage = _usage(prompt_tokens, reasoning + count, reasoning)
        if finish == "cut":
            yield None
            return
        results = _filter_results(fault) if finish == "content_filter" else {}
        yield _sse({**chunk, "choices": [_choice(delta={}, finish_reason=finish, content_filter_results=results)]})
        if include_usage:
            yield _sse({**chunk, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    async def _complete(self, chat: ChatRequest, fault: Fault | None, meta: dict, prompt_tokens: int, record: dict,
                        headers: dict, reasoning: int = 0) -> Response:
        items = [item async for item in self._pieces(chat, fault)]
        pieces, finish = items[:-1], items[-1].reason
        texts = [piece for piece in pieces if isinstance(piece, str)]
        calls = _ToolCalls(record)
        for piece in pieces:
            if isinstance(piece, ToolCallPiece):
                calls.add(piece)
        visible = sum(_tokens_of(piece) for piece in pieces)
        record["usage"] = usage = _usage(prompt_tokens, reasoning + visible, reasoning)
        message = {"annotations": [], "content": "".join(texts), "refusal": None, "role": "assistant"}
        if calls.calls:
            message["content"] = message["content"] or None
            message["tool_calls"] = calls.calls
        results = _filter_results(fault if finish == "content_filter" else None)
        body = json.dumps({**meta, "object": "chat.completion", "prompt_filter_results": _prompt_filter_results(),
                           "choices": [_choice(message=message, finish_reason=finish, content_filter_results=results)],
                           "usage": usage}).encode()
        if finish == "cut":  # half a JSON body, then the connection drops
            return _EventStream([body[: len(body) // 2], None], headers=headers, media_type="application/json")
        return Response(body, 200, headers, media_type="application/json")

    def _rate_headers(self, tokens: int) -> dict:
        minute = int(time.time() // 60)
        used = self._minute[1:] if self._minute[0] == minute else [0, 0]
        self._minute = [minute, used[0] + 1, used[1] + tokens]
        return {"x-ratelimit-limit-requests": str(REQUESTS_PER_MINUTE), "x-ratelimit-limit-tokens": str(TOKENS_PER_MINUTE),
                "x-ratelimit-remaining-requests": str(max(0, REQUESTS_PER_MINUTE - self._minute[1])),
                "x-ratelimit-remaining-tokens": str(max(0, TOKENS_PER_MINUTE - self._minute[2]))}

    # ---- control routes (the same test knobs over HTTP): EmulatorControls in localdev/faults.py ----

    async def _engine_route(self, request: Request) -> Response:
        engine = self.engine
        if request.method == "POST":
            if not hasattr(engine, "tokens_per_second"):
                return JSONResponse({"error": f"engine {engine.name!r} has no pacing settings"}, 409)
            try:
                spec = dict(await request.json())
                ttft = float(spec.get("time_to_first_token", engine.time_to_first_token))
                rate = spec.get("tokens_per_second", engine.tokens_per_second)
                engine.time_to_first_token, engine.tokens_per_second = ttft, float(rate) if rate else None
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad engine settings: {exc}"}, 400)
        return JSONResponse({"engine": engine.name, "time_to_first_token": getattr(engine, "time_to_first_token", None),
                             "tokens_per_second": getattr(engine, "tokens_per_second", None)})


# ---- Azure request checks and response shapes ----
_DONE = object()


def _tokens_of(piece: str | ToolCallPiece) -> int:
    return piece.tokens if isinstance(piece, ToolCallPiece) else 1


class _ToolCalls:
    """The tool calls of one answer, assembled from their pieces in Azure's `message.tool_calls` shape and kept in
    the request's record (id, name, arguments) for tests."""

    def __init__(self, record: dict) -> None:
        self.calls: list[dict] = []
        self._record = record
        self._by_index: dict[int, dict] = {}

    def add(self, piece: ToolCallPiece) -> None:
        call = self._by_index.get(piece.index)
        if call is None:
            call = {"id": piece.id, "type": "function", "function": {"name": piece.name, "arguments": ""}}
            self._by_index[piece.index] = call
            self.calls.append(call)
            self._record["tool_calls"].append(call)
        call["function"]["arguments"] += piece.arguments


def _tool_call_delta(piece: ToolCallPiece) -> dict:
    """A streamed tool call delta: index, id, type and name with empty arguments first, then argument fragments."""
    if piece.id is not None:
        return {"index": piece.index, "id": piece.id, "type": "function",
                "function": {"name": piece.name, "arguments": piece.arguments}}
    return {"index": piece.index, "function": {"arguments": piece.arguments}}


def _tool_names(tools: object) -> list[str] | None:
    if not isinstance(tools, list):
        return None
    return [str(((t.get("function") or {}) if isinstance(t, dict) else {}).get("name")) for t in tools]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number" if isinstance(value, float) else "an integer"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _missing(param: str) -> dict:
    return _invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _wrong_type(param: str, expected: str, value: object) -> dict:
    return _invalid(f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.", param,
                    "invalid_type")


def _check_tools(body: dict) -> dict | None:
    """Azure's 400 body for malformed `tools`, `tool_choice` or `parallel_tool_calls`; None when they are fine."""
    tools = body.get("tools")
    if tools is None:
        for key in ("tool_choice", "parallel_tool_calls"):
            if body.get(key) is not None:
                return _invalid(f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.", key)
        return None
    if not isinstance(tools, list):
        return _wrong_type("tools", "an array", tools)
    if not tools:
        return _invalid("Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array "
                        "instead.", "tools", "empty_array")
    if len(tools) > MAX_TOOLS:
        return _invalid(f"Invalid 'tools': array too long. Expected an array with maximum length {MAX_TOOLS}, but got "
                        f"an array with length {len(tools)} instead.", "tools", "array_above_max_length")
    names = []
    for index, tool in enumerate(tools):
        error = _check_tool(tool, f"tools[{index}]")
        if error:
            return error
        names.append(tool["function"]["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            return _invalid(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                            "tool_choice", "invalid_value")
    elif isinstance(choice, dict):
        if "type" not in choice:
            return _missing("tool_choice.type")
        if choice["type"] != "function":
            return _invalid(f"Invalid value: '{choice['type']}'. Supported values are: 'function'.", "tool_choice.type",
                            "invalid_value")
        function = choice.get("function")
        if not isinstance(function, dict) or "name" not in function:
            return _missing("tool_choice.function.name" if isinstance(function, dict) else "tool_choice.function")
        if function["name"] not in names:
            return _invalid(f"Invalid value for 'tool_choice': function '{function['name']}' was not found in 'tools'.",
                            "tool_choice", "invalid_value")
    elif choice is not None:
        return _wrong_type("tool_choice", "one of a string or an object", choice)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        return _wrong_type("parallel_tool_calls", "a boolean", parallel)
    return None


def _check_tool(tool: object, where: str) -> dict | None:
    if not isinstance(tool, dict):
        return _wrong_type(where, "an object", tool)
    if "type" not in tool:
        return _missing(f"{where}.type")
    if tool["type"] != "function":
        return _invalid(f"Invalid value: '{tool['type']}'. Supported values are: 'function'.", f"{where}.type",
                        "invalid_value")
    function = tool.get("function")
    if function is None:
        return _missing(f"{where}.function")
    if not isinstance(function, dict):
        return _wrong_type(f"{where}.function", "an object", function)
    name = function.get("name")
    if name is None:
        return _missing(f"{where}.function.name")
    if not isinstance(name, str):
        return _wrong_type(f"{where}.function.name", "a string", name)
    if len(name) > MAX_TOOL_NAME:
        return _invalid(f"Invalid '{where}.function.name': string too long. Expected a string with maximum length "
                        f"{MAX_TOOL_NAME}, but got a string with length {len(name)} instead.", f"{where}.function.name",
                        "string_above_max_length")
    if not TOOL_NAME.match(name):
        return _invalid(f"Invalid '{where}.function.name': string does not match pattern. Expected a string that "
                        f"matches the pattern '{TOOL_NAME.pattern}'.", f"{where}.function.name", "invalid_value")
    if "description" in function and not isinstance(function["description"], str):
        return _wrong_type(f"{where}.function.description", "a string", function["description"])
    if "strict" in function and function["strict"] is not None and not isinstance(function["strict"], bool):
        return _wrong_type(f"{where}.function.strict", "a boolean", function["strict"])
    parameters = function.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        return _wrong_type(f"{where}.function.parameters", "an object", parameters)
    problem = None
    if parameters.get("type", "object") != "object":
        problem = f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{parameters.get('type')}\"'"
    else:
        try:
            validator = jsonschema.validators.validator_for(parameters, default=jsonschema.Draft202012Validator)
            validator.check_schema(parameters)
        except jsonschema.SchemaError as exc:
            problem = f"{exc.message} at {'/'.join(str(part) for part in exc.path) or 'the top level'}"
    if problem:
        return _invalid(f"Invalid schema for function '{name}': {problem}.", f"{where}.function.parameters",
                        "invalid_function_parameters")
    return None


def _check_tool_messages(messages: list) -> dict | None:
    """Azure's 400 body when assistant `tool_calls` and `tool` messages do not pair up: every tool message answers a
    call of the assistant message just before it (other tool messages aside), and every call gets its answer before
    the conversation goes on."""
    calls: list[str] | None = None  # ids of the latest assistant message's tool calls
    answered: set[str] = set()
    opened = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None:
                return _missing(f"messages[{index}].tool_call_id")
            if calls is None:
                return _invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                                "message with 'tool_calls'.", f"messages.[{index}].role")
            if call_id not in calls:
                return _invalid(f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of "
                                "previous message.", f"messages.[{index}].tool_call_id")
            answered.add(call_id)
            continue
        unanswered = [call_id for call_id in calls or () if call_id not in answered]
        if unanswered:
            return _unanswered(opened, unanswered)
        calls = None
        if role == "assistant" and message.get("tool_calls") is not None:
            tool_calls = message["tool_calls"]
            if not isinstance(tool_calls, list):
                return _wrong_type(f"messages[{index}].tool_calls", "an array", tool_calls)
            for number, call in enumerate(tool_calls):
                error = _check_tool_call(call, f"messages[{index}].tool_calls[{number}]")
                if error:
                    return error
            if tool_calls:
                calls, answered, opened = [call["id"] for call in tool_calls], set(), index
    unanswered = [call_id for call_id in calls or () if call_id not in answered]
    return _unanswered(opened, unanswered) if unanswered else None


def _check_tool_call(call: object, where: str) -> dict | None:
    if not isinstance(call, dict):
        return _wrong_type(where, "an object", call)
    for key in ("id", "type", "function"):
        if key not in call:
            return _missing(f"{where}.{key}")
    if not isinstance(call["id"], str):
        return _wrong_type(f"{where}.id", "a string", call["id"])
    if call["type"] != "function":
        return _invalid(f"Invalid value: '{call['type']}'. Supported values are: 'function'.", f"{where}.type",
                        "invalid_value")
    function = call["function"]
    if not isinstance(function, dict):
        return _wrong_type(f"{where}.function", "an object", function)
    for key in ("name", "arguments"):
        if key not in function:
            return _missing(f"{where}.function.{key}")
        if not isinstance(function[key], str):
            return _wrong_type(f"{where}.function.{key}", "a string", function[key])
    return None


def _unanswered(index: int, call_ids: list[str]) -> dict:
    return _invalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    "'tool_call_id'. The following tool_call_ids did not have response messages: "
                    + ", ".join(call_ids), f"messages.[{index}].role")


async def _from_worker_thread(generator, stop: threading.Event) -> AsyncIterator[str]:
    """The engine's pieces, produced by one worker thread for the whole answer (not one thread hop per token, which
    costs a local model ~10% of its speed), handed to the event loop through a queue. Setting `stop` makes the worker
    close the generator itself, in its own thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def hand_over(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the server is shutting down: nobody is listening any more
            stop.set()

    def produce() -> None:
        try:
            for piece in generator:
                hand_over(piece)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised in the event loop
            hand_over(exc)
        finally:
            generator.close()
            hand_over(_DONE)

    worker = threading.Thread(target=produce, name="engine-generate", daemon=True)
    worker.start()
    while True:
        item = await queue.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _check_request(chat: ChatRequest, requested: object, param: str, family: Capabilities) -> dict | None:
    """Azure's 400 body for a bad token limit (named as sent: `param` is max_completion_tokens or max_tokens), an
    image sent to a text-only model family, or more images than the family takes; None when the request is fine."""
    if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool) or requested < 1):
        return _invalid(f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got "
                        f"{requested!r} instead.", param, "integer_below_min_value")
    cap = chat.deployment.max_output_tokens
    if requested is not None and requested > cap:
        return _invalid(f"{param} is too large: {requested}. This model supports at most {cap} completion tokens, "
                        f"whereas you provided {requested}.", param, "invalid_value")
    images = image_parts(chat.messages)
    if images and not family.accepts_images:
        return _invalid("Invalid content type. image_url is only supported by certain models. The model behind "
                        f"deployment {chat.deployment.name} ({chat.deployment.model}) does not support image input.",
                        "messages", "BadRequest")
    if len(images) > family.max_images:
        return _invalid(f"Too many images in request. Max is {family.max_images}.", "messages", "BadRequest")
    return None


def _check_family(body: dict, family: Capabilities) -> dict | None:
    """Azure's 400 body for a parameter the model family refuses (config/capabilities.py): on reasoning models
    `max_tokens`, temperature/top_p other than 1 and the other sampling parameters; a `reasoning_effort` the family
    does not offer; `stream: true` on a family that cannot stream. None (and null values) when all is accepted."""
    sent = {name: value for name, value in body.items() if value is not None}
    if family.reasoning:
        if "max_tokens" in sent:
            return _unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
        for name, default in DEFAULT_ONLY.items():
            value = sent.get(name, default)
            if isinstance(value, bool) or value != default:
                return _unsupported_value(name, _render(value), f"Only the default ({default}) value is supported.")
        for name in REFUSED_BY_REASONING:
            if name in sent:
                return _unsupported_parameter(name)
    if "reasoning_effort" in sent:
        effort = sent["reasoning_effort"]
        if not family.reasoning_efforts:
            return _unsupported_parameter("reasoning_effort")
        if not isinstance(effort, str):
            return _wrong_type("reasoning_effort", "a string", effort)
        if effort not in family.reasoning_efforts:
            return _unsupported_value("reasoning_effort", f"'{effort}'",
                                      f"Supported values are: {_listed(family.reasoning_efforts)}.")
    if sent.get("stream") and not family.streaming:
        return _unsupported_value("stream", "true", "Supported values are: false.")
    return None


def _unsupported_parameter(param: str, advice: str = "") -> dict:
    return _invalid(f"Unsupported parameter: '{param}' is not supported with this model.{advice}", param,
                    "unsupported_parameter")


def _unsupported_value(param: str, rendered: str, advice: str) -> dict:
    return _invalid(f"Unsupported value: '{param}' does not support {rendered} with this model. {advice}", param,
                    "unsupported_value")


def _render(value: object) -> str:
    """A value as Azure's messages print it: JSON, a whole float without its ".0" (0.0 -> 0, 0.7 -> 0.7)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _listed(values: tuple[str, ...]) -> str:
    """'a', 'b', and 'c' (OpenAI's way of listing supported values)."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _operation_not_supported(operation: str, model: str) -> dict:
    """Azure's 400 body for an operation the deployment's model cannot do (embeddings on a chat model, or chat on an
    embeddings model)."""
    return {"error": {"code": "OperationNotSupported",
                      "message": f"The {operation} operation does not work with the specified model, {model}. Please "
                                 "choose different model and try again. You can learn more about which models can be "
                                 f"used with each operation here: {MODELS_BY_OPERATION}."}}


def _embedding_inputs(value: object, model: str) -> tuple[list[str], list[int], dict | None]:
    """(texts, tokens of each input, None) for the four `input` forms OpenAI accepts (a string, strings, token ids,
    lists of token ids; ids are decoded to text for the engine), or ([], [], Azure's 400 body)."""
    encoding = encoding_for_model(model)
    invalid = [], [], _invalid(INVALID_INPUT)

    def token_ids(ids: list) -> bool:
        return bool(ids) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < encoding.n_vocab for i in ids)

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return invalid
    if all(isinstance(item, str) for item in value):
        if not all(value):
            return invalid
        return value, [len(encoding.encode(text, disallowed_special=())) for text in value], None
    if token_ids(value):
        value = [value]
    if all(isinstance(item, list) and token_ids(item) for item in value):
        return [encoding.decode(ids) for ids in value], [len(ids) for ids in value], None
    return invalid


def _embedding_options(body: dict, deployment: EmbeddingDeployment) -> tuple[int, dict | None]:
    """(vector length, None) from `dimensions` (default the model's native length), with `encoding_format` and `user`
    checked; or (0, Azure's 400 body)."""
    native = native_dimensions(deployment.model, deployment.dimensions)
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not isinstance(dimensions, int) or isinstance(dimensions, bool):
            return 0, _wrong_type("dimensions", "an integer", dimensions)
        if not accepts_dimensions(deployment.model):
            return 0, _invalid("This model does not support specifying dimensions.")
        if dimensions < 1:
            return 0, _invalid(f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got "
                               f"{dimensions} instead.", "dimensions", "integer_below_min_value")
        if dimensions > native:
            return 0, _invalid(f"Invalid 'dimensions': integer above maximum value. Expected a value <= {native}, but "
                               f"got {dimensions} instead.", "dimensions", "integer_above_max_value")
    encoding_format = body.get("encoding_format")
    if encoding_format is not None and encoding_format not in ENCODING_FORMATS:
        return 0, _invalid(f"Invalid value: '{encoding_format}'. Supported values are: 'float' and 'base64'.",
                           "encoding_format", "invalid_value")
    if body.get("user") is not None and not isinstance(body["user"], str):
        return 0, _wrong_type("user", "a string", body["user"])
    return dimensions or native, None


def _embedding_limits(token_counts: list[int], deployment: EmbeddingDeployment) -> dict | None:
    """Azure's 400 body for too many inputs or one input over the token limit; None when the request fits."""
    if len(token_counts) > deployment.max_inputs:
        return _invalid(f"Too many inputs. The max number of inputs is {deployment.max_inputs}.  We hope to increase "
                        "the number of inputs per request soon. Please contact us through an Azure support request at: "
                        "https://go.microsoft.com/fwlink/?linkid=2213926 for further questions.")
    longest = max(token_counts)
    if longest > deployment.max_input_tokens:
        return _embedding_context_error(deployment, longest)
    return None


def _embedding_context_error(deployment: EmbeddingDeployment, tokens: int) -> dict:
    # The model's context is one token more than an input may have (8192 for 8191), and OpenAI's message names it.
    return _invalid(f"This model's maximum context length is {deployment.max_input_tokens + 1} tokens, however you "
                    f"requested {tokens} tokens ({tokens} in your prompt; 0 for the completion). Please reduce your "
                    "prompt; or completion length.", None, "context_length_exceeded")


def _invalid(message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def _context_error(window: int, prompt_tokens: int, requested: int | None) -> dict:
    if requested:
        detail = (f"However, you requested {prompt_tokens + requested} tokens ({prompt_tokens} in the messages, "
                  f"{requested} in the completion). Please reduce the length of the messages or completion.")
    else:
        detail = f"However, your messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages."
    return _invalid(f"This model's maximum context length is {window} tokens. {detail}", "messages", "context_length_exceeded")


def _filter_results(fault: Fault | None = None) -> dict:
    """Per-category content filter verdicts: all safe, or the fault's category filtered at its severity."""
    hit = fault.category if fault else None
    return {c: {"filtered": c == hit, "severity": fault.severity if c == hit else "safe"} for c in FILTER_CATEGORIES}


def _prompt_filter_results(fault: Fault | None = None) -> list[dict]:
    results = {**_filter_results(fault), "jailbreak": {"filtered": False, "detected": False}}
    return [{"prompt_index": 0, "content_filter_results": results}]


def _choice(*, delta: dict | None = None, message: dict | None = None, finish_reason: str | None = None,
            content_filter_results: dict) -> dict:
    choice = {"content_filter_results": content_filter_results, "finish_reason": finish_reason, "index": 0, "logprobs": None}
    return {**choice, "delta": delta} if message is None else {**choice, "message": message}


def _usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict:
    """Azure's usage object; `completion_tokens` includes the hidden `reasoning_tokens` (billed as output)."""
    return {"completion_tokens": completion_tokens,
            "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0,
                                          "reasoning_tokens": reasoning_tokens,
                                          "rejected_prediction_tokens": 0},
            "prompt_tokens": prompt_tokens, "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens}


def _reported_model(model: str) -> str:
    version = MODEL_VERSIONS.get(model)
    return f"{model}-{version}" if version else model


def _sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


# ---- the Responses API: request checks, input conversion and response shapes ----
RESPONSES_CONTEXT_ERROR = _invalid("Your input exceeds the context window of this model. Please adjust your input and "
                                   "try again.", "input", "context_length_exceeded")
USER_PARTS = ("input_text", "input_image", "input_audio", "input_file")
ASSISTANT_PARTS = ("output_text", "refusal")


@dataclass
class _ResponseShell:
    """What every `response` object of one request shares; `response(...)` fills in status, output and usage."""

    id: str
    created_at: int
    model: str
    body: dict
    reasoning: dict

    def response(self, status: str, output: list[dict], usage: dict | None, incomplete: str | None = None) -> dict:
        body = self.body
        return {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "background": False, "completed_at": int(time.time()) if status == "completed" else None,
                "error": None, "incomplete_details": {"reason": incomplete} if incomplete else None,
                "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
                "max_tool_calls": None, "model": self.model, "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls") is not False, "previous_response_id": None,
                "prompt_cache_key": None, "reasoning": self.reasoning, "safety_identifier": None,
                "service_tier": "default", "store": body.get("store") is not False,
                "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}, **(body.get("text") or {})},
                "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
                "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation") or "disabled",
                "usage": usage, "user": body.get("user"), "metadata": body.get("metadata") or {}}


class _Sequence:
    """Numbers the events of one stream (`sequence_number` from 0, as OpenAI counts)."""

    def __init__(self) -> None:
        self.number = 0

    def next(self, kind: str, **fields) -> dict:
        event = {"type": kind, **fields, "sequence_number": self.number}
        self.number += 1
        return event


async def _as_sse(events: AsyncIterator[dict | None]) -> AsyncIterator[bytes | None]:
    """Typed events as OpenAI sends them: an `event:` line naming the type, then the JSON `data:` line; None passes
    through (drop the connection). Closing this closes `events` at once (the engine stops when the client leaves)."""
    async with contextlib.aclosing(events):
        async for event in events:
            if event is None:
                yield None
                return
            yield (b"event: " + event["type"].encode() + b"\ndata: " + json.dumps(event, separators=(",", ":")).encode()
                   + b"\n\n")


def _close_call(events: _Sequence, call: dict, output: list[dict], status: str) -> list[dict]:
    """The events that end one streamed function_call item: its whole arguments, then the item itself."""
    index = output.index(call)
    call["status"] = status
    return [events.next("response.function_call_arguments.done", item_id=call["id"], output_index=index,
                        arguments=call["arguments"]),
            events.next("response.output_item.done", output_index=index, item=dict(call))]


def _responses_usage(input_tokens: int, output_tokens: int, reasoning_tokens: int) -> dict:
    """The Responses usage object; `output_tokens` includes the hidden `reasoning_tokens` (billed as output). Nothing
    is cached here; `cache_write_tokens` is a required field of the openai SDK's InputTokensDetails."""
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens}


def _responses_only(model: str) -> bool:
    """True for a model Azure serves only through the Responses API: the family's `responses_only` flag where
    config/capabilities.py has one, or the emulator's own RESPONSES_ONLY table (either says so)."""
    return bool(getattr(family_capabilities(model), "responses_only", False) or RESPONSES_ONLY.match(model))


def _responses_tool_names(tools: object) -> list[str] | None:
    if not isinstance(tools, list):
        return None
    return [str(t.get("name") if isinstance(t, dict) else None) for t in tools]


def _unknown_parameter(param: str) -> dict:
    return _invalid(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def _check_responses_body(body: dict, family: Capabilities, model: str) -> dict | None:
    """Azure's 400 body for what the Responses API refuses: Chat Completions' own parameters; on reasoning models
    temperature/top_p other than 1; `reasoning` on a model without reasoning, an effort the family does not offer, a
    summary mode it does not take (the gpt-5 series: no "concise"); `stream: true` on a family that cannot stream;
    malformed `user`, `store`, `previous_response_id` (nothing is stored here). None when all is accepted."""
    for name in CHAT_ONLY_PARAMETERS:
        if name in body:
            return _unknown_parameter(name)
    if isinstance(body.get("stream_options"), dict) and "include_usage" in body["stream_options"]:
        return _unknown_parameter("stream_options.include_usage")  # usage always comes with response.completed
    sent = {name: value for name, value in body.items() if value is not None}
    if family.reasoning:
        for name, default in DEFAULT_ONLY.items():
            value = sent.get(name, default)
            if isinstance(value, bool) or value != default:
                return _invalid(f"Unsupported parameter: '{name}' is not supported with this model.", name, None)
    settings = sent.get("reasoning")
    if settings is not None:
        if not isinstance(settings, dict):
            return _wrong_type("reasoning", "an object", settings)
        effort, mode = settings.get("effort"), settings.get("summary", settings.get("generate_summary"))
        for param, value in (("reasoning.effort", effort), ("reasoning.summary", mode)):
            if value is not None and not family.reasoning:
                return _unsupported_parameter(param)
            if value is not None and not isinstance(value, str):
                return _wrong_type(param, "a string", value)
        if effort is not None:
            if not family.reasoning_efforts:
                return _unsupported_parameter("reasoning.effort")
            if effort not in family.reasoning_efforts:
                return _unsupported_value("reasoning.effort", f"'{effort}'",
                                          f"Supported values are: {_listed(family.reasoning_efforts)}.")
        if mode is not None:
            if mode not in SUMMARY_MODES:
                return _invalid(f"Invalid value: '{mode}'. Supported values are: {_listed(SUMMARY_MODES)}.",
                                "reasoning.summary", "invalid_value")
            if mode == "concise" and NO_CONCISE_SUMMARY.match(model):
                supported = tuple(m for m in SUMMARY_MODES if m != "concise")
                return _unsupported_value("reasoning.summary", "'concise'",
                                          f"Supported values are: {_listed(supported)}.")
    if sent.get("stream") and not family.streaming:
        return _unsupported_value("stream", "true", "Supported values are: false.")
    for name, kind, expected in (("user", str, "a string"), ("store", bool, "a boolean"), ("stream", bool, "a boolean"),
                                 ("instructions", str, "a string")):
        if name in sent and not isinstance(sent[name], kind):
            return _wrong_type(name, expected, sent[name])
    if "user_security_context" in sent and not isinstance(sent["user_security_context"], dict):
        return _wrong_type("user_security_context", "an object", sent["user_security_context"])
    requested = sent.get("max_output_tokens")
    if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool)):
        return _wrong_type("max_output_tokens", "an integer", requested)
    if "previous_response_id" in sent:
        return _invalid(f"Previous response with id '{sent['previous_response_id']}' not found.",
                        "previous_response_id", "previous_response_not_found")
    return None


def _responses_messages(body: dict) -> tuple[list[dict], dict | None]:
    """(the chat `messages` the engine answers, None) from `instructions` (a system message first) and `input` (a
    string: one user message; or items: messages with input_text/input_image or output_text parts, function_call
    items as an assistant message's `tool_calls`, function_call_output items as `tool` messages; reasoning items and
    item references of earlier turns are skipped); or ([], Azure's 400 body)."""
    messages: list[dict] = []
    if body.get("instructions") is not None:
        messages.append({"role": "system", "content": body["instructions"]})
    items = body["input"]
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}], None
    if not isinstance(items, list):
        return [], _wrong_type("input", "a string or an array", items)
    if not items:
        return [], _invalid("Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty "
                            "array instead.", "input", "empty_array")
    calls: dict[str, str] = {}  # call_id -> function name, in order
    answered: set[str] = set()
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            return [], _wrong_type(where, "an object", item)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                return [], _invalid(f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system', "
                                    "and 'developer'.", f"{where}.role", "invalid_value")
            content, error = _responses_content(item.get("content"), role, where)
            if error:
                return [], error
            messages.append({"role": role, "content": content})
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if key not in item:
                    return [], _missing(f"{where}.{key}")
                if not isinstance(item[key], str):
                    return [], _wrong_type(f"{where}.{key}", "a string", item[key])
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant":  # text and calls of one turn: one chat message
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            calls[item["call_id"]] = item["name"]
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id is None:
                return [], _missing(f"{where}.call_id")
            if call_id not in calls:
                return [], _invalid(f"No tool call found for function call output with call_id {call_id}.", "input")
            if "output" not in item:
                return [], _missing(f"{where}.output")
            answered.add(call_id)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item["output"])})
        elif kind in ("reasoning", "item_reference"):
            continue  # earlier turns' reasoning and references to stored items: nothing the engine reads
        else:
            return [], _invalid(f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                                "'function_call_output', 'reasoning', and 'item_reference'.", f"{where}.type",
                                "invalid_value")
    unanswered = [call_id for call_id in calls if call_id not in answered]
    if unanswered:
        return [], _invalid(f"No tool output found for function call {unanswered[0]}.", "input")
    return messages, None


def _responses_content(content: object, role: str, where: str) -> tuple[object, dict | None]:
    """A message item's content in chat terms: a string stays; parts become `text` and `image_url` parts. Assistant
    turns take output_text/refusal parts, the others input parts, as OpenAI checks."""
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        return None, _wrong_type(f"{where}.content", "a string or an array", content)
    allowed = ASSISTANT_PARTS if role == "assistant" else USER_PARTS
    parts = []
    for number, part in enumerate(content):
        at = f"{where}.content[{number}]"
        if not isinstance(part, dict):
            return None, _wrong_type(at, "an object", part)
        kind = part.get("type")
        if kind not in allowed:
            return None, _invalid(f"Invalid value: '{kind}'. Supported values are: {_listed(allowed)}.", f"{at}.type",
                                  "invalid_value")
        if kind in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                return None, _missing(f"{at}.text") if "text" not in part else _wrong_type(f"{at}.text", "a string",
                                                                                            part["text"])
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            if not isinstance(part.get("image_url"), str):
                return None, _invalid("The emulator takes images as `image_url` (a data URL or a link); file_id "
                                      "images need the Files API, which it does not serve.", f"{at}.image_url",
                                      "invalid_value")
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"],
                                                             "detail": part.get("detail") or "auto"}})
        else:
            return None, _invalid(f"The emulator does not read '{kind}' parts.", f"{at}.type", "invalid_value")
    return parts, None


def _output_text(output: object) -> str:
    """A function_call_output's `output` as the text of a tool message (text parts joined)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(str(p.get("text", "")) for p in output if isinstance(p, dict) and p.get("type") == "input_text")
    return json.dumps(output)


def _responses_tools(body: dict) -> tuple[list[dict] | None, object]:
    """`tools` and `tool_choice` in Chat Completions' shape (name, description, parameters and strict under
    `function`), for the same checks and the same engine; other tool types pass as they are (and are refused)."""
    tools = body.get("tools")
    if tools is None or not isinstance(tools, list):
        return tools, None
    converted = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function" and "function" not in tool:
            function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
            converted.append({"type": "function", "function": function})
        else:
            converted.append(tool)
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        choice = {"type": "function", "function": {"name": choice["name"]}}
    return converted, choice


def _in_responses_terms(error: dict) -> dict:
    """A Chat Completions error body renamed for the Responses API: `tools[0].function.name` is `tools[0].name`
    there, and `messages` is `input`."""
    def rename(text):
        if not isinstance(text, str):
            return text
        text = text.replace(".function.", ".").replace("tool_choice.function", "tool_choice")
        return "input" if text == "messages" else text

    inner = error["error"]
    return {"error": {**inner, "message": rename(inner["message"]), "param": rename(inner.get("param"))}}


def _reasoning_summary(messages: list[dict], mode: str) -> list[str]:
    """The scripted reasoning summary's parts: a bold title and a few sentences about the last user message (or the
    tool results just back); "detailed" adds a second part. Deterministic, so tests can compare it."""
    if messages and messages[-1].get("role") == "tool":
        title = "**Reading the tool results**"
        text = ("The tools have answered. I will quote what each of them returned, naming the tool, and add "
                "nothing of my own.")
    else:
        said = FAULT_MARKER.sub("", last_user_text(messages)).strip()
        if len(said) > 80:
            said = said[:80].rstrip() + "…"
        title = "**Considering the question**"
        text = (f"The person asks about “{said}”. I will answer briefly and directly, repeating what they said, as "
                "the scripted emulator does.")
    parts = [f"{title}\n\n{text}"]
    if mode == "detailed":
        parts.append("**Planning the answer**\n\nNothing else in the conversation changes that, so the answer can "
                     "follow at once, in one short paragraph.")
    return parts


def _summary_deltas(summary: str) -> list[str]:
    """The summary in a few deltas of SUMMARY_WORDS_PER_DELTA words (with their spacing), as the model streams it."""
    words = re.findall(r"\S+\s*", summary)
    return ["".join(words[i:i + SUMMARY_WORDS_PER_DELTA]) for i in range(0, len(words), SUMMARY_WORDS_PER_DELTA)]


# ---- dropping a connection on purpose ----
_cut_on_purpose: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cut_on_purpose", default=None)


class _EventStream(StreamingResponse):
    """A streaming response that can end without completing: a None item closes the connection mid-body."""

    async def __call__(self, scope, receive, send) -> None:
        # Set in the server's task, where uvicorn logs; the body is streamed from a child task sharing this dict.
        _cut_on_purpose.set({"cut": False})
        await super().__call__(scope, receive, send)

    async def stream_response(self, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            if chunk is None:
                _cut_on_purpose.get()["cut"] = True
                return  # uvicorn closes the connection of a response that never completes
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _not_a_deliberate_cut(record: logging.LogRecord) -> bool:
    """Log filter: drops uvicorn's "returned without completing response" error for connections "cut" drops."""
    state = _cut_on_purpose.get()
    return not (state and state["cut"] and "without completing response" in record.getMessage())


def _install_cut_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _not_a_deliberate_cut not in logger.filters:
        logger.addFilter(_not_a_deliberate_cut)
