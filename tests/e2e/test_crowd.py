"""The protocol-level load generator (bench/streamlit_client.py, bench/crowd.py) against a real Streamlit server: real
sign-in, Streamlit's own WebSocket protocol, streamed answers timed, failures told apart from completed turns, nothing
lost, and a page without a session gets no chat input. What bench/capacity.py's figures rest on."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.capacity import emulators_for, free_port, replica, stored_questions
from bench.crowd import crowd
from bench.streamlit_client import ProtocolError, StreamlitPerson, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTFT = 0.5  # bench/capacity.py's pacing: the scripted emulator's first token after half a second


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("crowd")
    port = free_port()
    with emulators_for(scratch, 6, port) as (config, emulators), replica(config, emulators, port, scratch / "app"):
        yield config.public_url, emulators, scratch / "app"


def bounded(coroutine, seconds: float = 180):
    return asyncio.run(asyncio.wait_for(coroutine, seconds))


def test_a_crowd_signs_in_chats_and_every_turn_is_timed_and_stored(app):
    url, emulators, data_dir = app
    result = bounded(crowd(url, emulators.tls.ca_file, [0, 1, 2], turns=2, timeout=60, arrivals=3,
                           start_within=0.2))
    assert result["sign_in_failures"] == [] and result["opened"] == 3
    turns = result["turns"]
    assert len(turns) == 6 and {t["outcome"] for t in turns} == {"completed"}, turns
    for turn in turns:
        # The first answer text cannot come before the emulator's first token, and comes before the run ends.
        assert TTFT <= turn["ttft"] < turn["ended"] - turn["sent"], turn
    assert result["leaks"] == []
    assert stored_questions(data_dir, 3) == 6  # nothing the crowd saw answered is missing from the store


def test_a_refused_question_is_counted_as_failed_with_the_pages_message(app):
    url, emulators, _ = app

    async def ask() -> tuple:
        person = StreamlitPerson(url, await sign_in(url, "load-user-4@contoso.example", emulators.tls.ca_file),
                                 timeout=60)
        await person.open()
        try:
            filtered = await person.ask("Tell me something [[fault:prompt_filter]]", answer_start="You said")
            fine = await person.ask("And now something harmless")
        finally:
            await person.close()
        return filtered, fine

    filtered, fine = bounded(ask())
    assert filtered.outcome == "failed" and filtered.first_text is None
    assert "content" in filtered.detail.lower() or "filter" in filtered.detail.lower(), filtered.detail
    assert fine.outcome == "completed" and fine.ttft >= TTFT  # the conversation goes on


def test_without_a_session_the_page_offers_no_chat(app):
    url, _, _ = app

    async def open_signed_out() -> None:
        person = StreamlitPerson(url, "not-a-session", timeout=30)
        try:
            await person.open()
        finally:
            await person.close()

    with pytest.raises(ProtocolError, match="no chat input"):
        bounded(open_signed_out(), 60)


def test_the_load_generator_talks_to_loopback_only(tmp_path: Path):
    with pytest.raises(ValueError, match="loopback"):
        bounded(sign_in("http://chat.contoso.example", "someone@contoso.example", tmp_path / "ca.pem"), 10)
