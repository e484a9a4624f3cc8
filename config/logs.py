"""Process-wide logging: the app's own loggers at the configured level, chatty libraries held at WARNING."""
from __future__ import annotations

import logging

# At DEBUG these log request bodies and URLs: msal logs authorization codes and PKCE verifiers, httpx/httpcore log
# redirect URLs with codes. They stay at WARNING whatever APP_LOG_LEVEL says, so no secret reaches a log.
QUIET_LIBRARIES = ("msal", "httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "azure", "openai", "requests")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
