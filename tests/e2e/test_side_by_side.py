"""Side by side in chromium: both answers stream in their columns at the same time, the vote reveals which chain and
deployment wrote A and B, and the conversation and the model's memory keep the chosen answer."""
from __future__ import annotations

import re
import ssl
import time

import httpx
import pytest

from tests.e2e.conftest import choose

pytestmark = [pytest.mark.e2e, pytest.mark.slow]






def test_both_columns_stream_then_the_vote_reveals_and_keeps_b(stack, browser):
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Side by side (blind A/B)").click()
    choose(page, "on deployment", "GPT-4o mini")

    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Hi")
    box.press("Enter")
    messages = page.locator('[data-testid="stChatMessage"]')
    vote = page.get_by_role("button", name="B is better")
    both_streaming, deadline = False, time.monotonic() + 60
    while time.monotonic() < deadline and not vote.count():
        if messages.count() >= 3:
            a, b = messages.nth(1).inner_text(), messages.nth(2).inner_text()
            if "You said" in a and "You said" in b and not vote.count():
                both_streaming = True  # both columns have text before either answer is over and the vote shows
        time.sleep(0.05)
    assert both_streaming
    vote.wait_for(timeout=30_000)
    assert "gpt-4o" not in messages.nth(1).inner_text().split("deployment")[0]  # no names before the vote

    vote.click()
    revealed = page.get_by_text("You voted").inner_text(timeout=30_000)
    b_chain, b_deployment = re.search(r"B was (\S+) on (\S+?)\.", revealed).groups()
    kept = page.locator('[data-testid="stChatMessage"]').nth(1)
    assert f"answering on deployment {b_deployment}." in kept.inner_text()
    assert page.get_by_role("button", name="A is better").count() == 0
    panel = page.get_by_text("What the model remembers")
    deadline = time.monotonic() + 30
    while panel.count() != 1 and time.monotonic() < deadline:  # the rerun after the vote has replaced the old page
        time.sleep(0.05)
    panel.click()
    remembered = page.get_by_test_id("stExpander").filter(has_text="Kept word for word").inner_text()
    assert f"Assistant: You said: Hi. This is the scripted emulator answering on deployment {b_deployment}." in remembered
    page.close()


def test_a_side_failing_with_a_400_shows_its_failure_blind_and_no_vote(stack, browser):
    """The measured bug: one side's 400 left its column blank, and a vote for it kept the error. Now the column says it
    failed and why (no names), there is no vote button at all, and the good answer is the one kept."""
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_text("Side by side (blind A/B)").click()
    choose(page, "on deployment", "GPT-4o mini")
    trust = ssl.create_default_context(cafile=str(stack.server_cert.parent / "ca.pem"))  # the emulators' local CA
    with httpx.Client(base_url=f"https://localhost:{stack.ports['aoai']}", verify=trust, timeout=10) as http:
        http.post("/_emulator/faults", json={"fault": "context_length", "endpoint": "chat"}).raise_for_status()

    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Hi there")
    box.press("Enter")
    kept = page.get_by_text(re.compile(r"[AB] failed, so [AB]'s answer is kept"))
    kept.wait_for(timeout=60_000)
    failed_side, kept_side = re.search(r"([AB]) failed, so ([AB])'s", kept.inner_text()).groups()
    messages = page.locator('[data-testid="stChatMessage"]')  # the question, then column A, then column B
    columns = {"A": messages.nth(1), "B": messages.nth(2)}
    assert messages.filter(has_text="This answer failed.").count() == 1
    text = columns[failed_side].inner_text()
    assert "This answer failed." in text and "context window" in text
    assert "gpt-" not in text.lower() and "@1" not in text  # still blind
    assert "You said: Hi there" in columns[kept_side].inner_text()
    for label in ("A is better", "B is better", "Tie", "Both are bad"):
        assert page.get_by_role("button", name=label).count() == 0
    page.close()
