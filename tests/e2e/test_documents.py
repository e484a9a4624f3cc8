"""Documents in chromium: attach a 40-page PDF, ask about a fact on a known page, see the answer cite it and open the
cited passage under the answer; a bad file alongside is named with its reason."""
from __future__ import annotations

import time

import pytest

from tests.document_corpus import facts_pdf, scanned_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def attach(page, *paths) -> None:
    page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files([str(p) for p in paths])
    page.get_by_test_id("stFileChip").first.wait_for(timeout=30_000)
    deadline = time.monotonic() + 60  # the upload finishes before the message is sent, as a person would wait
    while page.get_by_test_id("stFileChipIconSpinner").count() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_pdf_is_indexed_the_answer_cites_its_page_and_the_passage_opens(stack, browser, tmp_path):
    data, facts = facts_pdf(40)
    fact = facts[5]
    handbook, scan = tmp_path / "handbook.pdf", tmp_path / "scan.pdf"
    handbook.write_bytes(data)
    scan.write_bytes(scanned_pdf())
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_text("Sign in with Microsoft").click(timeout=30_000)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    attach(page, handbook, scan)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(fact.question)
    box.press("Enter")

    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    answer.get_by_text("prompt +").wait_for(timeout=90_000)  # the usage caption: the turn has ended
    question = page.locator('[data-testid="stChatMessage"]').nth(0).inner_text()
    assert "handbook.pdf · 40 pages" in question and "passages indexed with text-embedding-3-small" in question
    assert "scan.pdf: it looks scanned: no text to read" in question
    text = answer.inner_text()
    assert fact.answer in text and "embedding tokens" in text
    source = answer.get_by_test_id("stExpander").filter(has_text=f"handbook.pdf · page {fact.page}")
    assert source.count() == 1
    source.click()
    source.get_by_text(fact.answer, exact=False).first.wait_for(timeout=10_000)  # the passage, opened
    page.close()
