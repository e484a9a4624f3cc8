"""A streamed chat turn through the model factory, over real TLS, with a real Entra token from the emulator."""
from __future__ import annotations

import os

import jwt
import openai
import pytest

from auth.credentials import app_token_provider
from auth.security_context import SecurityContext
from callbacks.audit import AuditContext, AuditHandler
from chains.assistant import build_assistant
from chains.model_factory import build_chat_model
from localdev.stack import CLIENT_ID, TENANT_ID
from memory.conversation import Conversation, Turn


def test_app_identity_gets_a_cognitive_services_token_from_the_emulator(settings):
    token = app_token_provider(settings.entra)()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://cognitiveservices.azure.com"
    assert claims["appid"] == CLIENT_ID and claims["tid"] == TENANT_ID


def test_streamed_turn_carries_token_security_context_and_usage(settings, emulators):
    deployment = settings.catalog.get("gpt-4o")
    context = SecurityContext(application_name=settings.app.name, source_ip="203.0.113.7")
    model = build_chat_model(settings, deployment, app_token_provider(settings.entra), user_security_context=context.as_payload())
    recorder = AuditHandler(AuditContext(user_oid="u", tenant_id="t", source_ip=None, session="s", conversation_id="c",
                                         chain="assistant@1", deployment="gpt-4o", identity_mode="app"), deployment)
    conversation = Conversation()
    conversation.add(Turn(role="user", content="What is Entra ID?"))

    chunks = list(build_assistant(model).stream({"messages": conversation.model_messages()}, config={"callbacks": [recorder]}))
    text = "".join(chunk.text for chunk in chunks)
    final = sum(chunks[1:], chunks[0])

    assert "What is Entra ID?" in text
    assert len([c for c in chunks if c.text]) > 3, "the answer should arrive in many pieces"
    recorded = emulators.aoai.requests[-1]
    assert recorded["deployment"] == "gpt-4o"
    assert recorded["body"]["stream"] is True
    assert recorded["body"]["user_security_context"] == {"application_name": settings.app.name, "source_ip": "203.0.113.7"}
    assert recorded["body"]["messages"][0]["role"] == "system"
    assert recorded["token_claims"]["appid"] == CLIENT_ID
    assert "authorization" not in {k.lower() for k in recorded["headers"]}
    usage = final.usage_metadata
    assert usage["output_tokens"] == len([c for c in chunks if c.text])
    assert usage["input_tokens"] > 0
    (record,) = recorder.records
    assert record["prompt_tokens"] == usage["input_tokens"] and record["completion_tokens"] == usage["output_tokens"]
    assert record["time_to_first_token_ms"] is not None and record["latency_ms"] >= record["time_to_first_token_ms"]


def test_unknown_deployment_is_a_404(settings):
    deployment = settings.catalog.get("gpt-4o").model_copy(update={"name": "not-deployed"})
    model = build_chat_model(settings, deployment, app_token_provider(settings.entra))
    with pytest.raises(openai.NotFoundError):
        model.invoke("hello")


def test_rejected_token_is_an_authentication_error(settings):
    model = build_chat_model(settings, settings.catalog.get("gpt-4o"), lambda: "not-a-token")
    with pytest.raises(openai.AuthenticationError):
        model.invoke("hello")


def test_models_share_one_http_client_and_its_connections(settings, emulators):
    """Each turn builds its models afresh; they share the process's HTTP client (no TLS context built per model), so
    a later call (another person's security context and token) can reuse the connection an earlier one opened. Shown
    with unstreamed calls (the summary call): openai closes a stream's response at [DONE] before reading the end of
    the body, so httpx cannot keep that connection."""
    deployment = settings.catalog.get("gpt-4o")
    provider = app_token_provider(settings.entra)
    first = build_chat_model(settings, deployment, provider, user_security_context={"end_user_id": "person-a"})
    second = build_chat_model(settings, deployment, provider, user_security_context={"end_user_id": "person-b"})
    assert first.root_client._client is second.root_client._client
    before = len(emulators.aoai.requests)
    for model in (first, second):
        assert model.invoke("Say something short").content
    calls = emulators.aoai.requests[before:]
    assert [c["body"]["user_security_context"]["end_user_id"] for c in calls] == ["person-a", "person-b"]
    assert calls[0]["peer"] == calls[1]["peer"], "the second call opened a new connection"


def test_a_changed_certificate_bundle_gets_new_http_clients(settings, monkeypatch, tmp_path):
    from chains.model_factory import shared_http_clients

    endpoint = settings.azure_openai.endpoint
    before = shared_http_clients(endpoint)
    assert shared_http_clients(endpoint) is before
    bundle = tmp_path / "other-ca.pem"
    bundle.write_text(open(os.environ["SSL_CERT_FILE"]).read())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert shared_http_clients(endpoint) is not before
