"""The agent chain end to end through the page: the Azure OpenAI emulator asks for tools, the tools call the Graph
emulator with the person's own on-behalf-of token over TLS, steps show and are kept, every tool call is audited, and
Graph's failures become sentences."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from chains.tools.graph import GraphClient, GraphError
from localdev.entra import Knobs
from localdev.stack import CLIENT_ID, OTHER_USER, TEST_USER
from tests.integration.apptest import open_page
from tests.integration.signin import sign_in

pytestmark = pytest.mark.slow


def ask(at, text: str) -> str:
    at.chat_input(key="draft").set_value(text).run()
    assert not at.exception, at.exception
    answer = at.chat_message[-1]
    return "\n".join([m.value for m in answer.markdown] + [e.value for e in answer.error])


def agent_page():
    at = open_page()
    at.sidebar.selectbox(key="chain").set_value("agent").run()
    return at


def audit(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]


def test_the_calendar_comes_from_graph_with_the_persons_own_token(settings, signed_in, emulators):
    emulators.graph.requests.clear()
    at = agent_page()
    answer = ask(at, "What is on my calendar tomorrow?")
    assert "Design review" in answer
    call = next(r for r in emulators.graph.requests if r["path"].endswith("/calendarView"))
    claims = call["token_claims"]
    assert claims["oid"] == TEST_USER.oid and "Calendars.Read" in claims["scp"]
    assert claims["aud"] in ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
    # The step is on the page, the tool call in the audit log (without the calendar's text), the model calls costed.
    assert any("my_calendar" in s.label for s in at.chat_message[-1].status)
    (tool,) = [r for r in audit(settings) if r["event"] == "tool_call"]
    assert tool["tool"] == "my_calendar" and tool["outcome"] == "ok" and tool["graph_request_id"] == call["request_id"]
    assert "Design review" not in json.dumps(tool)
    calls = [r for r in audit(settings) if r["event"] == "model_call"]
    assert len(calls) == 2 and {r["chain"] for r in calls} == {"agent@1"}
    assert "2 model calls" in "\n".join(c.value for c in at.chat_message[-1].caption)
    # A resumed conversation shows the step again.
    cid = at.session_state["conversation"].id
    fresh = open_page()
    fresh.sidebar.button(key=f"open-{cid}").click().run()
    assert any("my_calendar" in s.label for s in fresh.chat_message[1].status)


def test_another_person_sees_only_their_own_calendar(settings, signed_in, emulators, monkeypatch):
    emulators.entra.knobs = Knobs(default_user=OTHER_USER.oid)
    grace = sign_in(settings, emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: grace.session_id)
    answer = ask(agent_page(), "What is on my calendar tomorrow?")
    ada = {e["subject"] for e in emulators.graph.events_for(TEST_USER.oid)}
    assert "my_calendar returned" in answer and not any(subject in answer for subject in ada)


def test_a_withdrawn_consent_is_explained_not_a_traceback(settings, signed_in, emulators):
    emulators.entra.set_graph_consent(CLIENT_ID, "User.Read People.Read User.ReadBasic.All")
    try:
        at = agent_page()
        answer = ask(at, "What is on my calendar tomorrow?")
    finally:
        emulators.entra.set_graph_consent(CLIENT_ID, "User.Read Calendars.Read People.Read User.ReadBasic.All")
    assert "Microsoft Graph refused" in answer and "administrator can grant consent" in answer
    (tool,) = [r for r in audit(settings) if r["event"] == "tool_call"]
    assert tool["outcome"] == "forbidden"


def test_graph_throttling_is_retried_after_its_retry_after(settings, signed_in, emulators):
    emulators.graph.inject("429", count=1, retry_after=1)
    answer = ask(agent_page(), "Who is my manager?")
    assert "Charles Babbage" in answer
    statuses = [r["status"] for r in emulators.graph.requests if r["path"].endswith("/manager")]
    assert statuses[-2:] == [429, 200]


def test_paging_follows_next_links_to_the_end(settings, signed_in, emulators):
    from auth.credentials import GRAPH_SCOPE, on_behalf_of_token_provider
    from auth.services import auth_services

    services = auth_services(settings)
    user_token, _ = services.signin.user_access_token(services.sessions.get(signed_in.session_id).token_cache)
    graph = GraphClient(settings.graph.endpoint, on_behalf_of_token_provider(settings.entra, user_token, GRAPH_SCOPE))
    start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    events = graph.get_all("/me/calendarView", {"startDateTime": start.isoformat(),
                                                "endDateTime": (start + timedelta(days=9)).isoformat()})
    assert len(events) == len(emulators.graph.events_for(TEST_USER.oid)) > 10  # more than one page
    emulators.graph.inject("503", count=5)
    with pytest.raises(GraphError) as failure:
        GraphClient(settings.graph.endpoint, graph._token, max_retries=1, sleep=lambda _s: None).get("/me")
    assert failure.value.kind == "unavailable" and "unavailable" in str(failure.value)
    emulators.graph.clear_faults()


def test_the_profile_comes_from_graph_me(settings, signed_in, emulators):
    answer = ask(agent_page(), "Show my profile please")
    me = emulators.graph.person_by_upn(TEST_USER.preferred_username)
    assert "my_profile returned" in answer and me.display_name in answer
    assert any(r["path"].lower() == "/v1.0/me" and r["token_claims"]["oid"] == TEST_USER.oid
               for r in emulators.graph.requests)


def test_the_guard_counts_the_tool_definitions_as_azure_bills_them(settings, signed_in, emulators):
    from langchain_core.messages import HumanMessage
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from chains.agent import SYSTEM_PROMPT
    from chains.guard import check_context
    from chains.tools.registry import TOOLS, available, langchain_tools
    from chains.tools.spec import ToolContext

    ask(agent_page(), "Show my profile please")
    first = next(r for r in emulators.aoai.requests if r.get("tools"))
    deployment = settings.catalog.get(first["deployment"])
    offered = [convert_to_openai_tool(t) for t in langchain_tools(available(deployment, set(), True), ToolContext())]
    assert sorted(first["tools"]) == sorted(set(TOOLS) - {"search_documents"})  # no document in this conversation
    check = check_context(SYSTEM_PROMPT, [HumanMessage("Show my profile please")], deployment, 100, offered)
    without = check_context(SYSTEM_PROMPT, [HumanMessage("Show my profile please")], deployment, 100)
    assert check.prompt_tokens == first["prompt_tokens"] and check.prompt_tokens - without.prompt_tokens > 200
