"""Your data on the page (AppTest, a real sign-in, the emulators over HTTPS): this conversation's Markdown and JSON and
the ZIP of all my data are links the person's own session opens (followed over HTTP, web/files.py), and parse and
match the store; "delete all my data" asks for DELETE, then empties the person's conversation list, removes their
files, ends their sessions, and is audited with counts (the audit log stays)."""
from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import zipfile

from auth.services import auth_services
from localdev.entra import Knobs
from localdev.stack import OTHER_USER, TENANT_ID, TEST_USER
from memory.conversation import Conversation, Turn
from memory.export import EMBEDDED, conversation_from_json, conversation_markdown
from memory.store import Owner
from tests.integration.apptest import open_page
from tests.integration.signin import sign_in
from tests.integration.test_file_routes import file_client, link_in
from tests.integration.test_images_page import png
from ui.conversations import conversation_store

ADA, GRACE = Owner(TEST_USER.oid, TENANT_ID), Owner(OTHER_USER.oid, TENANT_ID)


def export_link(at, key: str) -> tuple[str, str]:
    """(label, href) of a "Your data" download link."""
    html = at.sidebar.get_by_key(key).markdown[0].value
    label = re.search(r">([^<]+)</a>", html).group(1)
    assert " download " in html and 'target="_self"' in html  # a same-tab download, not a new tab
    return label, link_in(html)


def ask(at, text: str, image: bytes | None = None) -> None:
    draft = at.chat_input(key="draft").set_value(text)
    if image is not None:
        draft.upload("chart.png", image, "image/png")
    draft.run()
    assert not at.exception, at.exception


def audit_records(settings) -> list[dict]:
    path = settings.app.data_dir / "audit" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_this_conversation_and_all_my_data_download_as_parsable_exports(settings, signed_in, emulators):
    at = open_page()
    ask(at, "What is in this picture?", png((400, 300)))
    ask(at, "And a follow-up")
    store = conversation_store(settings)
    stored = store.load(ADA, at.session_state["conversation"].id)
    assert len(stored.turns) == 4 and stored.turns[0].attachments
    browser = file_client(settings, signed_in.session_id)

    label, href = export_link(at, "export_markdown")
    assert label == "This conversation as Markdown" and href.startswith("/exports/")
    response = browser.get(href)
    assert response.headers["content-disposition"] == 'attachment; filename="What-is-in-this-picture.md"'
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.headers["cache-control"] == "private, no-store"
    markdown = response.text
    assert markdown == conversation_markdown(stored) and "chart.png" in markdown
    assert all(t.content in markdown for t in stored.turns) and "completion tokens, 256 of them reasoning · $" in markdown
    assert file_client(settings).get(href).status_code == 401  # no cookie, nothing

    label, href = export_link(at, "export_json")
    response = browser.get(href)
    exported = response.json()
    assert label == "This conversation as JSON" and response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="What-is-in-this-picture.json"'
    assert conversation_from_json(exported).turns == stored.turns
    assert EMBEDDED not in exported["turns"][0]["attachments"][0]
    at.sidebar.checkbox(key="export_include_images").check().run()
    with_images = browser.get(export_link(at, "export_json")[1]).json()
    assert with_images["turns"][0]["attachments"][0][EMBEDDED]["mime_type"] == "image/jpeg"
    assert conversation_from_json(with_images).turns == stored.turns

    # All my data: a link from the start (no "Prepare" step, no ZIP kept in the page's state), built when followed.
    label, href = export_link(at, "download_my_data")
    assert label == "Download all my data" and "my_data_zip" not in at.session_state
    assert not [r for r in audit_records(settings) if r["event"] == "data_exported" and r["scope"] == "all"]
    response = browser.get(href)
    assert response.headers["content-disposition"] == 'attachment; filename="my-data.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    listed = store.list(ADA)
    assert {f"conversations/{c.id}.json" for c in listed} <= set(entries)
    back = conversation_from_json(json.loads(entries[f"conversations/{stored.id}.json"]))
    assert back.turns == stored.turns
    usage = list(csv.DictReader(io.StringIO(entries["usage.csv"].decode())))
    with sqlite3.connect(settings.app.data_dir / "conversations.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM usage_records WHERE oid = ?", (ADA.oid,)).fetchone()
    assert len(usage) == count >= 2 and {r["oid"] for r in usage} == {ADA.oid}
    assert json.loads(entries["manifest.json"])["counts"]["conversations"] == len(listed)

    exports = [r for r in audit_records(settings) if r["event"] == "data_exported"]
    assert [(r["scope"], r["format"], r["images_embedded"]) for r in exports] == [
        ("conversation", "markdown", False), ("conversation", "json", False), ("conversation", "json", True),
        ("all", "zip", True)]
    assert exports[0]["conversation_id"] == stored.id and exports[0]["messages"] == 4
    assert exports[-1]["user_oid"] == ADA.oid and exports[-1]["conversations"] == len(listed)
    assert all("content" not in r and "title" not in r for r in exports)  # counts only


