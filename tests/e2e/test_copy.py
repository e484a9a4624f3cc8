"""The "Copy answer" control in chromium: a click (or Enter) puts the answer's stored markdown on the clipboard, says
"Copied" in a live region, and does not rerun the script."""
from __future__ import annotations

import sqlite3
import time
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# Records every script state the page goes through from now on (a rerun shows as "running").
WATCH_RUNS = """() => {
  window.__scriptStates = [];
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => window.__scriptStates.push(app.getAttribute('data-test-script-state')))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def stored_answer(stack, timeout: float = 10.0) -> str:
    """The newest answer as the app stored it (the local stack keeps conversations in SQLite)."""
    database = stack.netguard_log.parent / "data" / "conversations.db"
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(database) as db:
            row = db.execute("SELECT content FROM messages WHERE role = 'assistant' ORDER BY rowid DESC LIMIT 1").fetchone()
        if row or time.monotonic() > deadline:
            assert row, "no stored answer"
            return row[0]
        time.sleep(0.2)


def read_clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def test_copy_answer_puts_the_stored_markdown_on_the_clipboard_without_a_rerun(stack, browser):
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(stack.url))
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    page = context.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Please copy **this** `answer`")
    box.press("Enter")
    messages = page.locator('[data-testid="stChatMessage"]')
    answer = messages.nth(1)
    answer.get_by_text("prompt +").wait_for(timeout=30_000)  # the usage caption: the answer has ended
    page.locator(IDLE).wait_for(timeout=30_000)
    stored = stored_answer(stack)
    assert "**this** `answer`" in stored  # markdown, not the rendered text

    copy = answer.get_by_role("button", name="Copy answer")
    copy.wait_for(timeout=10_000)
    assert messages.nth(0).get_by_role("button", name="Copy answer").count() == 0  # questions have none
    assert page.locator("iframe").count() == 0
    page.evaluate(WATCH_RUNS)
    copy.click()
    answer.get_by_role("status").filter(has_text="Copied").wait_for(timeout=5_000)
    assert read_clipboard(page) == stored

    # The keyboard works too: focus the button and press Enter.
    page.evaluate("navigator.clipboard.writeText('')")
    copy.focus()
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 5
    while read_clipboard(page) != stored:
        assert time.monotonic() < deadline, "Enter on the focused button did not copy"
        time.sleep(0.1)

    time.sleep(1)  # a rerun would have started by now
    assert page.evaluate("window.__scriptStates") == [], "copying reran the script"
    assert page.locator(IDLE).count() == 1
    # The watch does see reruns: a thumbs vote is one.
    answer.get_by_test_id("stFeedbackButton").first.click()
    deadline = time.monotonic() + 10
    while "running" not in page.evaluate("window.__scriptStates"):
        assert time.monotonic() < deadline, "the vote did not rerun: the rerun watch is blind"
        time.sleep(0.1)
    context.close()
