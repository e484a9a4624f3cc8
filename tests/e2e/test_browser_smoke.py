"""A person opens the page started by `make run`, asks a question and watches the answer stream in."""
from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sign_in_then_a_question_gets_a_streamed_answer_in_chromium(stack, browser, secrets_audit):
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    # The Entra ID emulator auto-approves the test person and sends the browser back, signed in.
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    assert "Ada Lovelace" in page.get_by_test_id("stSidebar").inner_text()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["chat_session"]["httpOnly"] and cookies["chat_session"]["sameSite"] == "Lax"
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("How do I reset my password?")
    box.press("Enter")

    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    answer.wait_for(timeout=20_000)
    lengths: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = answer.inner_text()
        lengths.append(len(text))
        if "prompt +" in text:  # the usage caption appears when the answer is complete
            break
        time.sleep(0.1)
    final = answer.inner_text()
    assert "How do I reset my password?" in final
    assert "completion tokens" in final and "$" in final
    secrets_audit.texts.append(page.content())
    secrets_audit.secrets |= {c["value"] for c in page.context.cookies()}
    growing = sorted(set(n for n in lengths if 0 < n < len(final)))
    assert len(growing) >= 3, f"the answer did not stream (lengths seen: {lengths})"

    # Stop: the send button turns into Stop while an answer streams; the partial answer stays and is marked.
    box.fill("Please give me a long answer about passwords and how to keep them safe at work")
    box.press("Enter")
    second = page.locator('[data-testid="stChatMessage"]').nth(3)
    second.wait_for(timeout=20_000)
    deadline = time.monotonic() + 30
    while len(second.inner_text()) < 15:
        assert time.monotonic() < deadline, "the second answer did not start streaming"
        time.sleep(0.05)
    page.get_by_test_id("stChatInputStopButton").click()
    time.sleep(1)
    partial = second.inner_text()
    assert "prompt +" not in partial  # it never completed
    box.fill("thanks")
    box.press("Enter")
    page.locator('[data-testid="stChatMessage"]').nth(5).get_by_text("prompt +").wait_for(timeout=30_000)
    stopped = page.locator('[data-testid="stChatMessage"]').nth(3).inner_text()
    assert "Stopped: the answer above is partial." in stopped and "stopped" in stopped and "≈" in stopped

    # Reload: the conversation is saved; it is in the sidebar list and opens with its messages.
    page.reload()
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_role("button", name="How do I reset my password?").click()
    page.locator('[data-testid="stChatMessage"]').nth(5).wait_for(timeout=30_000)
    resumed = page.locator('[data-testid="stChatMessage"]')
    assert "How do I reset my password?" in resumed.nth(0).inner_text()
    assert "Stopped: the answer above is partial." in resumed.nth(3).inner_text()

    # Sign out: through Entra's end-session endpoint and back to the sign-in screen; Back must not show the chat.
    page.get_by_text("Sign out").click()
    page.get_by_role("button", name="Sign out").click(timeout=30_000)  # the confirm page's form (a POST with a token)
    page.get_by_text("Sign in with Microsoft").wait_for(timeout=30_000)
    assert "chat_session" not in {c["name"] for c in page.context.cookies()}
    page.go_back()
    page.wait_for_load_state()
    page.get_by_text("Sign in with Microsoft").wait_for(timeout=30_000)
    assert "How do I reset my password?" not in page.content()
    page.close()


def test_an_uploaded_image_shows_as_a_thumbnail_and_gets_an_answer(stack, browser, tmp_path):
    from PIL import Image

    picture = tmp_path / "whiteboard.png"
    Image.new("RGB", (1600, 1200), "seagreen").save(picture)
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files(str(picture))
    page.get_by_test_id("stFileChip").wait_for(timeout=30_000)
    deadline = time.monotonic() + 60  # the upload finishes before the message is sent, as a person would wait
    while page.get_by_test_id("stFileChipIconSpinner").count() and time.monotonic() < deadline:
        time.sleep(0.1)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("What is on this whiteboard?")
    box.press("Enter")
    question = page.locator('[data-testid="stChatMessage"]').nth(0)
    question.locator("img").first.wait_for(timeout=30_000)
    # gpt-5-mini (the default) counts 32-px patches: 1600×1200 is 1900 patches, over its 1536, so it is shrunk with
    # OpenAI's formula to 1408×1056 (1452 patches × 1.2), not cut to gpt-4o's 768-px side.
    assert "whiteboard.png · 1408×1056 · high · 1743 tokens" in question.inner_text()
    page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)
    page.close()


def test_ctrl_c_stops_the_whole_stack_and_nothing_left_loopback(stack, secrets_audit):
    assert stack.stop() == 0
    secrets_audit.texts.extend(stack.output)
    assert any("stopped." in line for line in stack.output)
    assert stack.netguard_log.read_text() == "", "a process of the stack tried to reach beyond 127.0.0.1"
