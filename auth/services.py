"""The sign-in services of one process, built once from settings and shared by the routes and the page."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from auth.identity import IdTokenValidator
from auth.sessions import SessionStore
from auth.signin import EntraSignIn
from config.database import database_engine
from config.settings import Settings


@dataclass(frozen=True)
class AuthServices:
    sessions: SessionStore
    signin: EntraSignIn


_lock = threading.Lock()
_built: dict[tuple, AuthServices] = {}


def auth_services(settings: Settings) -> AuthServices:
    """One instance per configuration: the routes (app.py) and every page session get the same objects."""
    secret = settings.app.session_secret.get_secret_value() if settings.app.session_secret else ""
    url = settings.app.database_url.get_secret_value() if settings.app.database_url else None
    key = (url, str(settings.app.data_dir.resolve()), secret, settings.entra.authority, settings.entra.client_id,
           settings.app.session_hours)
    with _lock:
        if key not in _built:
            engine = database_engine(url, settings.app.data_dir, "sessions.db")
            sessions = SessionStore(engine, secret, timedelta(hours=settings.app.session_hours))
            _built[key] = AuthServices(sessions, EntraSignIn(settings.entra, secret, sessions, IdTokenValidator(settings.entra)))
        return _built[key]
