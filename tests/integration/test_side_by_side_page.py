"""Side by side on the page (AppTest, real emulators over HTTPS): two answers, blind A/B, the vote reveals the names
and keeps the chosen answer in the conversation and its memory; the leaderboard is there for experimenters only."""
from __future__ import annotations

import json
import re

from tests.integration.apptest import open_page


def side_by_side(at, chain_b="concise", deployment_b="gpt-4o-mini"):
    at.sidebar.toggle(key="side_by_side").set_value(True).run()
    at.sidebar.selectbox(key="chain_b").set_value(chain_b)
    at.sidebar.selectbox(key="deployment_b").set_value(deployment_b).run()
    return at


def button(at, label):
    return next(b for b in at.button if b.label == label)


def test_two_blind_answers_then_the_vote_reveals_names_and_keeps_b(signed_in, settings, emulators):
    at = side_by_side(open_page())
    emulators.aoai.requests.clear()
    at.chat_input(key="draft").set_value("Compare these two please").run()
    assert not at.exception, at.exception
    chats = [r for r in emulators.aoai.requests if r.get("kind", "chat") == "chat"]
    assert sorted(r["deployment"] for r in chats) == sorted([settings.catalog.default, "gpt-4o-mini"])
    shown = [m.value for m in at.markdown]
    assert "**A**" in shown and "**B**" in shown
    assert not any("concise@1" in m or "assistant@1" in m for m in shown)  # blind until the vote
    button(at, "B is better").click().run()
    revealed = next(i.value for i in at.info if "You voted" in i.value)
    b_chain, b_deployment = re.search(r"B was `([^`]+)` on (\S+?)\.", revealed).groups()
    conversation = at.session_state["conversation"]
    kept = conversation.turns[-1]
    assert (kept.chain, kept.deployment) == (b_chain, b_deployment)
    assert conversation.memory[-1].content == kept.content
    assert not [b for b in at.button if b.label == "A is better"]  # voted: the buttons are gone
    audit = [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]
    assert [r["vote"] for r in audit if r["event"] == "comparison_vote"] == ["b"]

    at.sidebar.toggle(key="side_by_side").set_value(False).run()
    at.chat_input(key="draft").set_value("And a follow-up").run()
    sent = emulators.aoai.requests[-1]["body"]["messages"]
    assert any(m["role"] == "assistant" and m["content"] == kept.content for m in sent)


VOTES = ("A is better", "B is better", "Tie", "Both are bad")


def audit_records(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()]


def test_a_side_failing_with_a_400_is_shown_failed_blind_and_the_good_answer_is_kept(signed_in, settings, emulators):
    at = side_by_side(open_page())
    emulators.aoai.requests.clear()
    emulators.aoai.inject("context_length")  # the first of the two calls gets Azure's 400 (context_length_exceeded)
    at.chat_input(key="draft").set_value("Compare these two please").run()
    assert not at.exception, at.exception
    chats = [r for r in emulators.aoai.requests if r.get("kind", "chat") == "chat"]
    [broken] = [r["deployment"] for r in chats if r.get("fault")]
    [good] = [r["deployment"] for r in chats if not r.get("fault")]
    [failure] = [e.value for e in at.error if "This answer failed" in e.value]  # its column, not a blank
    assert "context window" in failure and "this deployment's context window" in failure
    assert broken not in failure and good not in failure  # still blind: no chain or deployment named
    assert not [b for b in at.button if b.label in VOTES]  # nothing to vote on: a failed answer is never kept
    kept_note = next(i.value for i in at.info if "is kept" in i.value)
    failed_side, kept_side = re.search(r"(A|B) failed, so (A|B)'s answer is kept", kept_note).groups()
    assert {failed_side, kept_side} == {"A", "B"}
    conversation = at.session_state["conversation"]
    kept = conversation.turns[-1]
    assert (kept.status, kept.deployment) == ("complete", good) and kept.content.startswith("You said")
    assert conversation.memory[-1].content == kept.content
    [ended] = [r for r in audit_records(settings) if r["event"] == "comparison_ended"]
    assert ended[f"failed_{failed_side.lower()}"] == "context_too_long" and ended[f"failed_{kept_side.lower()}"] is None
    assert ended["kept"] == kept_side.lower() and ended["vote_open"] is False

    button(at, "Show which was which").click().run()  # the names, once asked for; still no vote
    revealed = next(i.value for i in at.info if "No vote was counted" in i.value)
    assert f"on {broken} (failed: context_too_long)" in revealed
    assert not [b for b in at.button if b.label in VOTES]
    assert at.session_state["conversation"].turns[-1].content == kept.content
    assert not [r for r in audit_records(settings) if r["event"] == "comparison_vote"]


def test_both_sides_failing_offers_to_send_again_without_a_vote(signed_in, settings, emulators):
    at = side_by_side(open_page())
    emulators.aoai.requests.clear()
    text = "Too long for both [[fault:context_length]]"  # the marker fails both calls with Azure's 400
    at.chat_input(key="draft").set_value(text).run()
    assert not at.exception, at.exception
    assert len([e for e in at.error if "This answer failed" in e.value]) == 2
    assert next(w.value for w in at.warning if "Both answers failed" in w.value)
    assert not [b for b in at.button if b.label in VOTES]
    conversation = at.session_state["conversation"]
    assert conversation.turns[-2].content == text and conversation.turns[-1].status == "failed"

    button(at, "Send again").click().run()  # the kept message, sent once more (side by side again)
    assert not at.exception, at.exception
    assert [t.content for t in at.session_state["conversation"].turns if t.role == "user"] == [text, text]
    assert len([r for r in emulators.aoai.requests if r.get("kind", "chat") == "chat"]) == 4


def test_the_leaderboard_is_for_experimenters(signed_in, settings, emulators, monkeypatch):
    at = side_by_side(open_page())
    at.chat_input(key="draft").set_value("Which one?").run()
    button(at, "A is better").click().run()
    button(at, "Leaderboard").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    mine = f"assistant@1 · {settings.catalog.default}"
    assert set(table["chain · deployment"]) == {mine, "concise@1 · gpt-4o-mini"}
    assert sorted(table["wins"]) == [0, 1] and list(table["votes"]) == [1, 1]

    monkeypatch.setenv("APP_EXPERIMENTER_ROLE", "Chat.Analyst")  # a role this person does not hold
    at = open_page()
    assert not [b for b in at.button if b.label == "Leaderboard"]


def test_the_page_says_when_langsmith_tracing_is_on(signed_in, monkeypatch):
    from langsmith import utils

    utils.get_env_var.cache_clear()  # langsmith reads the environment once per process
    try:
        assert not [w for w in open_page().warning if "LangSmith" in w.value]  # off by default
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", "https://127.0.0.1:9")  # nothing is sent: the page only renders
        utils.get_env_var.cache_clear()
        warning = next(w.value for w in open_page().warning if "LangSmith" in w.value)
        assert "https://127.0.0.1:9" in warning and "document passages" in warning
    finally:
        monkeypatch.delenv("LANGSMITH_TRACING", raising=False)
        utils.get_env_var.cache_clear()  # tracing off again for every later test
