"""Draws turns: stored ones as they are, and a running one from the turn engine's events as they arrive."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import streamlit as st

from config import current_settings
from engine import (
    Accepted,
    Blocked,
    BudgetNotice,
    DocumentIndexed,
    DocumentProgress,
    Event,
    NewMessage,
    Outcome,
    Status,
    StepEnded,
    StepStarted,
    TextDelta,
    ThinkingDelta,
)
from memory.conversation import Turn
from memory.export import usage_line
from store.files import FileStore
from ui import unsent
from ui.announce import announce_answer
from ui.copy import copy_button
from ui.links import honest_links
from ui.services import image_urls

Feedback = Callable[[Turn], None]
# At most ten page updates a second while streaming: each update re-sends the whole markdown; the first token and
# the end of the answer are shown at once, so time to first text and render throughput do not depend on it.
REFRESH_SECONDS = 0.1
SHOWN_MESSAGES = 50  # a long conversation shows its newest messages; earlier ones on request, 50 at a time


def visible_turns(turns: list[Turn], conversation_id: str) -> list[Turn]:
    """The newest messages, and a button above them for earlier ones: a rerun draws what the person is reading, not
    the whole history of a long conversation."""
    key = f"shown-{conversation_id}"
    shown = st.session_state.get(key, SHOWN_MESSAGES)
    hidden = len(turns) - shown
    if hidden <= 0:
        return turns
    st.button(f"Show earlier messages ({hidden} more)", key=f"earlier-{conversation_id}",
              icon=":material/expand_less:", on_click=lambda: st.session_state.update({key: shown + SHOWN_MESSAGES}))
    return turns[-shown:]


def show_turn(turn: Turn, files: FileStore | None, feedback: Feedback | None = None) -> None:
    with st.chat_message(turn.role):
        for step in turn.steps:
            _stored_step(step)
        if turn.content:
            st.markdown(honest_links(turn.content) if turn.role == "assistant" else turn.content)
        _turn_details(turn, files, feedback)


def _turn_details(turn: Turn, files: FileStore | None, feedback: Feedback | None) -> None:
    images = [a for a in turn.attachments if a.get("kind", "image") == "image"]
    if images and files is not None:
        # Links the person's own sign-in opens (web/files.py), never the bytes: Streamlit's media URLs open for anyone.
        urls = image_urls(current_settings(), files, [a.get("ref", "") for a in images])
        shown = [(url, a) for url, a in zip(urls, images) if url]
        if shown:
            st.image([url for url, _ in shown], width=120,
                     caption=[f"{a['name']} · {a['width']}×{a['height']} · {a['detail']} · {a['tokens']} tokens"
                              for _, a in shown],
                     alt=[f"Attached image {a['name']}" for _, a in shown])
    for document in (a for a in turn.attachments if a.get("kind") == "document"):
        st.caption(f":material/description: {document['summary']}")
    if turn.sources:
        _sources(turn.sources)
    if turn.excluded:
        st.caption("Blocked by the content filter: not sent to the model again.")
    if turn.notice:
        (st.warning if turn.status in ("stopped", "filtered", "cut_off") else st.error)(turn.notice,
                                                                                       icon=":material/error:")
    if turn.usage:
        st.caption(usage_caption(turn))
    if turn.role == "assistant" and turn.content:
        copy_button(turn.content, key=f"copy-{turn.id}")
    if feedback and turn.role == "assistant":  # a failed answer too: it can be regenerated
        feedback(turn)


def _sources(sources: list[dict]) -> None:
    """Each source the answer cites: file and page or section, the passage on request."""
    st.caption("Sources")
    for source in sources:
        where = f" · {source['where']}" if source.get("where") else ""
        with st.expander(f"[{source['n']}] {source['file']}{where}"):
            st.markdown(_escape_markdown(source["text"]))


def _escape_markdown(text: str) -> str:
    """A passage is quoted as written: its characters must not turn into markdown (headings, links, tables)."""
    special = "\\`*_{}[]()#+-.!|>~<$"
    return "".join(f"\\{c}" if c in special else c for c in text).replace("\n", "  \n")


def usage_caption(turn: Turn) -> str:
    """The usage line under an answer; exports write the same line (memory/export.py)."""
    return usage_line(turn)


def run_turn(events: Iterator[Event], files: FileStore | None, feedback: Feedback,
             message: NewMessage | None = None) -> Outcome | Blocked | None:
    """Render a running turn's events; returns how it ended. `message`: shown at once (its text, and each file with
    what is being done to it) until the engine accepts it. If Streamlit stops the script (the person pressed Stop),
    closing the events ends the model call (or kills the file's reader) and stores the partial answer."""
    try:
        return _render(events, files, feedback, _Echo(message) if message is not None else None)
    finally:
        events.close()


class _Echo:
    """The person's message as sent, before the engine has accepted it: text, then one line per file."""

    def __init__(self, message: NewMessage) -> None:
        self.message, self.slot = message, st.empty()
        self.status = {upload.name: "waiting to be read" for upload in message.uploads}
        self.draw()

    def update(self, event: DocumentProgress | DocumentIndexed) -> None:
        if isinstance(event, DocumentIndexed):
            self.status[event.document.name] = "ready"
        else:
            self.status[event.name] = file_status(event)
        self.draw()

    def draw(self) -> None:
        with self.slot.container(), st.chat_message("user"):
            if self.message.text:
                st.markdown(self.message.text)
            for name, status in self.status.items():
                st.caption(f":material/attach_file: {name} · {status}")
            if self.status:
                st.caption("Not sent yet: Stop keeps this message and its files for you to send again.")

    def clear(self) -> None:
        self.slot.empty()


def file_status(event: DocumentProgress) -> str:
    """What is being done to one file, in words."""
    if event.phase == "reading":
        return f"reading page {event.done} of {event.total}" if event.total > 1 else "reading"
    if event.phase == "waiting":
        return "waiting for a free reader (other files are being read)"
    if event.phase == "paused":
        return (f"indexing paused at your per-minute token limit ({event.done} of {event.total} passages); it "
                f"resumes at {event.until:%H:%M:%S} UTC")
    return f"indexing: {event.done} of {event.total} passages"


def _render(events: Iterator[Event], files: FileStore | None, feedback: Feedback,
            echo: _Echo | None = None) -> Outcome | Blocked | None:
    box = status = steps_slot = text_slot = reading = None
    thinking = thinking_box = None
    thinking_text, thinking_started, thinking_done = "", 0.0, False
    open_steps: dict = {}
    text, shown, waiting, last_update = "", "", False, 0.0
    for event in events:
        if isinstance(event, TextDelta):
            text += event.text
            now = time.monotonic()
            if now - last_update < REFRESH_SECONDS:
                continue  # every page update re-sends the whole markdown: group tokens
            if waiting:
                status.empty()
                waiting = False
            text_slot.markdown(honest_links(text))
            shown, last_update = text, now
            continue
        if isinstance(event, ThinkingDelta):  # the reasoning summary: its own expanded step above the answer
            if thinking is None:
                with steps_slot:
                    thinking_box = st.status(":material/psychology: Thinking…", expanded=True)
                thinking, thinking_text, thinking_started = thinking_box.empty(), "", time.monotonic()
            thinking_text += event.text
            thinking.markdown(thinking_text)
            continue
        if thinking is not None and not thinking_done and (isinstance(event, (TextDelta, Outcome)) or text):
            thinking_done = True  # the answer has begun: the thinking collapses with how long it took
            seconds = time.monotonic() - thinking_started
            thinking_box.update(label=f":material/psychology: Thinking · {seconds:.1f} s", state="complete",
                                expanded=False)
        if text != shown:  # the stream has paused or ended: show what is pending before anything else
            text_slot.markdown(honest_links(text))
            shown = text
        if isinstance(event, (DocumentProgress, DocumentIndexed)):
            if echo is not None:
                echo.update(event)
            if not isinstance(event, DocumentProgress) or event.phase in ("indexing", "paused"):
                reading = reading or st.empty()
                _show_reading(reading, event)
            continue
        if reading is not None:
            reading.empty()
        if isinstance(event, Blocked):
            if echo is not None:
                echo.clear()
            return event
        if isinstance(event, BudgetNotice):
            st.warning(event.text, icon=":material/savings:")
        elif isinstance(event, Accepted):
            unsent.accepted()
            if echo is not None:
                echo.clear()
            show_turn(event.turn, files)
            box = st.chat_message("assistant")
            status, steps_slot, text_slot = box.empty(), box.container(), box.empty()
        elif isinstance(event, Status) and status is None:  # before the answer's box exists: waiting to send
            reading = reading or st.empty()
            reading.caption(f":material/hourglass_top: {event.text}")
        elif isinstance(event, Status):
            status.caption(f":material/hourglass_top: {event.text}")
            waiting = True
        elif isinstance(event, (StepStarted, StepEnded)):
            _show_step(steps_slot, open_steps, event)
        elif isinstance(event, Outcome):
            if waiting:
                status.empty()
            _show_outcome(box, text_slot, event, files, feedback)
            return event
    return None


def _show_reading(slot, event: DocumentProgress | DocumentIndexed) -> None:
    """A long document is being indexed: a progress bar; then what it cost."""
    if isinstance(event, DocumentProgress):
        share = event.done / event.total if event.total else 1.0
        slot.progress(share, text=f"{event.name}: {file_status(event)}")
    else:
        slot.caption(f":material/description: {event.document.describe()}")


ICONS = {"tool": ":material/build:", "retrieval": ":material/search:", "model": ":material/edit_note:"}


def _label(kind: str, name: str, duration_ms: int | None = None, error: str | None = None) -> str:
    how = "" if duration_ms is None else f" · failed ({error})" if error else f" · {duration_ms} ms"
    return f"{ICONS.get(kind, '')} {name}{how}"


def _stored_step(step: dict) -> None:
    if step["kind"] == "thinking":  # the reasoning summary, collapsed: open it to read what the model considered
        took = f" · {step['duration_ms'] / 1000:.1f} s" if step.get("duration_ms") else ""
        with st.status(f":material/psychology: Thinking{took}", state="complete", expanded=False):
            st.markdown(step.get("output") or "")
        return
    with st.status(_label(step["kind"], step["name"], step.get("duration_ms"), step.get("error")),
                   state="error" if step.get("error") else "complete", expanded=False):
        _step_details(step.get("input"), step.get("output"))


def _step_details(given: str | None, result: str | None) -> None:
    if given:
        st.caption(f"Input: {given}")
    if result:
        st.caption(f"Result: {result}")


def _show_step(slot, open_steps: dict, event) -> None:
    """A step other than the answer itself (a tool call, a draft, a summary): expanded while it runs, then collapsed
    with its duration and a short result."""
    if event.kind == "model" and event.name == "answer":
        return
    if isinstance(event, StepStarted):
        with slot:
            status = st.status(_label(event.kind, event.name) + " · running…", expanded=True)
        status.caption(f"Input: {event.input}" if event.input else "Running…")
        open_steps[event.id] = status
        return
    status = open_steps.pop(event.id, None)
    if status is None:
        return
    status.update(label=_label(event.kind, event.name, event.duration_ms, event.error),
                  state="error" if event.error else "complete", expanded=False)
    if event.output:
        status.caption(f"Result: {event.output}")


def _show_outcome(box, text_slot, outcome: Outcome, files: FileStore | None, feedback: Feedback) -> None:
    answer = outcome.answer
    if answer.content:
        text_slot.markdown(honest_links(answer.content))
    else:
        text_slot.empty()
    with box:
        _turn_details(answer, files, feedback)
        if outcome.failure and outcome.failure.kind == "prompt_filtered":
            st.caption("Your message, to copy and rephrase:")
            st.code(outcome.user.content, language=None, wrap_lines=True)
        announce_answer(answer.content, answer.notice)  # screen readers hear it once, now that it is complete