def test_delete_all_asks_for_confirmation_then_removes_everything_and_ends_the_session(settings, signed_in, emulators):
    store = conversation_store(settings)
    graces = Conversation()  # another person's conversation and session: untouched
    store.commit_turn(GRACE, graces, graces.add(Turn("user", "Grace's own")), graces.add(Turn("assistant", "ok")))
    emulators.entra.knobs = Knobs(default_user=OTHER_USER.oid)
    grace = sign_in(settings, emulators)
    emulators.entra.knobs = Knobs()

    at = open_page()
    ask(at, "A picture to forget", png((300, 200), "red"))
    at.sidebar.button(key="new_conversation").click().run()
    ask(at, "Another conversation")
    assert len(store.list(ADA)) == 2
    images = list((settings.app.data_dir / "images").glob("*.jpg"))
    assert images
    model_calls = len([r for r in audit_records(settings) if r["event"] == "model_call"])

    at.sidebar.button(key="delete_all_start").click().run()
    assert at.sidebar.button(key="delete_all_confirm").disabled  # not before DELETE is typed
    at.sidebar.button(key="delete_all_cancel").click().run()
    assert not [b for b in at.sidebar.button if b.key == "delete_all_confirm"] and len(store.list(ADA)) == 2

    at.sidebar.button(key="delete_all_start").click().run()
    at.sidebar.text_input(key="delete_all_typed").input("delete").run()
    assert at.sidebar.button(key="delete_all_confirm").disabled  # exactly DELETE
    at.sidebar.text_input(key="delete_all_typed").input("DELETE").run()
    at.sidebar.button(key="delete_all_confirm").click().run()
    assert not at.exception, at.exception

    assert store.list(ADA) == []
    assert not any(path.exists() for path in images)
    assert auth_services(settings).sessions.get(signed_in.session_id) is None
    done = next(s.value for s in at.success)
    assert "All your data was deleted: 2 conversations (4 messages" in done and "1 sign-in session." in done
    shown = " ".join(m.value for m in at.markdown)
    assert 'href="/signout"' in shown and 'href="/signin"' in shown  # the session is gone: the sign-in screen
    assert not at.chat_input and not at.sidebar.button

    assert store.list(GRACE)[0].title == "Grace's own"
    assert auth_services(settings).sessions.get(grace.session_id) is not None
    records = audit_records(settings)
    assert len([r for r in records if r["event"] == "model_call"]) == model_calls  # the audit log stays
    (deleted,) = [r for r in records if r["event"] == "data_deleted"]
    assert deleted["user_oid"] == ADA.oid and {k: deleted[k] for k in ("conversations", "messages", "sessions")} == {
        "conversations": 2, "messages": 4, "sessions": 1}
    assert deleted["files"] >= 1

    again = open_page()  # any later page load: signed out
    assert not again.chat_input and any('href="/signin"' in m.value for m in again.markdown)
