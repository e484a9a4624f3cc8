"""What the page needs from the layers below, built once per process (or per person where it must be): the database,
the conversation store, the audit log with its listeners (chain statistics, metrics), the turn engine, and who asks.

Process-level objects are held in plain `functools.cache`s, not `st.cache_resource`: Streamlit empties that cache for
every session when any page sends `clear_cache` (the WebSocket boundary drops that message too, web/session_boundary.py),
and rebuilding them would start a second replica heartbeat thread, a second audit handler, a second database pool."""
from __future__ import annotations

import functools
import secrets
from pathlib import Path

import streamlit as st
from sqlalchemy.engine import Engine

from auth.person_tokens import PersonTokens
from auth.security_context import LOOPBACK, SecurityContext, client_ip
from auth.services import AuthServices
from auth.sessions import AuthSession
from callbacks.audit import AuditLog, configure_audit_log, session_reference
from callbacks.chain_stats import ChainStatistics
from callbacks.metrics import process_metrics
from config.database import database_engine
from config.settings import Settings
from engine import Asker, TurnEngine
from memory.store import ConversationStore, Owner
from store.files import MIME, REFERENCE, FileStore
from store.inflight import TurnsInFlight
from store.usage import UsageLedger
from ui import session as page_session
from web.files import FileLinks


def _database_key(settings: Settings) -> tuple[str | None, str]:
    url = settings.app.database_url.get_secret_value() if settings.app.database_url else None
    return url, str(settings.app.data_dir.resolve())


@functools.cache
def _database(database_url: str | None, data_dir: str) -> Engine:
    return database_engine(database_url, Path(data_dir), "conversations.db")


@functools.cache
def _store(database_url: str | None, data_dir: str) -> ConversationStore:
    return ConversationStore(_database(database_url, data_dir), FileStore(Path(data_dir) / "images"))


@functools.cache
def _statistics(database_url: str | None, data_dir: str) -> ChainStatistics:
    return ChainStatistics(_database(database_url, data_dir))


@functools.cache
def _usage(database_url: str | None, data_dir: str) -> UsageLedger:
    return UsageLedger(_database(database_url, data_dir))


@functools.cache
def _audit_log(database_url: str | None, data_dir: str, to_stdout: bool, metrics: bool) -> AuditLog:
    logger = configure_audit_log(Path(data_dir), to_stdout=to_stdout)
    listeners = [_statistics(database_url, data_dir).record]
    if metrics:  # this process's Prometheus metrics (the /metrics route of app.py serves the same object)
        listeners.append(process_metrics().record)
    return AuditLog(logger, listeners=listeners)


@functools.cache
def _flights(database_url: str | None, data_dir: str) -> TurnsInFlight:
    _store(database_url, data_dir)  # the schema is there before anything is written to it
    return TurnsInFlight(_database(database_url, data_dir))


def turns_in_flight(settings: Settings) -> TurnsInFlight:
    """This replica's heartbeat and running turns (one per process)."""
    return _flights(*_database_key(settings))


def conversation_store(settings: Settings) -> ConversationStore:
    return _store(*_database_key(settings))


def chain_statistics(settings: Settings) -> ChainStatistics:
    return _statistics(*_database_key(settings))


def usage_ledger(settings: Settings) -> UsageLedger:
    return _usage(*_database_key(settings))


def audit_log(settings: Settings) -> AuditLog:
    return _audit_log(*_database_key(settings), settings.app.audit_stdout, settings.app.metrics_enabled)


def turn_engine(settings: Settings) -> TurnEngine:
    # Cheap to build; settings are re-read on every rerun so a changed setting applies at once.
    return TurnEngine(settings, conversation_store(settings), audit_log(settings), usage=usage_ledger(settings))


# -- links to the person's files (web/files.py serves them after checking the cookie and the owner) -------------------
# Sign-in off (local experiments): no session secret, so links are signed with a secret of this process.
_PROCESS_SECRET = secrets.token_urlsafe(48)


@functools.cache
def _file_links(secret: str, max_age_seconds: int) -> FileLinks:
    return FileLinks(secret, max_age_seconds)


def file_links(settings: Settings) -> FileLinks:
    """The process's link signer, the one app.py hands to `web.files.file_routes`. A link lives as long as a sign-in
    may (it opens nothing once its session has ended anyway)."""
    secret = settings.app.session_secret.get_secret_value() if settings.app.session_secret else _PROCESS_SECRET
    return _file_links(secret, int(settings.app.session_hours * 3600))


def session_id(settings: Settings) -> str | None:
    """This page's sign-in session id (the cookie's value), which links are bound to."""
    return page_session.LOCAL_EXPERIMENT.id if settings.app.auth_disabled else page_session.session_cookie()


def image_urls(settings: Settings, files: FileStore, refs: list[str]) -> list[str | None]:
    """A URL per stored image for st.image (absolute: Streamlit hands a relative one to its media manager), or None
    where the file is gone or this page has no session."""
    sid = session_id(settings)
    links = file_links(settings)
    base = settings.app.public_url.rstrip("/")
    urls = []
    for ref in refs:
        match = REFERENCE.match(ref or "")
        there = (sid and match and match.group(2) in MIME
                 and (files.folder / f"{match.group(1)}.{match.group(2)}").exists())
        urls.append(f"{base}{links.image(sid, ref)}" if there else None)
    return urls


def owner(session: AuthSession) -> Owner:
    return Owner(session.identity.oid, session.identity.tenant_id)


def person_tokens(settings: Settings, services: AuthServices | None, session: AuthSession) -> PersonTokens:
    """This browser session's `PersonTokens` (its on-behalf-of providers are the person's own: never shared across
    sessions), made again when another person signs in here or the settings change."""
    held = st.session_state.get("_person_tokens")
    if held is None or held.session.id != session.id or held.settings is not settings:
        held = st.session_state["_person_tokens"] = PersonTokens(settings, services, session)
    held.services, held.session = services, session  # this run's (its token cache is the newest)
    return held


def asker(settings: Settings, services: AuthServices | None, session: AuthSession, mode: str) -> Asker:
    trusted = frozenset(settings.app.trusted_proxies)
    # Streamlit reports a peer on this host (127.0.0.1 or ::1) as None: a same-host proxy is then the loopback peer.
    ip = client_ip(st.context.ip_address or LOOPBACK, st.context.headers.get("x-forwarded-for"), trusted)
    context = SecurityContext(application_name=settings.app.name, end_user_id=session.identity.oid,
                              end_user_tenant_id=session.identity.tenant_id, source_ip=ip)
    tokens = person_tokens(settings, services, session)
    graph = None if settings.app.auth_disabled else tokens.graph
    zone = st.context.timezone
    return Asker(owner(session), context, session_reference(session.id),
                 token_provider=lambda: tokens.azure_openai(mode),
                 roles=frozenset(session.identity.roles), graph_token_provider=graph,
                 timezone=zone if isinstance(zone, str) and zone else "UTC")


