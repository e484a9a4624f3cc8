"""The only way a person's files leave the server: signed links the page draws, served by routes that check the sign-in
session cookie and the owner (added to Streamlit through `st.App(routes=...)`; no Streamlit here).

- **`/files/<token>`**: a conversation's image, shown inline by the page.
- **`/exports/<token>`**: this conversation as Markdown or JSON, all my data as a ZIP, the administrators' usage CSV,
  each built when the link is followed and audited as the page used to (`data_exported`, `usage_exported`).

A token is an itsdangerous signature (the session secret, salt "chat-files") over what it names and a keyed hash of
the sign-in session it was drawn for: it is unguessable, says nothing without the secret, and opens nothing in another
session, even the same person's. The route then wants the `chat_session` cookie of a live session (else 401), the
token minted for that session (else 404, never saying whether the file exists), and loads conversations through the
owner filter (another person's conversation id behaves as missing: 404). Responses are `private, no-store` and
`nosniff`, with an explicit Content-Disposition, and nothing goes through Streamlit's media manager, whose URLs work
for anyone while a page references them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from auth.identity import LOCAL_EXPERIMENT_IDENTITY, LOCAL_EXPERIMENT_SESSION_ID, Identity
from auth.security_context import LOOPBACK, client_ip
from auth.sessions import SESSION_COOKIE
from callbacks.audit import AuditContext, session_reference
from memory.export import conversation_json, conversation_markdown, export_all
from memory.store import Owner
from store.files import MIME, REFERENCE
from store.usage_reports import UsageFilter

SALT = "chat-files"
FORMATS = {"markdown", "json", "json-images"}  # a conversation's exports
PRIVATE = {"cache-control": "private, no-store", "x-content-type-options": "nosniff"}
MONTH = re.compile(r"^\d{4}-\d{2}$")


def _clock() -> float:
    return time.time()


class _SteadySigner(TimestampSigner):
    """Timestamps rounded down to `step` seconds: a link drawn again in the next few reruns is the same URL, so the
    browser does not fetch the same image again on every rerun (`no-store` forbids it from keeping a copy)."""

    step = 1

    def get_timestamp(self) -> int:
        return int(_clock()) // self.step * self.step


class FileLinks:
    """Signed, unguessable links to one person's files, valid only in the sign-in session they were drawn for and for
    `max_age_seconds` (give or take a rounding step of at most five minutes)."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        if not secret:
            raise ValueError("FileLinks needs a secret")
        self.max_age = int(max_age_seconds)
        signer = type("Signer", (_SteadySigner,), {"step": max(1, min(300, self.max_age // 10))})
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT, signer=signer,
                                                  signer_kwargs={"digest_method": hashlib.sha256})
        self._session_key = hashlib.sha256(b"chat-files-session\n" + secret.encode()).digest()

    def _session_tag(self, session_id: str) -> str:
        # Keyed: the URL never carries anything the sessions table or the audit log could be matched against.
        return hmac.new(self._session_key, session_id.encode(), hashlib.sha256).hexdigest()[:32]

    def _token(self, session_id: str, payload: dict[str, Any]) -> str:
        if not session_id:
            raise ValueError("a link needs the sign-in session it is drawn for")
        return self._serializer.dumps({"s": self._session_tag(session_id), **payload})

    # -- what the page draws ---------------------------------------------------------------------------------------
    def image(self, session_id: str, ref: str) -> str:
        """`ref`: a stored image reference, `stored:<sha256>.<png|jpg>` (store/files.py)."""
        return f"/files/{self._token(session_id, {'kind': 'image', 'ref': ref})}"

    def conversation(self, session_id: str, conversation_id: str, fmt: str) -> str:
        """`fmt`: markdown, json, or json-images (the JSON with every image embedded)."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}")
        return f"/exports/{self._token(session_id, {'kind': 'conversation', 'id': conversation_id, 'fmt': fmt})}"

    def all_my_data(self, session_id: str, include_images: bool) -> str:
        return f"/exports/{self._token(session_id, {'kind': 'all', 'images': bool(include_images)})}"

    def usage_csv(self, session_id: str, month: str, deployment: str | None = None, chain: str | None = None,
                  tenant: str | None = None, person: str | None = None) -> str:
        """The administration page's CSV for this filter (UsageFilter's fields; the people found by display name
        are looked up again when the link is followed, so the link stays short)."""
        named = {"kind": "usage", "month": month, "deployment": deployment, "chain": chain, "tenant": tenant,
                 "person": person}
        return f"/exports/{self._token(session_id, named)}"

    # -- what the routes check -------------------------------------------------------------------------------------
    def open(self, token: str, session_id: str | None) -> dict | None:
        """What the token names, or None when it is forged, tampered with, expired, or was drawn for another session."""
        if not token or not session_id:
            return None
        try:
            payload = self._serializer.loads(token, max_age=self.max_age)
        except BadData:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("s"), str):
            return None
        if not hmac.compare_digest(payload["s"], self._session_tag(session_id)):
            return None
        return _valid({k: v for k, v in payload.items() if k != "s"})


def _valid(payload: dict) -> dict | None:
    kind = payload.get("kind")
    if kind == "image":
        match = REFERENCE.match(str(payload.get("ref", "")))
        return payload if match and match.group(2) in MIME else None  # images only, never a stored document
    if kind == "conversation":
        return payload if isinstance(payload.get("id"), str) and payload.get("fmt") in FORMATS else None
    if kind == "all":
        return payload if isinstance(payload.get("images"), bool) else None
    if kind == "usage":
        fields = ("deployment", "chain", "tenant", "person")
        ok = MONTH.match(str(payload.get("month", ""))) and all(isinstance(payload.get(f), (str, type(None)))
                                                              for f in fields)
        return payload if ok else None
    return None


# -- the routes --------------------------------------------------------------------------------------------------------
def file_routes(links: FileLinks, *, sessions: Callable[[], Any] | None, store: Callable[[], Any],
                ledger: Callable[[], Any], reports: Callable[[], Any], audit: Callable[[], Any], admin_role: str,
                trusted_proxies: tuple[str, ...] | list[str] = ()) -> list[Route]:
    """`GET /files/{token}` and `GET /exports/{token}`. The collaborators are zero-argument callables (the process's
    SessionStore, ConversationStore, UsageLedger, UsageReports and AuditLog), called when a request comes, so the
    page's process-level objects can be handed over lazily. `sessions=None`: sign-in is off (local experiments only),
    there is no cookie, and everyone is the local experiment's person."""
    trusted = frozenset(trusted_proxies)

    async def who(request: Request) -> tuple[str, Identity] | None:
        if sessions is None:
            return LOCAL_EXPERIMENT_SESSION_ID, LOCAL_EXPERIMENT_IDENTITY
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        session = await run_in_threadpool(sessions().get, cookie)
        return (session.id, session.identity) if session is not None else None

    def context(request: Request, session_id: str, identity: Identity, conversation_id: str = "",
                origin: str = "chat") -> AuditContext:
        # Who asked, from where, as the page's audit_context (ui/data_rights.py) and admin_context (ui/admin.py) say it.
        peer = request.client.host if request.client else None
        ip = client_ip(peer or LOOPBACK, request.headers.get("x-forwarded-for"), trusted)
        return AuditContext(user_oid=identity.oid, tenant_id=identity.tenant_id, source_ip=ip,
                            session=session_reference(session_id), conversation_id=conversation_id, chain="",
                            deployment="", identity_mode="app", include_text=False, origin=origin)

    async def opened(request: Request, kinds: set[str]) -> tuple[str, Identity, dict] | Response:
        found = await who(request)
        if found is None:
            return _refuse(401, "Sign in to the chat to open this file.")
        session_id, identity = found
        named = links.open(request.path_params["token"], session_id)
        if named is None or named["kind"] not in kinds:
            return _not_found()
        return session_id, identity, named

    async def image(request: Request) -> Response:
        checked = await opened(request, {"image"})
        if isinstance(checked, Response):
            return checked
        ref = checked[2]["ref"]
        data = await run_in_threadpool(store().files.load, ref)
        if data is None:
            return _not_found()
        return _file(data, MIME[REFERENCE.match(ref).group(2)], "inline")

    async def export(request: Request) -> Response:
        checked = await opened(request, {"conversation", "all", "usage"})
        if isinstance(checked, Response):
            return checked
        session_id, identity, named = checked
        owner = Owner(identity.oid, identity.tenant_id)
        if named["kind"] == "usage":
            if admin_role not in identity.roles:
                return _refuse(403, f"The usage export is for people with the '{admin_role}' app role.")
            built = await run_in_threadpool(_usage_csv, reports(), audit(),
                                            context(request, session_id, identity, origin="admin"), named)
        elif named["kind"] == "all":
            built = await run_in_threadpool(_all_my_data, store(), ledger(), audit(),
                                            context(request, session_id, identity), owner, named["images"])
        else:
            built = await run_in_threadpool(_conversation, store(), audit(),
                                            context(request, session_id, identity, named["id"]), owner, named)
        if built is None:
            return _not_found()
        data, media_type, name = built
        return _file(data, media_type, f'attachment; filename="{name}"')

    return [Route("/files/{token}", image, methods=["GET"]), Route("/exports/{token}", export, methods=["GET"])]


# -- building the exports (in a worker thread: database, files, ZIP) --------------------------------------------------
def _conversation(store, audit, context: AuditContext, owner: Owner, named: dict) -> tuple[bytes, str, str] | None:
    conversation = store.load(owner, named["id"])  # the owner filter: someone else's id is not found
    if conversation is None:
        return None
    name = ascii_file_name(conversation.title, "conversation")
    if named["fmt"] == "markdown":
        data = conversation_markdown(conversation).encode()
        media_type, name = "text/markdown; charset=utf-8", f"{name}.md"
    else:
        embed = named["fmt"] == "json-images"
        data = json.dumps(conversation_json(conversation, store.files, embed), ensure_ascii=False, indent=2).encode()
        media_type, name = "application/json", f"{name}.json"
    kind = "markdown" if named["fmt"] == "markdown" else "json"
    audit.event("data_exported", context, scope="conversation", format=kind,
                images_embedded=named["fmt"] == "json-images", conversations=1, messages=len(conversation.turns),
                bytes=len(data))
    return data, media_type, name


def _all_my_data(store, ledger, audit, context: AuditContext, owner: Owner,
                 include_images: bool) -> tuple[bytes, str, str]:
    export = export_all(store, ledger, owner, store.files, include_images)
    audit.event("data_exported", context, scope="all", format="zip", images_embedded=include_images,
                bytes=len(export.data), **export.counts)
    return export.data, "application/zip", "my-data.zip"


def _usage_csv(reports, audit, context: AuditContext, named: dict) -> tuple[bytes, str, str]:
    person = named.get("person") or None
    usage = UsageFilter(named["month"], named.get("deployment"), named.get("chain"), named.get("tenant"), person,
                        reports.oids_named(person) if person else ())
    text, rows = reports.export_csv(usage)
    audit.event("usage_exported", context, month=usage.month, deployment=usage.deployment, chain=usage.chain,
                tenant=usage.tenant, person_filter=bool(usage.person), rows=rows)
    return text.encode(), "text/csv; charset=utf-8", f"usage-{usage.month}.csv"


# -- responses ---------------------------------------------------------------------------------------------------------
def ascii_file_name(title: str, fallback: str) -> str:
    """A file name any Content-Disposition parser takes: ASCII letters, digits and dashes, at most 60 characters."""
    text = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9\- ]+", "", text).strip()
    text = re.sub(r"[\s-]+", "-", text)[:60].strip("-")
    return text or fallback


def _file(data: bytes, media_type: str, disposition: str) -> Response:
    return Response(data, media_type=media_type, headers={**PRIVATE, "content-disposition": disposition})


def _not_found() -> Response:
    # The same answer for a forged, expired or foreign link and for a file that is gone: nothing is said about which.
    return _refuse(404, "This link does not open anything (any more). Go back to the chat and use its link again.")


def _refuse(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers=PRIVATE)
