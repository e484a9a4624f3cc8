"""A "Copy answer" button under each answer: copies the answer's markdown in the browser.

A components.v2 component: it renders in the page itself (no iframe per answer), its JS is sent once per page as a
cached module, and the answer travels as the component's data. The click never reports back to Python, so it never
reruns the script.
"""
from __future__ import annotations

import streamlit as st

_HTML = """
<div class="copy">
  <button type="button" class="copy-button">
    <svg class="icon" aria-hidden="true" viewBox="0 0 24 24" width="16" height="16">
      <rect x="9" y="9" width="12" height="12" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>
    </svg>
    <span>Copy answer</span>
  </button>
  <span class="status" role="status" aria-live="polite"></span>
</div>
"""

_CSS = """
.copy { display: flex; align-items: center; gap: 0.5rem; font-family: var(--st-font); }
.copy-button {
  display: inline-flex; align-items: center; gap: 0.35rem; min-height: 2rem; padding: 0.25rem 0.6rem;
  font: inherit; font-size: 0.875rem; color: var(--st-text-color); background: transparent; cursor: pointer;
  border: 1px solid var(--st-border-color); border-radius: var(--st-button-radius);
}
.copy-button:hover { border-color: var(--st-primary-color); color: var(--st-primary-color); }
.copy-button:focus-visible { outline: 2px solid var(--st-primary-color); outline-offset: 2px; }
.icon { fill: none; stroke: currentColor; stroke-width: 2; stroke-linecap: round; stroke-linejoin: round; flex: none; }
.status { font-size: 0.875rem; color: var(--st-text-color); opacity: 0.8; }
"""

# navigator.clipboard needs a secure context (https, or http on 127.0.0.1/localhost); otherwise a hidden textarea and
# execCommand("copy"), which still works on a click.
_JS = """
function fallbackCopy(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed"; area.style.top = "0"; area.style.left = "0"; area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  try { return document.execCommand("copy"); } finally { area.remove(); }
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* denied: try the fallback */ }
  }
  return fallbackCopy(text);
}

export default function (component) {
  const { data, parentElement } = component;
  const button = parentElement.querySelector(".copy-button");
  const status = parentElement.querySelector(".status");
  let timer;
  button.onclick = async () => {
    const ok = await copyText((data && data.text) || "").catch(() => false);
    button.focus();  // the fallback moved focus to its textarea
    status.textContent = ok ? "Copied" : "Could not copy: select the text and copy it";
    clearTimeout(timer);
    timer = setTimeout(() => { status.textContent = ""; }, ok ? 3000 : 8000);
  };
  return () => clearTimeout(timer);
}
"""

_component = st.components.v2.component("copy_answer", html=_HTML, css=_CSS, js=_JS)


def copy_button(text: str, key: str) -> None:
    """A button that copies `text` (the answer's markdown) to the clipboard; `key` must be unique on the page."""
    _component(key=key, data={"text": text}, width="content")
