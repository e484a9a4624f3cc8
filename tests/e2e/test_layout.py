"""The page's layout after an answer, in chromium: the newest turn is last, then "what the model remembers" and the
next-message estimate directly above the input; the sidebar is current in the same run; no developer toolbar."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IN_ORDER = "([a, b]) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING)"


def follows(page, first, second) -> bool:
    return page.evaluate(IN_ORDER, [first.element_handle(), second.element_handle()])


def test_newest_turn_last_then_memory_and_estimate_above_the_input(stack, browser):
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    box = page.get_by_test_id("stChatInputTextArea")
    for n, question in enumerate(["Where is the layout checked?", "And after a second answer?"]):
        box.fill(question)
        box.press("Enter")
        answer = page.locator('[data-testid="stChatMessage"]').nth(2 * n + 1)
        answer.get_by_text("prompt +").wait_for(timeout=30_000)  # the usage caption: the answer has ended

        messages = page.locator('[data-testid="stChatMessage"]')
        assert messages.count() == 2 * n + 2
        newest = messages.last
        assert question in messages.nth(2 * n).inner_text()
        memory = page.get_by_test_id("stExpander").filter(has_text="What the model remembers")
        estimate = page.get_by_text("Next message:")
        memory.wait_for(timeout=10_000)
        estimate.wait_for(timeout=10_000)
        assert follows(page, newest, memory) and follows(page, memory, estimate)
        assert follows(page, estimate, page.get_by_test_id("stChatInput"))
        # The sidebar was drawn after the answer: this conversation and its totals are there already.
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_role("button", name="Where is the layout checked?").wait_for(timeout=10_000)
        assert f"This conversation: {n + 1} model calls" in sidebar.inner_text()

    # People get no developer toolbar, no main menu and no Deploy button.
    assert page.get_by_test_id("stAppDeployButton").count() == 0
    assert page.get_by_test_id("stMainMenu").count() == 0
    page.close()
