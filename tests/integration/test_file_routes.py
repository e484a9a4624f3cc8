"""Files leave only through owner-checked routes (web/files.py), over HTTP with two people signed in through the Entra
emulator: Ada's image and exports open with Ada's session cookie only; Grace's cookie, no cookie, a forged or expired
link, a bare stored reference or a link she signed for herself naming Ada's conversation open nothing; the usage CSV
is for administrators; every export is audited. The routes get the same process-level objects app.py hands them."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import datetime, timezone

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from auth.identity import LOCAL_EXPERIMENT_IDENTITY, LOCAL_EXPERIMENT_SESSION_ID
from auth.routes import build_routes
from auth.services import auth_services
from auth.sessions import SESSION_COOKIE
from callbacks.audit import session_reference
from localdev.entra import Knobs
from localdev.stack import OTHER_USER, TENANT_ID, TEST_USER
from memory.conversation import Conversation, Turn
from memory.export import EMBEDDED, conversation_from_json, conversation_markdown
from memory.store import Owner
from store.usage import month_of
from store.usage_reports import EXPORT_COLUMNS
from tests.integration.signin import browser_cookies, sign_in, sign_out
from ui.services import audit_log, conversation_store, file_links, usage_ledger
from ui.usage import usage_reports
from web import security_middleware
from web.files import FileLinks, file_routes

ADA, GRACE = Owner(TEST_USER.oid, TENANT_ID), Owner(OTHER_USER.oid, TENANT_ID)
NO_STORE = "private, no-store"
HREF = re.compile(r'href="([^"]+)"')


# -- the app's routes as app.py wires them, and browsers -----------------------------------------------------------
def routes_for(settings, admin_role: str | None = None, *, signed_in: bool = True) -> list:
    """`file_routes` exactly as app.py builds them: the page's own process-level objects, handed over lazily."""
    services = auth_services(settings) if signed_in else None
    return file_routes(file_links(settings), sessions=(lambda: services.sessions) if services else None,
                       store=lambda: conversation_store(settings), ledger=lambda: usage_ledger(settings),
                       reports=lambda: usage_reports(settings), audit=lambda: audit_log(settings),
                       admin_role=admin_role or settings.app.admin_role, trusted_proxies=settings.app.trusted_proxies)


def _app(settings, admin_role: str | None) -> Starlette:
    """The app's HTTP routes (sign-in and files) behind the app's middleware."""
    services = auth_services(settings)
    return Starlette(routes=[*build_routes(services.signin, services.sessions, settings.app.public_url),
                             *routes_for(settings, admin_role)], middleware=security_middleware(settings))


def browser(settings, admin_role: str | None = None) -> TestClient:
    """A browser to sign in with (`sign_in(..., client=browser(settings))`), then to follow links."""
    return TestClient(_app(settings, admin_role), base_url=settings.app.public_url, follow_redirects=False,
                      cookies=browser_cookies())


def file_client(settings, session_id: str | None = None, admin_role: str | None = None) -> TestClient:
    """A browser holding just this sign-in session cookie (or none): follows the links a page drew."""
    return TestClient(_app(settings, admin_role), base_url=settings.app.public_url, follow_redirects=False,
                      cookies={SESSION_COOKIE: session_id} if session_id else None)


def link_in(markdown: str) -> str:
    """The href of the one link in a page element's HTML."""
    (href,) = HREF.findall(markdown)
    return href.replace("&amp;", "&")


def assert_private(response) -> None:
    assert response.headers["cache-control"] == NO_STORE
    assert response.headers["x-content-type-options"] == "nosniff"


