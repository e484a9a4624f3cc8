"""Entry point: `streamlit run app.py` serves the chat page. Settings are checked first so a bad one stops start-up."""
import logging
import sys
from pathlib import Path

import streamlit as st

from config import ConfigError, load_settings

try:
    settings = load_settings()
except ConfigError as problem:
    sys.stderr.write(f"{problem}\n")
    raise SystemExit(2) from None

logging.basicConfig(level=settings.app.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = st.App(Path(__file__).resolve().parent / "ui" / "page.py")
