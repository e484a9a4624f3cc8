"""The person's own choices of answer limit and reasoning effort, kept apart from the sidebar's widgets: a widget whose
range changes with the deployment is a new widget to Streamlit (it would fall back to its minimum), while the choice
must survive switching deployments and back (clamped to each deployment's maximum)."""
from __future__ import annotations

import streamlit as st

WANTED_LIMIT, WANTED_EFFORT = "wanted_answer_limit", "wanted_reasoning_effort"
SHOWN = "shown_"  # + a widget's key: the value this page last put in that widget (not a choice of the person's)


def want_answer_limit(tokens: int) -> None:
    """Sets the person's answer limit (a button's callback); the slider shows it from the next run."""
    st.session_state[WANTED_LIMIT] = st.session_state["max_output_tokens"] = int(tokens)
