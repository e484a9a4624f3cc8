"""The v1 API and the Responses API in chromium (the stack as `LOCALDEV_API_VERSION=v1 make run` starts it): a reasoning
deployment's thinking streams in its own step above the answer, expanded while it streams and collapsed with its
duration after; a Responses-only model answers; a classic model still answers; reopening shows the stored thinking."""
from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import choose, chromium_for, idle, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MESSAGES = '[data-testid="stChatMessage"]'


@pytest.fixture(scope="module")
def v1_stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("v1"), env={"LOCALDEV_API_VERSION": "v1"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def v1_browser(v1_stack):
    with chromium_for(v1_stack) as chromium:
        yield chromium






def ask(page, text: str, index: int) -> str:
    idle(page)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    answer = page.locator(MESSAGES).nth(index)
    answer.get_by_text("prompt +").wait_for(timeout=60_000)
    idle(page)
    return answer.inner_text()


def test_thinking_streams_apart_then_collapses_and_is_shown_again(v1_stack, v1_browser):
    page = v1_browser.new_page()
    page.goto(v1_stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_text("Show the model").wait_for(timeout=30_000)  # the display toggle
    idle(page)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Why do we have a travel policy?")
    box.press("Enter")
    answer = page.locator(MESSAGES).nth(1)
    thinking = answer.get_by_test_id("stExpander").filter(has_text="Thinking")
    thinking.wait_for(timeout=30_000)
    seen_open = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "prompt +" not in answer.inner_text():
        if "Considering the question" in thinking.inner_text():  # expanded: the summary is readable while it streams
            seen_open = True
        time.sleep(0.05)
    idle(page)
    assert seen_open, "the thinking was never shown while it streamed"
    label = thinking.locator("summary").inner_text()
    assert re.search(r"Thinking · \d+\.\d s", label), label  # collapsed after, with its duration
    assert "Considering the question" not in answer.get_by_test_id("stMarkdownContainer").last.inner_text()
    text = answer.inner_text()
    assert "You said: Why do we have a travel policy?" in text and "of them reasoning" in text

    # A Responses-only model (gpt-5-pro: whole answers) and a classic Chat Completions model both answer.
    choose(page, "Deployment", "GPT-5 pro")
    assert "You said: A hard question" in ask(page, "A hard question", 3)
    choose(page, "Deployment", r"GPT-4o \(")
    assert "You said: A classic question" in ask(page, "A classic question", 5)

    # Reopened: the stored thinking is there, collapsed, and opens to the summary.
    page.reload()
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_role("button", name="Why do we have a travel policy?").click()
    stored = page.locator(MESSAGES).nth(1).get_by_test_id("stExpander").filter(has_text="Thinking")
    stored.wait_for(timeout=30_000)
    assert "Considering the question" not in stored.inner_text() or not stored.locator("details[open]").count()
    stored.locator("summary").click()
    stored.get_by_text("Considering the question").wait_for(timeout=10_000)
    page.close()