def audit_records(settings, event: str) -> list[dict]:
    lines = (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def conversation_with_image(settings, owner: Owner, question: str, color: str) -> tuple[Conversation, str, bytes]:
    """A stored conversation whose question carries an image, as the turn engine stores it."""
    store = conversation_store(settings)
    data = jpeg(color)
    ref = store.files.save(hashlib.sha256(data).hexdigest(), "jpg", data)
    conversation = Conversation()
    user = Turn("user", question, attachments=[{"ref": ref, "name": "chart.png", "kind": "image", "width": 64,
                                                "height": 48, "detail": "low", "tokens": 85}])
    store.commit_turn(owner, conversation, conversation.add(user), conversation.add(Turn("assistant", "A square.")))
    return conversation, ref, data


@pytest.fixture
def people(settings, emulators):
    """Ada and Grace, each signed in in a browser of their own."""
    emulators.entra.knobs = Knobs()
    ada = sign_in(settings, emulators, client=browser(settings))
    emulators.entra.knobs = Knobs(default_user=OTHER_USER.oid)
    grace = sign_in(settings, emulators, client=browser(settings))
    emulators.entra.knobs = Knobs()
    assert ada.session_id and grace.session_id and ada.session_id != grace.session_id
    yield ada, grace
    emulators.entra.knobs = Knobs()


# -- images ------------------------------------------------------------------------------------------------------------
def test_an_image_link_opens_for_its_owner_in_her_session_only(settings, emulators, people, monkeypatch):
    ada, grace = people
    _, ref, data = conversation_with_image(settings, ADA, "What is in this picture?", "navy")
    url = file_links(settings).image(ada.session_id, ref)
    assert url.startswith("/files/") and ref.split(":")[1].split(".")[0] not in url  # the id is not the content hash

    shown = ada.client.get(url)
    assert shown.status_code == 200 and shown.content == data
    assert shown.headers["content-type"] == "image/jpeg" and shown.headers["content-disposition"] == "inline"
    assert_private(shown)

    assert_private(refused := grace.client.get(url))  # Grace's own cookie: as if there were nothing
    assert refused.status_code == 404 and data not in refused.content
    nobody = file_client(settings).get(url)
    assert nobody.status_code == 401 and "Sign in" in nobody.text
    assert_private(nobody)

    # The bare reference, a tampered link, one signed with another secret, one for Ada's other session: nothing.
    assert ada.client.get(f"/files/{ref}").status_code == 404
    assert ada.client.get(f"/media/{ref}").status_code == 404
    tampered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    assert ada.client.get(tampered).status_code == 404
    forged = FileLinks("another secret of at least thirty-two characters", 3600).image(ada.session_id, ref)
    assert ada.client.get(forged).status_code == 404
    assert grace.client.get(FileLinks("another secret of at least thirty-two characters", 3600)
                            .image(grace.session_id, ref)).status_code == 404
    emulators.entra.knobs = Knobs()
    other_browser = sign_in(settings, emulators, client=browser(settings))  # Ada again, elsewhere
    assert other_browser.client.get(url).status_code == 404
    assert other_browser.client.get(file_links(settings).image(other_browser.session_id, ref)).status_code == 200
    # A document's stored file is never served as an "image", even with a valid link.
    document = file_links(settings).image(ada.session_id, "stored:" + "0" * 64 + ".pdf")
    assert ada.client.get(document).status_code == 404

    # Expired: a link lives as long as a sign-in may.
    import web.files

    later = datetime.now(timezone.utc).timestamp() + settings.app.session_hours * 3600 + 600
    monkeypatch.setattr(web.files, "_clock", lambda: later)
    assert ada.client.get(url).status_code == 404
    monkeypatch.undo()
    assert ada.client.get(url).status_code == 200

    # Signed out: the cookie is gone from her browser, and the old value opens nothing either.
    old_cookie = ada.session_id
    assert sign_out(ada).status_code == 200  # signed out; on to Entra by a new navigation
    assert ada.client.get(url).status_code == 401
    assert file_client(settings, old_cookie).get(url).status_code == 401


# -- one conversation --------------------------------------------------------------------------------------------------
def test_conversation_exports_are_the_owners_only_and_audited(settings, people):
    ada, grace = people
    conversation, _, data = conversation_with_image(settings, ADA, "What is in this picture?", "navy")
    stored = conversation_store(settings).load(ADA, conversation.id)
    links = file_links(settings)

    markdown = ada.client.get(links.conversation(ada.session_id, conversation.id, "markdown"))
    assert markdown.status_code == 200 and markdown.text == conversation_markdown(stored)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-disposition"] == 'attachment; filename="What-is-in-this-picture.md"'
    assert_private(markdown)

    plain = ada.client.get(links.conversation(ada.session_id, conversation.id, "json"))
    assert plain.headers["content-type"] == "application/json"
    assert plain.headers["content-disposition"] == 'attachment; filename="What-is-in-this-picture.json"'
    assert conversation_from_json(plain.json()).turns == stored.turns
    assert EMBEDDED not in plain.json()["turns"][0]["attachments"][0]
    embedded = ada.client.get(links.conversation(ada.session_id, conversation.id, "json-images")).json()
    assert embedded["turns"][0]["attachments"][0][EMBEDDED]["mime_type"] == "image/jpeg"
    assert_private(plain)

    # Grace: Ada's own links, and links validly signed for Grace's session naming Ada's conversation (the owner filter).
    for fmt in ("markdown", "json", "json-images"):
        assert grace.client.get(links.conversation(ada.session_id, conversation.id, fmt)).status_code == 404
        answer = grace.client.get(links.conversation(grace.session_id, conversation.id, fmt))
        assert answer.status_code == 404 and "picture" not in answer.text
        assert_private(answer)
    assert file_client(settings).get(links.conversation(ada.session_id, conversation.id, "json")).status_code == 401

    exports = audit_records(settings, "data_exported")
    assert [(r["scope"], r["format"], r["images_embedded"]) for r in exports] == [
        ("conversation", "markdown", False), ("conversation", "json", False), ("conversation", "json", True)]
    assert {(r["user_oid"], r["conversation_id"], r["session"], r["origin"]) for r in exports} == {
        (ADA.oid, conversation.id, session_reference(ada.session_id), "chat")}
    assert exports[0]["messages"] == 2 and exports[0]["bytes"] == len(markdown.content)
    assert all("content" not in r and "title" not in r for r in exports)  # counts only


# -- all my data -------------------------------------------------------------------------------------------------------
def test_all_my_data_is_built_when_followed_and_holds_her_conversations_only(settings, people):
    ada, grace = people
    adas, _, _ = conversation_with_image(settings, ADA, "Ada's picture", "navy")
    graces, _, _ = conversation_with_image(settings, GRACE, "Grace's picture", "red")
    links = file_links(settings)

    response = ada.client.get(links.all_my_data(ada.session_id, True))
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="my-data.zip"'
    assert_private(response)
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        exported = json.loads(archive.read(f"conversations/{adas.id}.json"))
    assert {n for n in names if n.startswith("conversations/")} == {f"conversations/{adas.id}.json",
                                                                    f"conversations/{adas.id}.md"}
    assert not any(graces.id in n for n in names)
    assert manifest["person"]["oid"] == ADA.oid and manifest["images_embedded"] is True
    assert EMBEDDED in exported["turns"][0]["attachments"][0]

    assert grace.client.get(links.all_my_data(ada.session_id, False)).status_code == 404
    mine = grace.client.get(links.all_my_data(grace.session_id, False))
    with zipfile.ZipFile(io.BytesIO(mine.content)) as archive:
        assert {n for n in archive.namelist() if n.startswith("conversations/")} == {
            f"conversations/{graces.id}.json", f"conversations/{graces.id}.md"}

    exports = audit_records(settings, "data_exported")
    assert [(r["user_oid"], r["scope"], r["format"], r["images_embedded"], r["conversations"]) for r in exports] == [
        (ADA.oid, "all", "zip", True, 1), (GRACE.oid, "all", "zip", False, 1)]
    assert exports[0]["bytes"] == len(response.content) and exports[0]["conversation_id"] == ""


# -- the usage CSV -----------------------------------------------------------------------------------------------------
def test_the_usage_csv_is_for_administrators_and_audited(settings, emulators):
    from tests.integration.test_usage_pages import BOB, database, someone_elses_usage

    role = "Chat.Experimenter"  # as APP_ADMIN_ROLE: a role Ada holds, Grace not
    emulators.entra.knobs = Knobs()
    ada = sign_in(settings, emulators, client=browser(settings, role))
    emulators.entra.knobs = Knobs(default_user=OTHER_USER.oid)
    grace = sign_in(settings, emulators, client=browser(settings, role))
    emulators.entra.knobs = Knobs()
    month = month_of(datetime.now(timezone.utc))
    someone_elses_usage(database(settings), month)
    links = file_links(settings)

    refused = grace.client.get(links.usage_csv(grace.session_id, month))
    assert refused.status_code == 403 and "Chat.Experimenter" in refused.text
    assert_private(refused)
    assert grace.client.get(links.usage_csv(ada.session_id, month)).status_code == 404

    response = ada.client.get(links.usage_csv(ada.session_id, month, chain="assistant@1"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="usage-{month}.csv"'
    assert_private(response)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows and tuple(rows[0]) == EXPORT_COLUMNS and {r["chain"] for r in rows} == {"assistant@1"}
    bobs = list(csv.DictReader(io.StringIO(ada.client.get(links.usage_csv(ada.session_id, month,
                                                                           person=BOB[:8])).text)))
    assert bobs and {r["oid"] for r in bobs} == {BOB}

    exported = audit_records(settings, "usage_exported")
    assert [(r["user_oid"], r["origin"], r["chain"], r["person_filter"]) for r in exported] == [
        (ADA.oid, "admin", "assistant@1", False), (ADA.oid, "admin", None, True)]
    assert exported[0]["rows"] == len(rows) and exported[0]["month"] == month


# -- sign-in off (local experiments) -----------------------------------------------------------------------------------
def test_with_sign_in_off_the_local_person_needs_no_cookie_but_a_link(settings):
    from ui.session import LOCAL_EXPERIMENT

    assert (LOCAL_EXPERIMENT.id, LOCAL_EXPERIMENT.identity) == (LOCAL_EXPERIMENT_SESSION_ID, LOCAL_EXPERIMENT_IDENTITY)
    local = Owner(LOCAL_EXPERIMENT_IDENTITY.oid, LOCAL_EXPERIMENT_IDENTITY.tenant_id)
    conversation, ref, data = conversation_with_image(settings, local, "A local picture", "green")
    app = Starlette(routes=routes_for(settings, signed_in=False), middleware=security_middleware(settings))
    client = TestClient(app, base_url=settings.app.public_url)
    links = file_links(settings)
    assert client.get(links.image(LOCAL_EXPERIMENT_SESSION_ID, ref)).content == data
    assert client.get(links.conversation(LOCAL_EXPERIMENT_SESSION_ID, conversation.id, "markdown")).status_code == 200
    assert client.get(links.image("someone-else", ref)).status_code == 404
    assert client.get(f"/files/{ref}").status_code == 404
