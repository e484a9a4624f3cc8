"""The Prometheus metrics without a server: the audit listener's counts, buckets and sums from synthetic records and
from real engine turns, bounded labels, the /metrics route's gate (off, token, networks) and the open-session
counter on Streamlit's WebSocket path."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from callbacks.metrics import MAX_LABEL_VALUES, ChatMetrics
from config.settings import AppSettings
from engine import NewMessage
from memory.conversation import Conversation
from tests.unit.test_turn_engine import WHO, choices, rig, settings  # noqa: F401 - fixtures
from web.metrics import metrics_middleware, metrics_route

TOKEN = "a-metrics-token-of-at-least-32-characters"


def call(deployment="gpt-4o", purpose="answer", outcome="ok", prompt=100, completion=20, cost="0.0012",
         latency_ms=1500, ttft_ms=400) -> dict:
    return {"event": "model_call", "deployment": deployment, "purpose": purpose, "outcome": outcome,
            "prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost, "latency_ms": latency_ms,
            "time_to_first_token_ms": ttft_ms, "user_oid": "oid-ada", "conversation_id": "c-1", "chain": "assistant@1"}


def value(metrics: ChatMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_model_calls_count_by_deployment_purpose_and_outcome_with_tokens_cost_and_histograms():
    metrics = ChatMetrics()
    for record in [call(), call(ttft_ms=900, latency_ms=2500), call(purpose="summary", ttft_ms=None, latency_ms=700),
                   call(deployment="gpt-4o-mini", outcome="throttled", prompt=0, completion=0, cost="0",
                        ttft_ms=None, latency_ms=300),
                   call(purpose="embedding", prompt=50, completion=0, cost="0.000001", ttft_ms=None, latency_ms=80)]:
        metrics.record(record)

    assert value(metrics, "chat_model_calls_total", deployment="gpt-4o", purpose="answer", outcome="ok") == 2
    assert value(metrics, "chat_model_calls_total", deployment="gpt-4o", purpose="summary", outcome="ok") == 1
    assert value(metrics, "chat_model_calls_total", deployment="gpt-4o-mini", purpose="answer",
                 outcome="throttled") == 1
    assert value(metrics, "chat_tokens_total", deployment="gpt-4o", purpose="answer", kind="prompt") == 200
    assert value(metrics, "chat_tokens_total", deployment="gpt-4o", purpose="answer", kind="completion") == 40
    assert value(metrics, "chat_tokens_total", deployment="gpt-4o", purpose="embedding", kind="prompt") == 50
    assert value(metrics, "chat_cost_usd_total", deployment="gpt-4o", purpose="answer") == pytest.approx(0.0024)
    # Time to first token: only the calls that streamed one; 0.4 s and 0.9 s.
    ttft = dict(deployment="gpt-4o", purpose="answer")
    assert value(metrics, "chat_time_to_first_token_seconds_count", **ttft) == 2
    assert value(metrics, "chat_time_to_first_token_seconds_sum", **ttft) == pytest.approx(1.3)
    assert value(metrics, "chat_time_to_first_token_seconds_bucket", **ttft, le="0.25") == 0
    assert value(metrics, "chat_time_to_first_token_seconds_bucket", **ttft, le="0.5") == 1
    assert value(metrics, "chat_time_to_first_token_seconds_bucket", **ttft, le="1.0") == 2
    assert value(metrics, "chat_time_to_first_token_seconds_count", deployment="gpt-4o", purpose="summary") == 0
    # Whole calls, whatever their outcome.
    assert value(metrics, "chat_model_call_seconds_count", deployment="gpt-4o", purpose="answer") == 2
    assert value(metrics, "chat_model_call_seconds_sum", deployment="gpt-4o", purpose="answer") == pytest.approx(4.0)
    assert value(metrics, "chat_model_call_seconds_bucket", deployment="gpt-4o", purpose="answer", le="2.0") == 1
    assert value(metrics, "chat_model_call_seconds_count", deployment="gpt-4o-mini", purpose="answer") == 1


def test_reasoning_tokens_have_a_counter_of_their_own_and_stay_inside_the_completion_tokens():
    metrics = ChatMetrics()
    metrics.record(call())  # a model that does not reason: no reasoning series at all
    assert value(metrics, "chat_reasoning_tokens_total", deployment="gpt-4o", purpose="answer") == 0
    for record in [{**call(deployment="gpt-5-mini", prompt=200, completion=1000), "reasoning_tokens": 880},
                   {**call(deployment="gpt-5-mini", purpose="summary", completion=300), "reasoning_tokens": 256},
                   {**call(deployment="gpt-5-mini", outcome="stopped", completion=7), "reasoning_tokens": 0}]:
        metrics.record(record)
    assert value(metrics, "chat_reasoning_tokens_total", deployment="gpt-5-mini", purpose="answer") == 880
    assert value(metrics, "chat_reasoning_tokens_total", deployment="gpt-5-mini", purpose="summary") == 256
    # Billed as output and counted once: the completion tokens already hold them, there is no kind="reasoning".
    assert value(metrics, "chat_tokens_total", deployment="gpt-5-mini", purpose="answer", kind="completion") == 1007
    assert value(metrics, "chat_tokens_total", deployment="gpt-5-mini", purpose="answer", kind="reasoning") == 0
    text = metrics.exposition().decode()
    assert 'chat_reasoning_tokens_total{deployment="gpt-5-mini",purpose="answer"} 880.0' in text


def test_turns_count_by_outcome_and_reason_from_the_audit_events():
    metrics = ChatMetrics()
    events = [{"event": "turn_ended", "outcome": "ok", "failure": None},
              {"event": "turn_ended", "outcome": "ok", "failure": None},
              {"event": "turn_ended", "outcome": "stopped", "failure": None},
              {"event": "turn_ended", "outcome": "failed", "failure": "throttled"},
              {"event": "message_not_sent", "outcome": "not_sent", "reason": "images_not_accepted"},
              {"event": "sign_in_expired", "outcome": "not_sent"},
              {"event": "context_guard", "outcome": "not_sent"},
              {"event": "rate_limited", "outcome": "not_sent"},
              {"event": "budget_refused", "outcome": "not_sent"},
              {"event": "turn_interrupted", "outcome": "interrupted"},
              {"event": "feedback", "score": 1}, {"event": "images_rejected"}]  # not turns
    for record in events:
        metrics.record(record)
    turns = {(s.labels["outcome"], s.labels["reason"]): s.value for family in metrics.registry.collect()
             if family.name == "chat_turns" for s in family.samples if s.name == "chat_turns_total"}
    assert turns == {("ok", ""): 2, ("stopped", ""): 1, ("failed", "throttled"): 1,
                     ("not_sent", "images_not_accepted"): 1, ("not_sent", "sign_in_expired"): 1,
                     ("not_sent", "context_too_long"): 1, ("not_sent", "rate_limited"): 1,
                     ("not_sent", "over_budget"): 1, ("interrupted", ""): 1}


def test_labels_stay_bounded_and_never_carry_people_or_conversations():
    metrics = ChatMetrics()
    for n in range(MAX_LABEL_VALUES + 10):
        metrics.record(call(deployment=f"deployment-{n}"))
    deployments = {s.labels["deployment"] for family in metrics.registry.collect() if family.name == "chat_model_calls"
                   for s in family.samples}
    assert len(deployments) == MAX_LABEL_VALUES + 1 and "other" in deployments
    assert value(metrics, "chat_model_calls_total", deployment="other", purpose="answer", outcome="ok") == 10
    text = metrics.exposition().decode()
    assert "oid-ada" not in text and "c-1" not in text and "assistant@1" not in text


def test_the_exposition_follows_prometheus_naming():
    metrics = ChatMetrics()
    metrics.record(call())
    metrics.record({"event": "turn_ended", "outcome": "ok"})
    metrics.sign_in("ok")
    metrics.session_opened()
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert families == {"chat_turns": "counter", "chat_model_calls": "counter", "chat_tokens": "counter",
                        "chat_reasoning_tokens": "counter", "chat_cost_usd": "counter", "chat_time_to_first_token_seconds": "histogram",
                        "chat_model_call_seconds": "histogram", "chat_tool_calls": "counter",
                        "chat_open_sessions": "gauge", "chat_sign_ins": "counter"}
    assert value(metrics, "chat_sign_ins_total", outcome="ok") == 1
    assert value(metrics, "chat_sign_ins_total", outcome="rejected") == 0  # there from the start
    assert value(metrics, "chat_open_sessions") == 1


def test_engine_turns_are_counted_as_the_person_got_them(rig):  # noqa: F811 - the fixture
    metrics = ChatMetrics()
    rig.engine.audit.listeners.append(metrics.record)
    rig.script.answers += ["one two three", ("filter", "something violent"), "four five six seven"]
    conversation = Conversation()
    list(rig.engine.run(WHO, conversation, NewMessage("first"), choices(rig.settings)))
    list(rig.engine.run(WHO, conversation, NewMessage("second"), choices(rig.settings)))
    stopped = rig.engine.run(WHO, conversation, NewMessage("third"), choices(rig.settings))
    next(stopped), next(stopped)
    stopped.close()  # Stop while the answer streams
    list(rig.engine.run(WHO, conversation, NewMessage("   "), choices(rig.settings)))  # nothing to send

    ended = [r for r in rig.audit.records if r["event"] == "turn_ended"]
    assert [(r["outcome"], r["failure"], r["saved"]) for r in ended] == [
        ("ok", None, True), ("filtered", "answer_filtered", True), ("stopped", None, True)]
    assert {r["message_id"] for r in ended} <= {t.id for t in conversation.turns}
    assert value(metrics, "chat_turns_total", outcome="ok", reason="") == 1
    assert value(metrics, "chat_turns_total", outcome="filtered", reason="answer_filtered") == 1
    assert value(metrics, "chat_turns_total", outcome="stopped", reason="") == 1
    assert value(metrics, "chat_turns_total", outcome="not_sent", reason="nothing_to_send") == 1
    calls = [r for r in rig.audit.records if r["event"] == "model_call"]
    assert value(metrics, "chat_model_calls_total", deployment="gpt-4o", purpose="answer", outcome="ok") == \
        sum(r["outcome"] == "ok" for r in calls)
    assert value(metrics, "chat_tokens_total", deployment="gpt-4o", purpose="answer", kind="completion") == \
        sum(r["completion_tokens"] for r in calls)


# -- the route and the session counter ---------------------------------------------------------------------------------
def _client(metrics: ChatMetrics | None, peer: str = "203.0.113.9", **settings) -> TestClient:
    app = Starlette(routes=[metrics_route(AppSettings(**settings), metrics)])
    return TestClient(app, client=(peer, 40000))


def test_metrics_are_off_unless_configured():
    assert _client(ChatMetrics()).get("/metrics").status_code == 404
    assert _client(None, metrics_token=TOKEN).get("/metrics").status_code == 404


def test_the_token_opens_metrics_and_anything_else_is_401():
    metrics = ChatMetrics()
    metrics.record(call())
    client = _client(metrics, metrics_token=TOKEN)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "chat_" not in refused.text
    assert client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain; version=")
    assert ok.headers["cache-control"] == "no-store"
    assert 'chat_model_calls_total{deployment="gpt-4o",outcome="ok",purpose="answer"} 1.0' in ok.text
    assert client.post("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_internal_networks_read_without_the_token_but_never_through_a_proxy():
    metrics = ChatMetrics()
    settings = dict(metrics_networks="10.0.0.0/8", trusted_proxies="10.0.0.5")
    assert _client(metrics, "10.1.2.3", **settings).get("/metrics").status_code == 200
    assert _client(metrics, "203.0.113.9", **settings).get("/metrics").status_code == 403
    # Through the proxy: its address is in the network, but what came through it is not internal by address.
    via_proxy = _client(metrics, "10.0.0.5", **settings)
    assert via_proxy.get("/metrics", headers={"x-forwarded-for": "10.9.9.9"}).status_code == 403
    both = _client(metrics, "10.0.0.5", metrics_token=TOKEN, **settings)
    assert both.get("/metrics").status_code == 401
    assert both.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_open_sessions_follow_streamlits_websocket_connections():
    metrics = ChatMetrics()

    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()  # until the page says goodbye or goes away
        except WebSocketDisconnect:
            return
        await websocket.close()

    async def refuse(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    app = Starlette(routes=[WebSocketRoute("/_stcore/stream", stream), WebSocketRoute("/other", stream),
                            WebSocketRoute("/app/_stcore/stream", refuse)],
                    middleware=metrics_middleware(metrics))
    assert metrics_middleware(None) == []
    client = TestClient(app)
    with client.websocket_connect("/_stcore/stream") as first, client.websocket_connect("/_stcore/stream"):
        with client.websocket_connect("/other"):
            assert value(metrics, "chat_open_sessions") == 2
        first.send_text("bye")
    assert value(metrics, "chat_open_sessions") == 0
    with pytest.raises(Exception):  # refused before it was accepted: never counted
        with client.websocket_connect("/app/_stcore/stream"):
            pass
    assert value(metrics, "chat_open_sessions") == 0
