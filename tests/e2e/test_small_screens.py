"""A phone-sized chromium (390×844, touch): the input, an answer with an image, the copy control and the sidebar
toggle are all usable, and nothing scrolls sideways. Screenshots go to test-results/small-screens/."""
from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WIDTH, HEIGHT = 390, 844
SHOTS = ROOT / "test-results" / "small-screens"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH + 1, f"the page is {width} px wide: it scrolls sideways"


def inside_viewport(locator, what: str, *, min_size: float = 0) -> dict:
    box = locator.bounding_box()
    assert box, f"{what} is not rendered"
    assert box["x"] >= -1 and box["x"] + box["width"] <= WIDTH + 1, f"{what} is cut off sideways: {box}"
    assert box["y"] >= -1 and box["y"] + box["height"] <= HEIGHT + 1, f"{what} is outside the screen: {box}"
    assert box["width"] >= min_size and box["height"] >= min_size, f"{what} is too small to tap: {box}"
    return box


def settle(page) -> None:
    page.locator(IDLE).wait_for(timeout=30_000)
    time.sleep(0.5)  # let layout (and the sidebar's slide) finish before measuring or taking a screenshot


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_a_phone_sized_screen_has_a_usable_input_answer_image_copy_and_sidebar(stack, browser, tmp_path):
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    picture = tmp_path / "receipt.png"
    Image.new("RGB", (800, 600), "steelblue").save(picture)
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").tap(timeout=30_000)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=30_000)
    settle(page)
    shot(page, "1-empty-chat")
    no_sideways_scroll(page)

    # The input: on screen, and typing into it works.
    box = page.get_by_test_id("stChatInputTextArea")
    inside_viewport(page.get_by_test_id("stChatInput"), "the chat input")
    box.tap()
    box.press_sequentially("What does this receipt say?")
    assert box.input_value() == "What does this receipt say?"

    page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files(str(picture))
    page.get_by_test_id("stFileChip").wait_for(timeout=30_000)
    deadline = time.monotonic() + 60  # the upload finishes before the message is sent, as a person would wait
    while page.get_by_test_id("stFileChipIconSpinner").count():
        assert time.monotonic() < deadline, "the image did not upload"
        time.sleep(0.1)
    inside_viewport(page.get_by_test_id("stFileChip"), "the attached file chip")
    box.press("Enter")

    messages = page.locator('[data-testid="stChatMessage"]')
    answer = messages.nth(1)
    answer.get_by_text("prompt +").wait_for(timeout=30_000)  # the usage caption: the answer has ended
    settle(page)
    no_sideways_scroll(page)

    # The image thumbnail under the question.
    thumbnail = messages.nth(0).locator("img").first
    thumbnail.scroll_into_view_if_needed()
    inside_viewport(thumbnail, "the image thumbnail", min_size=40)
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth > 0"), "the thumbnail did not load"

    # The answer: visible and as wide as the screen at most.
    text = answer.get_by_text("You said: What does this receipt say?")
    text.scroll_into_view_if_needed()
    assert text.is_visible()
    inside_viewport(text, "the answer's text")
    shot(page, "2-answer")

    # The copy control: visible and big enough to tap.
    copy = answer.get_by_role("button", name="Copy answer")
    copy.scroll_into_view_if_needed()
    inside_viewport(copy, "the copy control", min_size=24)
    copy.tap()
    answer.get_by_role("status").filter(has_text="Copied").wait_for(timeout=5_000)
    inside_viewport(page.get_by_test_id("stChatInput"), "the chat input after the answer")

    # The sidebar: its toggle opens it with its controls on screen, and closes it again.
    sidebar = page.get_by_test_id("stSidebar")
    assert sidebar.get_attribute("data-collapsed") == "true", "the sidebar covers the chat on a phone at first"
    toggle = page.get_by_test_id("stExpandSidebarButton")
    inside_viewport(toggle, "the sidebar toggle", min_size=24)
    toggle.tap()
    signed_in = sidebar.get_by_text("Signed in as")
    signed_in.wait_for(timeout=10_000)
    settle(page)
    assert sidebar.get_attribute("data-collapsed") == "false"
    inside_viewport(signed_in, "the sidebar's sign-in line")
    shot(page, "3-sidebar-open")
    no_sideways_scroll(page)
    for control, what in [(sidebar.get_by_test_id("stSelectbox").first, "the sidebar's first selectbox"),
                          (sidebar.get_by_role("button", name="New conversation"), "the sidebar's New conversation")]:
        control.scroll_into_view_if_needed()  # the sidebar scrolls on its own
        inside_viewport(control, what, min_size=24)
    shot(page, "4-sidebar-scrolled")
    close = sidebar.get_by_test_id("stSidebarCollapseButton")
    close.scroll_into_view_if_needed()
    inside_viewport(close, "the sidebar's close button", min_size=24)
    close.locator("button").tap()
    deadline = time.monotonic() + 10
    while sidebar.get_attribute("data-collapsed") != "true":
        assert time.monotonic() < deadline, "the sidebar did not close"
        time.sleep(0.1)
    settle(page)
    shot(page, "5-sidebar-closed")
    inside_viewport(page.get_by_test_id("stChatInput"), "the chat input after closing the sidebar")
    context.close()
