"""Server-side sign-in sessions: an opaque id in an HttpOnly cookie, the person's claims and an encrypted msal cache.

Rows live in SQL (SQLite in the data directory, or Postgres via APP_DATABASE_URL so replicas share sessions). Only a
SHA-256 of the session id is stored, so a copy of the database cannot be replayed as cookies; token caches and kept
drafts are encrypted with a key derived from APP_SESSION_SECRET.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import DateTime, LargeBinary, String, delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from auth.identity import Identity
from config.migrations import upgrade
from store.base import Base

SESSION_COOKIE = "chat_session"


def derive_fernet(secret: str, purpose: str) -> Fernet:
    """One key per purpose from the one configured secret, so a leak of one use does not expose another."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"entra-chat", info=purpose.encode()).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone=True columns; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)



class _SessionRow(Base):
    __tablename__ = "auth_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    oid: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    username: Mapped[str] = mapped_column(String(256))
    roles: Mapped[str] = mapped_column(String(2000), default="")  # newline-separated app role names
    token_cache: Mapped[bytes] = mapped_column(LargeBinary)
    draft: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class _UsedStateRow(Base):
    __tablename__ = "auth_used_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass
class AuthSession:
    id: str
    identity: Identity
    token_cache: str  # msal SerializableTokenCache.serialize(), decrypted
    expires_at: datetime
    draft: str | None = None


class SessionStore:
    def __init__(self, engine: Engine, secret: str, lifetime: timedelta) -> None:
        self._engine = engine
        self._fernet = derive_fernet(secret, "session-data")
        self._form_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"entra-chat",
                              info=b"form-token").derive(secret.encode())
        self.lifetime = lifetime
        upgrade(engine, "sessions")  # the schema (config/migrations), one process at a time

    def form_token(self, session_id: str, purpose: str) -> str:
        """A token a form of this session's page posts back (sign-out): another site cannot know it, so it cannot
        make the browser post the form (a GET or a cross-site POST without it does nothing)."""
        return hmac.new(self._form_key, f"{purpose}\n{session_id}".encode(), hashlib.sha256).hexdigest()

    def check_form_token(self, session_id: str | None, purpose: str, token: str | None) -> bool:
        return bool(session_id and token) and hmac.compare_digest(self.form_token(session_id, purpose), token)

    def create(self, identity: Identity, token_cache: str, draft: str | None = None) -> AuthSession:
        session_id = secrets.token_urlsafe(32)
        now = _now()
        row = _SessionRow(id_hash=_hash(session_id), oid=identity.oid, tenant_id=identity.tenant_id,
                          name=identity.name, username=identity.username, roles="\n".join(identity.roles),
                          token_cache=self._fernet.encrypt(token_cache.encode()),
                          draft=self._fernet.encrypt(draft.encode()) if draft else None,
                          created_at=now, expires_at=now + self.lifetime)
        with Session(self._engine) as db, db.begin():
            db.add(row)
            # Housekeeping: drop expired sessions and spent states on each sign-in.
            db.execute(delete(_SessionRow).where(_SessionRow.expires_at < now))
            db.execute(delete(_UsedStateRow).where(_UsedStateRow.expires_at < now))
        return AuthSession(session_id, identity, token_cache, now + self.lifetime, draft)

    def get(self, session_id: str | None) -> AuthSession | None:
        """The live session for a cookie value, or None (unknown, expired, or not decryptable with this secret)."""
        if not session_id:
            return None
        with Session(self._engine) as db:
            row = db.get(_SessionRow, _hash(session_id))
            if row is None or _aware(row.expires_at) <= _now():
                return None
            try:
                cache = self._fernet.decrypt(row.token_cache).decode()
                draft = self._fernet.decrypt(row.draft).decode() if row.draft else None
            except InvalidToken:  # the secret was rotated: the person signs in again
                return None
            identity = Identity(oid=row.oid, tenant_id=row.tenant_id, name=row.name, username=row.username,
                                roles=tuple(r for r in (row.roles or "").split("\n") if r))
            return AuthSession(session_id, identity, cache, _aware(row.expires_at), draft)

    def save_token_cache(self, session_id: str, token_cache: str) -> None:
        self._update(session_id, token_cache=self._fernet.encrypt(token_cache.encode()))

    def keep_draft(self, session_id: str, draft: str | None) -> None:
        """Keep an unsent message across the trip to the sign-in page."""
        self._update(session_id, draft=self._fernet.encrypt(draft.encode()) if draft else None)

    def take_draft(self, session_id: str, identity: Identity) -> str | None:
        """The draft kept in `session_id`, for the same person only: whoever signs in next in that browser may be
        someone else, and must not get it."""
        session = self.get(session_id)
        if session is None or not session.draft:
            return None
        if (session.identity.oid, session.identity.tenant_id) != (identity.oid, identity.tenant_id):
            return None
        self.keep_draft(session_id, None)
        return session.draft

    def delete(self, session_id: str | None) -> None:
        if session_id:
            with Session(self._engine) as db, db.begin():
                db.execute(delete(_SessionRow).where(_SessionRow.id_hash == _hash(session_id)))

    def delete_all_of(self, oid: str, tenant_id: str) -> int:
        """End every session of one person (all browsers, all replicas), kept drafts included; returns how many."""
        with Session(self._engine) as db, db.begin():
            result = db.execute(delete(_SessionRow).where(_SessionRow.oid == oid, _SessionRow.tenant_id == tenant_id))
        return result.rowcount or 0

    def use_state_once(self, state: str, ttl: timedelta) -> bool:
        """True the first time a sign-in `state` is presented, False on any replay (across replicas too)."""
        try:
            with Session(self._engine) as db, db.begin():
                db.add(_UsedStateRow(state_hash=_hash(state), expires_at=_now() + ttl))
        except IntegrityError:
            return False
        return True

    def _update(self, session_id: str, **values) -> None:
        with Session(self._engine) as db, db.begin():
            row = db.get(_SessionRow, _hash(session_id))
            if row is not None:
                for name, value in values.items():
                    setattr(row, name, value)
