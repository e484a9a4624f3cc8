"""Today's reasoning deployments in chromium, against the emulator that applies Azure's 2026 rules: eight turns on
gpt-5-mini across a summary, a changed reasoning effort, a deployment switch that keeps the answer limit, an image
whose estimate is what the emulator bills, an answer cut off at its limit with its one-click retry, and an o-series
conversation that survives its summary."""
from __future__ import annotations

import re
import ssl
import time

import httpx
import pytest

from tests.e2e.conftest import choose, idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES = '[data-testid="stChatMessage"]'






def slider(page, name: str):
    return page.get_by_test_id("stSidebar").get_by_role("slider", name=name)


def press_on_slider(page, name: str, key: str) -> None:
    idle(page)
    thumb = slider(page, name)
    thumb.focus()
    thumb.press(key)
    idle(page)


def value_of(page, name: str) -> str:
    idle(page)
    return slider(page, name).get_attribute("aria-valuenow") or slider(page, name).get_attribute("aria-valuetext")


def ask(page, text: str, answer_index: int, timeout: float = 60_000) -> str:
    """Sends `text` and waits for the answer at message `answer_index` to end (its usage line or its notice)."""
    idle(page)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    answer = page.locator(MESSAGES).nth(answer_index)
    answer.wait_for(timeout=timeout)
    deadline = time.monotonic() + timeout / 1000
    while time.monotonic() < deadline:
        body = answer.inner_text()
        if "prompt +" in body or "No answer" in body or "failed" in body.lower():
            idle(page)
            return answer.inner_text()
        time.sleep(0.1)
    raise AssertionError(f"answer {answer_index} did not end: {answer.inner_text()!r}")


def emulator_requests(stack) -> list[dict]:
    trust = ssl.create_default_context(cafile=str(stack.server_cert.parent / "ca.pem"))
    with httpx.Client(base_url=f"https://localhost:{stack.ports['aoai']}", verify=trust, timeout=10) as http:
        response = http.get("/_emulator/requests")
        response.raise_for_status()
        body = response.json()
    return body["requests"] if isinstance(body, dict) else body


def is_summary(request: dict) -> bool:
    """The summary call: its one message is the summary prompt (later answers may quote it: the scripted engine
    echoes what it is asked)."""
    return str(request["body"]["messages"][-1].get("content", "")).startswith("You keep the memory of a conversation")


def signed_in(stack, browser):
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    return page


