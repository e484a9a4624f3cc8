"""Page CSS where Streamlit itself falls short of WCAG AA (checked by tests/e2e/test_accessibility.py):
- focus visible (2.4.7): the page menu's links show only a faint background and the scrollable main area nothing at
  all when focused by keyboard;
- the sidebar's collapse button is hidden (visibility) unless the mouse is over the sidebar, so Tab skips it; here it
  is transparent instead (focusable), still shown on mouse-over and now also when focused;
- contrast (1.4.3): a slider's value is drawn in the primary colour, 3.5:1 on the dark theme's background. A lighter
  primary colour would put white text on primary buttons below 4.5:1, so in the dark theme (which follows the system
  setting: people get no theme menu) the value takes the text colour.
"""
from __future__ import annotations

import streamlit as st

# Style-only st.html goes to Streamlit's event container: it applies to the whole page and takes no room.
_STYLE = """<style>
[data-testid="stSidebarNavLink"]:focus-visible,
[data-testid="stAppScrollToBottomContainer"]:focus-visible,
[data-testid="stMain"]:focus-visible { outline: 2px solid currentColor; outline-offset: -2px; }
@media not all and (max-width: 576px) {  /* Streamlit always shows it on small screens */
  [data-testid="stSidebarHeader"] [data-testid="stSidebarCollapseButton"] { visibility: visible; opacity: 0; }
  [data-testid="stSidebarContent"]:hover [data-testid="stSidebarCollapseButton"],
  [data-testid="stSidebarHeader"] [data-testid="stSidebarCollapseButton"]:focus-within { opacity: 1; }
}
@media (prefers-color-scheme: dark) { [data-testid="stSliderThumbValue"] { color: inherit; } }
</style>"""


def accessible_styles() -> None:
    """Call once per run of every page."""
    st.html(_STYLE)
