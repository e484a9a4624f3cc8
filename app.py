"""Entry point: `streamlit run app.py` serves the chat page plus the sign-in routes. Settings are checked first so a
bad one stops start-up with one clear message."""
import sys
from pathlib import Path

import streamlit as st

from auth.routes import build_routes
from auth.services import auth_services
from callbacks.metrics import process_metrics
from config import ConfigError, load_settings
from config.logs import configure_logging
from config.migrations import upgrade_on_start
from web import security_middleware
from web.metrics import metrics_middleware, metrics_route

try:
    settings = load_settings()
except ConfigError as problem:
    sys.stderr.write(f"{problem}\n")
    raise SystemExit(2) from None

configure_logging(settings.app.log_level)
upgrade_on_start(settings)  # the database schema, one replica at a time; a newer database stops start-up

PAGE = Path(__file__).resolve().parent / "ui" / "page.py"
# Prometheus metrics of this replica at /metrics, only when a token or networks are configured (else a 404).
metrics = process_metrics() if settings.app.metrics_enabled else None
# Security headers and the sign-in rate limit on every response; the CSP allows Streamlit's inline bootstrap by hash.
middleware = [*security_middleware(settings, (Path(st.__file__).parent / "static" / "index.html").read_text()),
              *metrics_middleware(metrics)]
routes = [metrics_route(settings.app, metrics)]
if not settings.app.auth_disabled:  # auth_disabled: local experiments only (settings refuse it for a non-localhost URL)
    services = auth_services(settings)
    routes += build_routes(services.signin, services.sessions, settings.app.public_url,
                           on_sign_in=metrics.sign_in if metrics else None)
app = st.App(PAGE, routes=routes, middleware=middleware)
