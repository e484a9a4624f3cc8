"""Hostile documents against the real stack in chromium, two people signed in (issue 32): a file that would keep a
core busy for an hour is read in a worker process that Stop kills, the person sees their message and the file's
progress at once and keeps both after Stop, the other person's answers are not held up, a file past the deadline is
named and the message goes on, a large index is asked about before it is paid for, and a file over the limit holds
the message and is named."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import hostile_files as hostile
from tests.e2e.conftest import chromium_for, idle, start_stack
from tests.unit.test_indexing_spending import distinct_pages

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MESSAGES = '[data-testid="stChatMessage"]'
DEADLINE = 8  # seconds one file may take to read, for this stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("hostile"), env={
        "APP_DOCUMENT_READ_SECONDS": str(DEADLINE), "APP_INDEX_CONFIRM_TOKENS": "3000",
        "APP_MAX_DOCUMENT_BYTES": str(1_048_576)})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(stack):
    with chromium_for(stack) as chromium:
        yield chromium


def sign_in(browser, url: str, login_hint: str | None = None):
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    if login_hint:
        page.goto(f"{url}/signin?login_hint={login_hint}")
    else:
        page.get_by_text("Sign in with Microsoft").click()
    page.get_by_text("Signed in as").wait_for()
    return page


def send(page, text: str, *files: Path) -> None:
    idle(page)
    if files:
        page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files([str(f) for f in files])
        page.get_by_test_id("stFileChip").first.wait_for(timeout=30_000)
        deadline = time.monotonic() + 60
        while page.get_by_test_id("stFileChipIconSpinner").count() and time.monotonic() < deadline:
            time.sleep(0.1)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")


def readers(stack) -> list[int]:
    """The stack's document readers: children of its forkserver (same process group, same command line)."""
    group = os.getpgid(stack.process.pid)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
            if b"multiprocessing.forkserver" in command and os.getpgid(int(entry.name)) == group:
                parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
                found.append((int(entry.name), parent))
        except (OSError, ProcessLookupError, StopIteration):
            continue
    servers = {pid for pid, _ in found}
    return [pid for pid, parent in found if parent in servers]  # the forkserver's children, not the server


def wait_until(check, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def test_a_slow_file_shows_progress_stop_kills_its_reader_and_keeps_the_message_and_the_other_person_goes_on(
        stack, browser, tmp_path):
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(hostile.slow_text_pdf())
    ada = sign_in(browser, stack.url)
    grace = sign_in(browser, stack.url, "grace@contoso.example")

    send(ada, "What does the slow report say?", slow)
    # At once: the question and the file, with what is being done to it (the page is not greyed out silently).
    ada.get_by_text("What does the slow report say?").wait_for(timeout=5_000)
    ada.get_by_text("slow.pdf · reading").first.wait_for(timeout=5_000)
    wait_until(lambda: readers(stack), 10, "no reader process for the file")

    # Grace is answered while Ada's file is being read.
    send(grace, "Hello from Grace")
    grace.locator(MESSAGES).nth(1).get_by_text("prompt +").wait_for(timeout=30_000)
    assert readers(stack), "Ada's file was done before Grace's answer: the test proves nothing"

    ada.get_by_test_id("stChatInputStopButton").click()
    wait_until(lambda: not readers(stack), 5, "Stop did not end the reader process")
    idle(ada)
    # The message was never sent; it is kept with its file to send again (shown from the page's next run).
    for _ in range(2):  # any rerun will do: the on-behalf-of switch, flipped and flipped back
        ada.get_by_text("Call Azure OpenAI with my own identity").click()
        idle(ada)
    kept = ada.get_by_text("Stopped before it was sent:")
    kept.wait_for(timeout=20_000)
    assert ada.get_by_text("slow.pdf").count() and ada.get_by_role("button", name="Send it").count()
    assert ada.locator(MESSAGES).count() == 0


def test_a_file_past_the_deadline_is_named_and_the_message_goes_on(stack, browser, tmp_path):
    slow, notes = tmp_path / "slow.pdf", tmp_path / "notes.txt"
    slow.write_bytes(hostile.slow_text_pdf())
    notes.write_text("The Orion kick-off is on 12 March.")
    ada = sign_in(browser, stack.url)
    started = time.monotonic()
    send(ada, "When is the kick-off?", slow, notes)
    answer = ada.locator(MESSAGES).nth(1)
    answer.get_by_text("prompt +").wait_for(timeout=(DEADLINE + 60) * 1000)
    assert time.monotonic() - started < DEADLINE + 45
    question = ada.locator(MESSAGES).nth(0).inner_text()
    assert f"slow.pdf: it could not be read within {DEADLINE} s" in question and "notes.txt" in question
    wait_until(lambda: not readers(stack), 5, "the reader outlived its deadline")


def test_a_large_index_is_asked_about_first_and_a_file_over_the_limit_holds_the_message(stack, browser, tmp_path):
    manual, big = tmp_path / "manual.txt", tmp_path / "big.txt"
    manual.write_text(distinct_pages(120))  # over the 8,000 tokens sent whole: indexed, and over 3,000: asked
    big.write_bytes(b"x" * 1_600_000)
    ada = sign_in(browser, stack.url)

    send(ada, "Summarise the manual and the big file", manual, big)
    ada.get_by_text("big.txt is 1.5 MB; the limit is 1 MB.").wait_for(timeout=30_000)
    assert ada.locator(MESSAGES).count() == 0  # nothing was sent without the file
    ada.get_by_text("Your unsent message:").wait_for()
    kept = ada.get_by_text("manual.txt").first
    kept.wait_for()
    assert "big.txt" not in kept.inner_text()  # kept: the file within its limit, not the one over it

    ada.get_by_role("button", name="Send it").click()  # again, now without big.txt
    ada.get_by_text("must be indexed first").wait_for(timeout=30_000)
    assert ada.locator(MESSAGES).count() == 0  # asked before anything was paid for
    ada.get_by_role("button", name="Index and send").click()
    answer = ada.locator(MESSAGES).nth(1)
    answer.get_by_text("prompt +").wait_for(timeout=90_000)
    assert "passages indexed with" in ada.locator(MESSAGES).nth(0).inner_text()