def test_gpt_5_mini_across_summary_effort_switches_image_and_a_cut_off_answer(stack, browser, tmp_path):
    from PIL import Image

    page = signed_in(stack, browser)
    sidebar = page.get_by_test_id("stSidebar")
    # The default deployment is a reasoning model: an effort control instead of temperature.
    assert "GPT-5 mini (reasoning, text and images) is a reasoning model: it takes no temperature" in sidebar.inner_text()
    assert value_of(page, "Reasoning effort") in ("medium", "Medium")

    # Eight turns; the fourth is summarised first (7 messages), and every answer says how much was reasoning.
    for turn in range(8):
        if turn == 5:  # from here on, high effort: four times the reasoning
            press_on_slider(page, "Reasoning effort", "ArrowRight")
            assert value_of(page, "Reasoning effort") in ("high", "High")
        answer = ask(page, f"Question number {turn + 1} about our travel policy", 2 * turn + 1)
        assert "No answer" not in answer and "failed" not in answer.lower(), answer
        reasoning = 1024 if turn >= 5 else 256
        summarised = "summary ·" in answer  # the summary step, shown with the answer
        assert summarised == (turn >= 3 and turn % 2 == 1), answer  # at 7 messages, then every second turn
        summary = 16 if summarised else 0  # the summary call runs at gpt-5-mini's lightest effort, minimal
        assert f"{reasoning + summary} of them reasoning" in answer, answer
    requests = [r for r in emulator_requests(stack) if r.get("kind") == "chat"]
    summaries = [r for r in requests if is_summary(r)]
    assert summaries, "no summary call reached the emulator"
    assert all("temperature" not in r["body"] and "max_tokens" not in r["body"] for r in requests)
    answers = [r for r in requests if r not in summaries]
    assert [r["body"].get("reasoning_effort") for r in answers[-3:]] == ["high"] * 3
    assert any(m.get("role") == "system" and "Summary of the earlier part" in str(m.get("content"))
               for m in answers[-1]["body"]["messages"])  # the summary reaches the model as a system message
    page.get_by_text("What the model remembers").click()
    page.get_by_text("Summary of earlier messages").wait_for(timeout=10_000)

    # The answer limit survives a switch to a deployment with a smaller maximum and back.
    press_on_slider(page, "Maximum answer length (tokens)", "End")
    assert value_of(page, "Maximum answer length (tokens)") == "128000"
    choose(page, "Deployment", "o4-mini")
    assert value_of(page, "Maximum answer length (tokens)") == "100000"  # clamped to o4-mini's maximum
    choose(page, "Deployment", "GPT-5 mini")
    assert value_of(page, "Maximum answer length (tokens)") == "128000"

    # An image: the estimate shown with it is what the emulator bills for it (gpt-5-mini's patch rule, no 768 cut).
    picture = tmp_path / "whiteboard.png"
    Image.new("RGB", (1024, 768), "seagreen").save(picture)
    idle(page)
    page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files(str(picture))
    page.get_by_test_id("stFileChip").wait_for(timeout=30_000)
    deadline = time.monotonic() + 60
    while page.get_by_test_id("stFileChipIconSpinner").count() and time.monotonic() < deadline:
        time.sleep(0.1)
    ask(page, "What is on this whiteboard?", 17)
    question = page.locator(MESSAGES).nth(16).inner_text()
    shown = re.search(r"whiteboard\.png · 1024×768 · (\w+) · (\d+) tokens", question)
    assert shown, question
    billed = [r for r in emulator_requests(stack) if r.get("kind") == "chat"][-1]["image_tokens"]
    assert int(shown.group(2)) == billed == 922  # ceil(768 patches × 1.2)

    # A limit the reasoning uses up: no blank bubble, a notice, and a one-click retry with a higher limit.
    press_on_slider(page, "Maximum answer length (tokens)", "Home")
    assert value_of(page, "Maximum answer length (tokens)") == "100"
    cut = ask(page, "Tell me everything about expenses", 19)
    assert "No answer: the model used its whole limit of 100 tokens" in cut and "100 of them reasoning" in cut, cut
    idle(page)
    page.get_by_role("button", name=re.compile(r"Retry with 2,000 tokens")).click()
    deadline = time.monotonic() + 60
    retried = page.locator(MESSAGES).nth(19)
    while time.monotonic() < deadline and ("No answer" in retried.inner_text()
                                           or "prompt +" not in retried.inner_text()):
        time.sleep(0.1)
    idle(page)
    text = retried.inner_text()
    assert "prompt +" in text and "No answer" not in text and "Tell me everything about expenses" in text, text
    assert value_of(page, "Maximum answer length (tokens)") == "2000"
    page.close()


def test_an_o_series_conversation_survives_its_summary(stack, browser):
    page = signed_in(stack, browser)
    choose(page, "Deployment", "o4-mini")
    assert value_of(page, "Reasoning effort") in ("medium", "Medium")
    before = len(emulator_requests(stack))
    for turn in range(5):
        answer = ask(page, f"o-series question {turn + 1}", 2 * turn + 1)
        assert "prompt +" in answer and "could not accept" not in answer, answer
    requests = [r for r in emulator_requests(stack)[before:] if r.get("kind") == "chat"]
    summaries = [r for r in requests if is_summary(r)]
    assert summaries and all(r["deployment"] == "o4-mini" for r in requests)
    assert all("temperature" not in r["body"] for r in requests)  # the summariser's temperature 0 is never sent
    assert summaries[0]["body"].get("reasoning_effort") == "low"  # the lightest effort o4-mini offers
    page.close()
