"""Entry point: `streamlit run app.py` serves the chat page plus the sign-in routes. Settings are checked first so a
bad one stops start-up with one clear message."""
import os
import sys
from pathlib import Path

# Everything this process writes (databases, audit log, stored files, their folders) is readable by its own user only.
os.umask(0o077)

# The imports below come after the umask: importing them already makes folders and files (caches, Streamlit's own).
import streamlit as st
import uvicorn.config
from starlette.middleware import Middleware
from streamlit import config as streamlit_config
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from auth.routes import build_routes
from auth.services import auth_services
from callbacks.metrics import process_metrics
from config import ConfigError, load_settings
from config.data_dir import protect_data_dir
from config.logs import configure_logging
from config.migrations import upgrade_on_start
from ui.services import audit_log, conversation_store, file_links, usage_ledger
from ui.usage import usage_reports
from web import security_middleware
from web.files import file_routes
from web.metrics import metrics_middleware, metrics_route, scrape_allowed
from web.session_boundary import OWNER_HEADER, OWNER_KEY, SessionBoundary

try:
    settings = load_settings()
except ConfigError as problem:
    sys.stderr.write(f"{problem}\n")
    raise SystemExit(2) from None

configure_logging(settings.app.log_level)
# Uvicorn (under Streamlit) rewrites the client address from X-Forwarded-For for loopback peers (FORWARDED_ALLOW_IPS,
# default 127.0.0.1 and ::1) before any middleware runs: a local client could name any address. Forwarded headers are
# read in one place, auth/security_context.client_ip, from APP_TRUSTED_PROXIES only. Uvicorn has built its
# configuration before importing this file (the env variable would come too late), but wraps the app only after the
# import, through this module attribute: the wrap is replaced by the app itself.
uvicorn.config.ProxyHeadersMiddleware = lambda asgi_app, trusted_hosts=None: asgi_app
protect_data_dir(settings.app.data_dir)  # 0700 folder, 0600 files, also for files an older release created
upgrade_on_start(settings)  # the database schema, one replica at a time; a newer database stops start-up
# The page session belongs to whoever's sign-in opened it: Streamlit compares this header's value (written only by
# web/session_boundary.py) when a WebSocket asks to resume a session, so another person's reconnect gets a new one.
streamlit_config.set_option("server.trustedUserHeaders", {OWNER_HEADER: OWNER_KEY}, "app.py")
# Streamlit's own upload limit is the product's largest file (the chat input's limit), not its default 200 MB.
largest_upload = settings.app.upload_ceiling_bytes  # the engine names a file over its own limit (engine/turn.py)
streamlit_config.set_option("server.maxUploadSize", max(1, -(-largest_upload // 1_048_576)), "app.py")

PAGE = Path(__file__).resolve().parent / "ui" / "page.py"
# Prometheus metrics of this replica at /metrics, only when a token or networks are configured (else a 404).
metrics = process_metrics() if settings.app.metrics_enabled else None
# Security headers and the sign-in rate limit on every response; the CSP allows Streamlit's inline bootstrap by hash.
middleware = [*security_middleware(settings, (Path(st.__file__).parent / "static" / "index.html").read_text()),
              *metrics_middleware(metrics)]
routes = [metrics_route(settings.app, metrics)]
services = None
if not settings.app.auth_disabled:  # auth_disabled: local experiments only (settings refuse it for a non-localhost URL)
    services = auth_services(settings)
    routes += build_routes(services.signin, services.sessions, settings.app.public_url,
                           on_sign_in=metrics.sign_in if metrics else None)
# Files leave only through these owner-checked routes (images, exports, the ZIP, the admin CSV), never through
# Streamlit's media manager or deferred downloads.
routes += file_routes(file_links(settings), sessions=(lambda: services.sessions) if services else None,
                      store=lambda: conversation_store(settings), ledger=lambda: usage_ledger(settings),
                      reports=lambda: usage_reports(settings), audit=lambda: audit_log(settings),
                      admin_role=settings.app.admin_role, trusted_proxies=settings.app.trusted_proxies)
# Just inside the security headers: Streamlit's own routes and WebSocket messages are checked before anything else.
middleware.insert(1, Middleware(
    SessionBoundary, public_url=settings.app.public_url,
    owner_secret=settings.app.session_secret.get_secret_value() if settings.app.session_secret else os.urandom(32).hex(),
    signed_in=(lambda cookie: services.sessions.get(cookie) is not None) if services else None,
    upload_limit_bytes=largest_upload, files_per_message=settings.app.max_files_per_message,
    in_flight_bytes=settings.app.upload_in_flight_bytes, metrics_allowed=scrape_allowed(settings.app),
    back_message=BackMsg, forward_message=ForwardMsg))
app = st.App(PAGE, routes=routes, middleware=middleware)
