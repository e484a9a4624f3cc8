"""Builds the chat model for one deployment, identity and security context: AzureChatOpenAI on the classic API,
ChatOpenAI on the v1 API."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence

import openai
from langchain_core.callbacks import BaseCallbackHandler
from langchain_openai import AzureChatOpenAI, ChatOpenAI

from chains.request_rules import conform
from config.catalog import Deployment
from config.settings import Settings


class _AzureRules:
    """What both model classes add: only what the deployment accepts is sent (chains/request_rules.py: also parameters
    a chain binds later), and Azure's content-filter verdicts are kept when streaming (the base classes keep them only
    for non-streamed calls), so the audit log can say what the filter flagged."""

    deployment_capabilities: Deployment | None = None

    def _get_request_payload(self, input_, *, stop=None, **kwargs) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        return conform(payload, self.deployment_capabilities) if self.deployment_capabilities else payload

    def _get_invocation_params(self, stop=None, **kwargs) -> dict:
        # What callbacks (the audit) see as the call's parameters: the same rules, so the record says what was sent.
        params = super()._get_invocation_params(stop=stop, **kwargs)
        return conform(params, self.deployment_capabilities) if self.deployment_capabilities else params

    def _convert_chunk_to_generation_chunk(self, chunk: dict, default_chunk_class: type,
                                           base_generation_info: dict | None):
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        if generation is None:
            return None
        verdicts = {}
        if chunk.get("prompt_filter_results"):
            verdicts["prompt_filter_results"] = chunk["prompt_filter_results"]
        choices = chunk.get("choices") or []
        if choices and choices[0].get("finish_reason") and choices[0].get("content_filter_results"):
            verdicts["content_filter_results"] = choices[0]["content_filter_results"]
        if verdicts:
            generation.message.response_metadata.update(verdicts)
        return generation


class AzureChatOpenAIWithFilterResults(_AzureRules, AzureChatOpenAI):
    """The classic API: /openai/deployments/{name}/chat/completions?api-version=…"""


class ChatOpenAIOnAzureV1(_AzureRules, ChatOpenAI):
    """The v1 API: /openai/v1/chat/completions with the deployment as `model` (LangChain's recommended path for v1;
    AzureChatOpenAI always adds /deployments/ and api-version)."""


_CLIENTS: dict[tuple, tuple[openai.DefaultHttpxClient, openai.DefaultAsyncHttpxClient]] = {}
_CLIENTS_LOCK = threading.Lock()


def _trust_key() -> tuple:
    """What the HTTP clients' certificate trust was built from (a changed CA bundle gets new clients)."""
    key = []
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(name)
        try:
            stat = os.stat(value) if value else None
        except OSError:
            stat = None
        key.append((value, stat and (stat.st_mtime_ns, stat.st_size)))
    return tuple(key)


def shared_http_clients(endpoint: str) -> tuple[openai.DefaultHttpxClient, openai.DefaultAsyncHttpxClient]:
    """One pair of HTTP clients per endpoint for the whole process. Without them every model built (two per turn)
    makes openai create a sync and an async client of its own, each with its TLS context and connection pool: a third
    of the product's extra server time to the first token over a minimal page (bench/render.py). Tokens and the
    security context are per request, so sharing the connections shares nothing of a person's. The async client is
    not used by the product's (synchronous) chains."""
    key = (endpoint, _trust_key())
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = (openai.DefaultHttpxClient(), openai.DefaultAsyncHttpxClient())
        return _CLIENTS[key]


def build_chat_model(
    settings: Settings,
    deployment: Deployment,
    token_provider: Callable[[], str],
    *,
    user_security_context: Mapping[str, str] | None = None,
    temperature: float | None = None,
    max_output_tokens: int | None = None,
    reasoning_effort: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] | None = None,
    thinking: bool = True,
) -> AzureChatOpenAIWithFilterResults | ChatOpenAIOnAzureV1:
    """A chat model bound to one deployment; every request carries a fresh Entra token and the security context, and
    only the parameters the deployment accepts (`temperature` is dropped for reasoning models; `reasoning_effort`
    falls back to the deployment's default where it offers efforts)."""
    extra_body = {"user_security_context": dict(user_security_context)} if user_security_context else None
    azure = settings.azure_openai
    http_client, http_async_client = shared_http_clients(azure.endpoint)
    common = dict(
        http_client=http_client, http_async_client=http_async_client,
        # tiktoken and LangChain know Azure's "gpt-35" models by OpenAI's "gpt-3.5" name.
        tiktoken_model_name=deployment.model.replace("gpt-35", "gpt-3.5"),
        stream_usage=True,
        # Azure's request id (apim-request-id) reaches the audit record through the response headers.
        include_response_headers=True,
        deployment_capabilities=deployment,
        temperature=temperature if deployment.accepts_sampling else None,
        max_tokens=max_output_tokens,
        reasoning_effort=deployment.effort(reasoning_effort),
        disable_streaming=not deployment.streaming,
        timeout=azure.timeout_seconds,
        max_retries=azure.max_retries,
        extra_body=extra_body,
        callbacks=list(callbacks) if callbacks else None,
    )
    if azure.style == "v1" or deployment.api == "responses":
        # The deployment is the model on v1; the Entra token provider is the key (the client calls it per request).
        # A Responses API deployment is called on v1 whatever the style: Azure serves the Responses API there, and a
        # classic-API app can then compare it side by side with its Chat Completions deployments.
        if deployment.api == "responses":
            # Content as standard blocks: text, and {"type": "reasoning"} blocks with the summary as it streams.
            reasoning = {"effort": common.pop("reasoning_effort")} if deployment.reasoning_efforts else {}
            if thinking and deployment.reasoning_summaries:
                reasoning["summary"] = "auto"  # a summary of the reasoning, never the reasoning itself
            common.pop("reasoning_effort", None)
            return ChatOpenAIOnAzureV1(base_url=azure.v1_base_url, api_key=token_provider, model=deployment.name,
                                       use_responses_api=True, output_version="v1", reasoning=reasoning or None,
                                       **common)
        return ChatOpenAIOnAzureV1(base_url=azure.v1_base_url, api_key=token_provider, model=deployment.name, **common)
    return AzureChatOpenAIWithFilterResults(
        azure_endpoint=azure.endpoint, azure_deployment=deployment.name, api_version=azure.api_version,
        azure_ad_token_provider=token_provider,
        # model= drives token counting and cost; the deployment name alone is not a model name.
        model=deployment.model, **common)
