"""Prometheus metrics scraped over real HTTP and checked against the audit log: turns through the page (AppTest) and
the Azure OpenAI emulator, sign-ins through the routes; then the running app (`streamlit run app.py`): the token gate,
sign-ins and open page sessions (Streamlit's own WebSocket)."""
from __future__ import annotations

import json
import ssl
import time
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from websockets.sync.client import connect

from auth.routes import build_routes
from auth.services import auth_services
from auth.sessions import SESSION_COOKIE
from auth.signin import SIGNIN_COOKIE
from callbacks.metrics import CALL_BUCKETS, TTFT_BUCKETS, process_metrics
from config import load_settings
from localdev.server import start_in_thread
from tests.integration.apptest import open_page
from tests.integration.real_app import running_app
from tests.integration.signin import entra_answer, sign_in
from web import security_middleware
from web.metrics import metrics_middleware, metrics_route

TOKEN = "metrics-token-for-the-scraper-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(stack_env, monkeypatch):
    """The stack's settings with metrics on (a scraper token); the page reads the same environment."""
    monkeypatch.setenv("APP_METRICS_TOKEN", TOKEN)
    return load_settings()


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    reply = client.get("/metrics", headers=BEARER)
    assert reply.status_code == 200, reply.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def delta(after: dict, before: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def total(after: dict, before: dict, name: str, **labels) -> float:
    """The change of every series of `name` whose labels include `labels`."""
    return sum(value - before.get(key, 0.0) for key, value in after.items()
               if key[0] == name and set(labels.items()) <= key[1])


def test_a_scrape_after_a_few_turns_matches_the_audit_log(settings, signed_in, emulators):
    metrics = process_metrics()  # the one the page's audit log reports to (one per process, as in the app)
    services = auth_services(settings)
    # The routes and middleware as app.py puts them together, served over HTTPS in this process (AppTest's page runs
    # here, so its audit log and this /metrics share the process's metrics as in the app).
    app = Starlette(routes=[metrics_route(settings.app, metrics),
                            *build_routes(services.signin, services.sessions, settings.app.public_url,
                                          on_sign_in=metrics.sign_in)],
                    middleware=[*security_middleware(settings), *metrics_middleware(metrics)])
    server = start_in_thread(app, emulators.tls)
    verify = ssl.create_default_context(cafile=str(emulators.tls.ca_file))
    try:
        with httpx.Client(base_url=server.url, verify=verify, timeout=15, follow_redirects=False) as http:
            refused = http.get("/metrics")
            assert refused.status_code == 401 and "chat_" not in refused.text
            assert refused.headers["x-content-type-options"] == "nosniff"  # behind the same middleware as the app
            before = scrape(http)
            assert sign_in(None, emulators, client=http).callback.status_code == 303
            assert http.post("/signin/callback", data={"code": "forged", "state": "forged"}).status_code == 400
            at = open_page()
            for text, fault in [("What is Entra ID?", None), ("And Azure OpenAI?", None),
                                ("Something the filter blocks", "prompt_filter"),
                                ("Tell me a story", "completion_filter"), ("Thanks!", None)]:
                if fault:
                    emulators.aoai.inject(fault, after_chunks=2)
                at.chat_input(key="draft").set_value(text).run()
                assert not at.exception, at.exception
            after = scrape(http)
    finally:
        server.stop()

    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    calls = [r for r in audit if r["event"] == "model_call"]
    turns = Counter((r["outcome"], r["failure"] or "") for r in audit if r["event"] == "turn_ended")
    assert turns == {("ok", ""): 3, ("failed", "prompt_filtered"): 1, ("filtered", "answer_filtered"): 1}
    for (outcome, reason), count in turns.items():
        assert delta(after, before, "chat_turns_total", outcome=outcome, reason=reason) == count
    assert total(after, before, "chat_turns_total") == 5
    # Model calls by deployment, purpose and outcome: the summary call of the fifth turn included.
    assert {r["purpose"] for r in calls} == {"answer", "summary"}
    by_labels = Counter((r["deployment"], r["purpose"], r["outcome"]) for r in calls)
    for (deployment, purpose, outcome), count in by_labels.items():
        assert delta(after, before, "chat_model_calls_total", deployment=deployment, purpose=purpose,
                     outcome=outcome) == count
    assert total(after, before, "chat_model_calls_total") == len(calls)
    # Tokens and cost: the audit's sums.
    for kind in ("prompt", "completion"):
        assert total(after, before, "chat_tokens_total", kind=kind) == sum(r[f"{kind}_tokens"] for r in calls) > 0
    cost = sum(Decimal(r["cost_usd"]) for r in calls)
    assert total(after, before, "chat_cost_usd_total") == pytest.approx(float(cost), rel=1e-9) and cost > 0
    # Histograms: one observation per call (latency) and per streamed first token, their sums in seconds.
    streamed = [r for r in calls if r["time_to_first_token_ms"] is not None]
    assert streamed and total(after, before, "chat_time_to_first_token_seconds_count") == len(streamed)
    assert total(after, before, "chat_time_to_first_token_seconds_sum") == pytest.approx(
        sum(r["time_to_first_token_ms"] for r in streamed) / 1000)
    assert total(after, before, "chat_model_call_seconds_count") == len(calls)
    assert total(after, before, "chat_model_call_seconds_sum") == pytest.approx(sum(r["latency_ms"] for r in calls) / 1000)
    for bound in CALL_BUCKETS:  # every bucket holds the calls the audit says took at most that long
        assert total(after, before, "chat_model_call_seconds_bucket", le=str(float(bound))) == \
            sum(r["latency_ms"] / 1000 <= bound for r in calls)
    for bound in TTFT_BUCKETS:
        assert total(after, before, "chat_time_to_first_token_seconds_bucket", le=str(float(bound))) == \
            sum(r["time_to_first_token_ms"] / 1000 <= bound for r in streamed)
    assert total(after, before, "chat_model_call_seconds_bucket", le="+Inf") == len(calls)
    # Sign-ins through the served routes (the fixture's own sign-in went through routes without metrics).
    assert delta(after, before, "chat_sign_ins_total", outcome="ok") == 1
    assert delta(after, before, "chat_sign_ins_total", outcome="rejected") == 1
    # Nothing about the person or the conversation in any label.
    labels = {value for key in after for _, value in key[1]}
    assert not labels & {signed_in.session_id, *(r["user_oid"] for r in calls), *(r["conversation_id"] for r in calls)}


# -- the running app ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_metrics_are_off_in_the_running_app_unless_configured(emulators, tmp_path):
    with running_app(emulators, tmp_path) as url, httpx.Client(base_url=url, timeout=15) as http:
        assert http.get("/metrics").status_code == 404
        assert http.get("/metrics", headers=BEARER).status_code == 404
        assert http.get("/_stcore/health").status_code == 200


@pytest.mark.slow
def test_the_running_app_counts_sign_ins_and_open_pages_for_the_token_holder(emulators, tmp_path):
    with (running_app(emulators, tmp_path, APP_METRICS_TOKEN=TOKEN) as url,
          httpx.Client(base_url=url, timeout=15, follow_redirects=False) as http):
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"authorization": "Bearer not-the-token"}).status_code == 401
        before = scrape(http)
        assert before[("chat_open_sessions", frozenset())] == 0
        assert ("process_resident_memory_bytes", frozenset()) in before  # the process's own, for capacity planning
        # A browser's sign-in over plain http to 127.0.0.1 (httpx would not send the Secure flow cookie back by itself).
        start = http.get("/signin")
        _, path, answer = entra_answer(start, emulators.tls.ca_file)
        callback = http.post(path, data=answer, headers={"cookie": f"{SIGNIN_COOKIE}={start.cookies[SIGNIN_COOKIE]}"})
        assert callback.status_code == 303, callback.text
        session = callback.cookies[SESSION_COOKIE]
        stream = url.replace("http://", "ws://") + "/_stcore/stream"
        page = {"origin": url}  # a browser sends the page's origin; the app refuses any other (or none)
        with connect(stream, subprotocols=["streamlit"], open_timeout=15,
                     additional_headers={"cookie": f"{SESSION_COOKIE}={session}", **page}), \
                connect(stream, subprotocols=["streamlit"], open_timeout=15, additional_headers=page):
            during = scrape(http)
        after = scrape(http)
        for _ in range(50):  # the server notices the closed sockets a moment later
            if after[("chat_open_sessions", frozenset())] == 0:
                break
            time.sleep(0.1)
            after = scrape(http)
    assert during[("chat_open_sessions", frozenset())] == 2
    assert after[("chat_open_sessions", frozenset())] == 0
    assert delta(after, before, "chat_sign_ins_total", outcome="ok") == 1
