"""Tells screen readers that an answer has finished: its text goes into one polite live region, once, at the end (the
streaming text itself is in no live region, so it is not read out token by token).

A live region is only announced reliably when it is already in the page before its text changes. So the region is one
visually hidden `role="status"` element at the end of the document body, created by `answer_announcer()` (mounted on
every run of the chat page, before any answer can finish) and filled by `announce_answer()`. It sits outside Streamlit's
element tree, so reruns neither replace nor empty it (an `st.html` slot, by contrast, is a new DOM node every time its
content changes). Both are components.v2 components (in the page itself, no iframe) whose element containers are hidden
through their key's CSS class, so they take no room.
"""
from __future__ import annotations

import re
import uuid

import streamlit as st

_JS = """
const REGION_ID = "answer-announcer";
// The standard visually-hidden ("sr-only") style: read by screen readers, never seen.
const HIDDEN = "position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);"
  + "white-space:nowrap;border:0;";

function region() {
  let live = document.getElementById(REGION_ID);
  if (!live) {
    live = document.createElement("div");
    live.id = REGION_ID;
    live.setAttribute("role", "status");
    live.setAttribute("aria-live", "polite");
    live.setAttribute("aria-atomic", "true");
    live.setAttribute("data-testid", "answerAnnouncer");
    live.style.cssText = HIDDEN;
    document.body.appendChild(live);
  }
  return live;
}

export default function (component) {
  const { data } = component;
  const live = region();
  if (!data || !data.id || live.dataset.announced === data.id) return;  // a re-render, not a new answer
  live.dataset.announced = data.id;
  if (!live.textContent) {
    live.textContent = data.text;
    return;
  }
  // The same text twice would be no change: empty the region first, then fill it.
  live.textContent = "";
  setTimeout(() => { live.textContent = data.text; }, 100);
}
"""

_component = st.components.v2.component("answer_announcer", html="", js=_JS)
# Hidden element containers take no room in the layout (Streamlit gives keyed elements the class st-key-<key>).
_STYLE = '<style>[class*="st-key-answer_announcer"] { display: none; }</style>'


def answer_announcer() -> None:
    """Puts the empty live region into the page; call it on every run of the chat page, before any answer can end."""
    st.html(_STYLE)
    _component(key="answer_announcer_region", data=None, width="content")


def announce_answer(text: str, problem: str | None = None) -> None:
    """Has screen readers read the finished answer (and what went wrong, if something did) once."""
    said = spoken(text)
    message = f"Answer finished: {said}" if said else "The answer ended without text."
    if problem:
        message = f"{message} {problem}"
    st.html(_STYLE)
    announcement = uuid.uuid4().hex
    _component(key=f"answer_announcer_{announcement}", data={"id": announcement, "text": message}, width="content")


def spoken(markdown: str) -> str:
    """The answer as read aloud: link and image texts without their addresses; no emphasis, code or heading marks."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"^\s{0,3}(#{1,6}\s+|>\s?|```.*$)", "", text, flags=re.MULTILINE)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return re.sub(r"\s+", " ", text).strip()
