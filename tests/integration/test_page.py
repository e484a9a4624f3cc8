"""The chat page under Streamlit's AppTest, answering through the real emulators over TLS."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from auth.services import auth_services
from localdev.entra import Knobs
from localdev.stack import TENANT_ID, TEST_USER
from tests.integration.apptest import PAGE
from tests.integration.apptest import open_page as _page
from tests.integration.signin import sign_in, sign_out


def _texts(message) -> str:
    return "\n".join([m.value for m in message.markdown] + [c.value for c in message.caption] + [e.value for e in message.error])


def test_signed_out_people_see_only_the_sign_in_link(stack_env):
    at = _page()
    assert not at.chat_input and not at.sidebar.selectbox
    assert any('href="/signin"' in m.value for m in at.markdown)


def test_page_offers_the_catalog_and_says_who_is_signed_in_and_which_identity_is_used(settings, signed_in):
    at = _page()
    assert at.sidebar.selectbox(key="deployment").options == [d.display_name for d in settings.catalog.deployments]
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert TEST_USER.name in sidebar and "the app's identity" in sidebar
    at.sidebar.toggle(key="obo").set_value(True).run()
    assert "your own identity (on-behalf-of)" in "\n".join(c.value for c in at.sidebar.caption)
    at.sidebar.selectbox(key="deployment").set_value("gpt-35-turbo").run()
    assert not [t for t in at.sidebar.toggle if t.key == "obo"]  # the catalog fixes the app identity here


@pytest.mark.parametrize("obo", [False, True])
def test_every_call_carries_the_person_and_the_chosen_identity(signed_in, emulators, obo):
    at = _page()
    at.sidebar.toggle(key="obo").set_value(obo).run()
    at.chat_input(key="draft").set_value("who am I?").run()
    assert not at.exception
    recorded = emulators.aoai.requests[-1]
    context = recorded["body"]["user_security_context"]
    assert context["end_user_id"] == TEST_USER.oid and context["end_user_tenant_id"] == TENANT_ID
    assert context["application_name"] == "Entra Chat"
    claims = recorded["token_claims"]
    if obo:
        assert claims["oid"] == TEST_USER.oid and claims["scp"] == "user_impersonation"
    else:
        assert claims["idtyp"] == "app"


def test_expired_sign_in_keeps_the_conversation_and_the_draft(settings, signed_in, emulators):
    at = _page()
    at.chat_input(key="draft").set_value("first question").run()
    emulators.entra.revoke(TEST_USER.oid)  # an administrator revokes the person's sessions
    services = auth_services(settings)
    session = services.sessions.get(signed_in.session_id)
    services.sessions.save_token_cache(session.id, _expire_access_tokens(session.token_cache))  # an hour later
    at.chat_input(key="draft").set_value("second question").run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]  # the conversation is intact
    assert "sign-in has expired" in at.warning[0].value
    assert any('href="/signin?resume=1"' in m.value for m in at.markdown)
    assert services.sessions.get(signed_in.session_id).draft == "second question"
    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["event"] == "sign_in_expired" and audit[-1]["user_oid"] == TEST_USER.oid
    assert "second question" not in json.dumps(audit)


def test_each_answer_is_audited_with_identity_mode_and_chain(settings, signed_in, emulators):
    at = _page()
    at.sidebar.selectbox(key="chain").set_value("draft_refine")
    at.sidebar.toggle(key="obo").set_value(True).run()
    at.chat_input(key="draft").set_value("audit me").run()
    assert not at.exception
    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    calls = [r for r in audit if r["event"] == "model_call"]
    assert [r["purpose"] for r in calls] == ["draft", "answer"]
    assert {r["identity_mode"] for r in calls} == {"on_behalf_of"} and {r["chain"] for r in calls} == {"draft_refine@1"}
    assert calls[0]["conversation_id"] == calls[1]["conversation_id"]
    caption = _texts(at.chat_message[1])
    assert "draft_refine@1" in caption and "2 model calls" in caption
    assert "This conversation: 2 model calls" in "\n".join(c.value for c in at.sidebar.caption)


def test_a_message_gets_a_streamed_answer_with_usage_and_cost(signed_in, emulators):
    at = _page()
    at.sidebar.selectbox(key="deployment").set_value("gpt-4o-mini")
    at.chat_input(key="draft").set_value("hello there").run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    answer = _texts(at.chat_message[1])
    assert "hello there" in answer
    assert "gpt-4o-mini ·" in answer and "completion tokens" in answer and "$" in answer
    assert emulators.aoai.requests[-1]["deployment"] == "gpt-4o-mini"


def test_failure_shows_a_clear_message_and_keeps_the_conversation(signed_in, emulators, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_MAX_RETRIES", "0")
    at = _page()
    at.chat_input(key="draft").set_value("first question").run()
    emulators.aoai.inject("429", count=1, retry_after=7)
    at.chat_input(key="draft").set_value("second question").run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    assert "first question" in _texts(at.chat_message[1])
    assert "wait 7 seconds" in _texts(at.chat_message[3])
    # The next message works, and the model sees the earlier exchange but not the error notice.
    at.chat_input(key="draft").set_value("third question").run()
    assert "third question" in _texts(at.chat_message[5])
    sent = emulators.aoai.requests[-1]["body"]["messages"]
    # The failed question stays in the memory with a short note in place of its answer: roles keep alternating.
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent[4]["content"] == "(No answer was given to this message.)"
    assert all("wait 7 seconds" not in str(m["content"]) for m in sent)


@pytest.mark.parametrize("fault", ["prompt_filter", "500"])
def test_other_failures_are_explained(signed_in, emulators, monkeypatch, fault):
    monkeypatch.setenv("AZURE_OPENAI_MAX_RETRIES", "0")
    at = _page()
    emulators.aoai.inject(fault, count=1)
    at.chat_input(key="draft").set_value("anything").run()
    expected = {"prompt_filter": "content filter", "500": "internal error"}[fault]
    assert expected in _texts(at.chat_message[1])


def test_bad_settings_show_one_clear_message_on_the_page(stack_env, monkeypatch):
    monkeypatch.setenv("ENTRA_TENANT_ID", "contoso")
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.run()
    assert not at.exception
    assert "ENTRA_TENANT_ID is invalid" in at.error[0].value


def _expire_access_tokens(token_cache: str) -> str:
    """The same cache with every access token past its expiry, as after an idle hour."""
    import json
    cache = json.loads(token_cache)
    for entry in cache.get("AccessToken", {}).values():
        entry["expires_on"] = entry["extended_expires_on"] = "1"
    return json.dumps(cache)


@pytest.mark.parametrize("cookie", ["guessed-session-id", "", "x" * 43])
def test_a_forged_or_guessed_session_cookie_shows_the_sign_in_page(stack_env, monkeypatch, cookie):
    monkeypatch.setattr("ui.session.session_cookie", lambda: cookie)
    at = _page()
    assert not at.chat_input and any('href="/signin"' in m.value for m in at.markdown)


def test_a_cookie_is_useless_after_sign_out(settings, signed_in):
    sign_out(signed_in)
    at = _page()  # the page still sees the old cookie value
    assert not at.chat_input and any('href="/signin"' in m.value for m in at.markdown)


def test_deployments_are_offered_by_role(stack_env, emulators, monkeypatch, tmp_path):
    catalog = (Path(__file__).resolve().parents[2] / "localdev" / "deployments.toml").read_text()
    catalog = catalog.replace('name = "gpt-4o"\n', 'name = "gpt-4o"\nroles = ["Chat.Vision"]\n', 1)
    (tmp_path / "catalog.toml").write_text(catalog)
    monkeypatch.setenv("AZURE_OPENAI_CATALOG_FILE", str(tmp_path / "catalog.toml"))
    from config import load_settings
    emulators.entra.knobs = Knobs()
    trip = sign_in(load_settings(), emulators)
    monkeypatch.setattr("ui.session.session_cookie", lambda: trip.session_id)
    at = _page()
    offered = at.sidebar.selectbox(key="deployment").options
    everyone = load_settings().catalog.deployments
    assert len(offered) == len(everyone) - 1 and not any(label.startswith("GPT-4o (") for label in offered)


def test_a_required_role_the_person_lacks_shows_only_a_clear_page(stack_env, emulators, monkeypatch):
    from config import load_settings
    emulators.entra.knobs = Knobs()
    trip = sign_in(load_settings(), emulators)  # signed in while no role was required
    monkeypatch.setenv("ENTRA_REQUIRED_ROLE", "Chat.Admin")
    monkeypatch.setattr("ui.session.session_cookie", lambda: trip.session_id)
    at = _page()
    assert not at.chat_input and not at.sidebar.selectbox
    assert "'Chat.Admin' role" in at.error[0].value


def test_auth_disabled_says_so_in_a_banner(stack_env, monkeypatch):
    monkeypatch.setenv("APP_AUTH_DISABLED", "true")
    at = _page()
    assert "Sign-in is disabled" in at.warning[0].value
    assert at.chat_input


def test_auth_cannot_be_disabled_for_a_public_url(stack_env, monkeypatch):
    monkeypatch.setenv("APP_AUTH_DISABLED", "true")
    monkeypatch.setenv("APP_PUBLIC_URL", "https://chat.contoso.com")
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.run()
    assert "allowed only for local experiments" in at.error[0].value


def test_thumbs_are_kept_with_the_answer_audited_and_compared_by_chain(settings, signed_in, emulators):
    at = _page()
    at.sidebar.selectbox(key="chain").set_value("concise").run()
    at.chat_input(key="draft").set_value("rate me").run()
    at.feedback[0].set_value(1).run()
    assert not at.exception
    assert at.session_state["conversation"].turns[1].feedback == 1
    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    (vote,) = [r for r in audit if r["event"] == "feedback"]
    assert vote["score"] == 1 and vote["chain"] == "concise@1" and vote["message_id"] == at.session_state["conversation"].turns[1].id
    table = at.sidebar.dataframe[0].value  # current in the same run as the vote
    row = table[table["chain"] == "concise@1"].iloc[0]
    assert row["calls"] == 1 and row["👍 ratio"] == "100% of 1"
