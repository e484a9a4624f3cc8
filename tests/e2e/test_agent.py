"""The agent in chromium: the calendar question shows a Microsoft Graph step while it runs, then an answer naming the
meeting the Graph emulator holds for the person; the step stays on the page, collapsed, with its duration."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_calendar_question_shows_a_graph_step_and_names_the_meeting(stack, browser):
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Chain").click()
    page.get_by_role("option", name="Agent with tools").click()
    page.get_by_text("Looks things up with tools").wait_for(timeout=30_000)

    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("What is on my calendar tomorrow?")
    box.press("Enter")
    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    answer.get_by_text("prompt +").wait_for(timeout=60_000)  # the usage caption: the turn has ended
    step = answer.get_by_test_id("stExpander").filter(has_text="my_calendar")
    assert step.count() == 1 and " ms" in step.inner_text()  # collapsed after it ran, with its duration
    text = answer.inner_text()
    assert "Design review" in text and "2 model calls" in text
    page.close()
