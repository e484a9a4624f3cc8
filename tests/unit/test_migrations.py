"""Schema migrations on SQLite (config/migrations): a fresh upgrade builds exactly what the models declare; a database
made and filled by the last release (its own code, from git, in a child process) is upgraded with every conversation,
session and image reference intact and answer versions working on it; a database newer than the app is refused with
a clear message; a failed upgrade changes nothing; two processes upgrading at once: exactly one migrates.
The same on Postgres: tests/integration/test_migrations_postgres.py."""
from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import MetaData, inspect, text

from config.database import database_engine
from config.migrations import (
    HISTORIES,
    MigrationLockTimeout,
    SchemaTooNew,
    current,
    downgrade,
    head,
    scripts,
    upgrade,
    upgrade_on_start,
)
from scripts.migration import SQLITE_SEARCH_OBJECTS, differences, model_metadata
from tests import old_release
from tests.processes import Child, run

ROOT = Path(__file__).resolve().parents[2]
LAST_RELEASE = "1b3ba3f"  # the last released commit: its stores made their tables with create_all
FUTURE = "9999_future"
SQLITE_SEARCH_SCHEMA = SQLITE_SEARCH_OBJECTS | {"search_documents_insert", "search_documents_delete",
                                                "search_documents_update"}


# -- helpers shared with the Postgres tests ---------------------------------------------------------------------------

def release_tree(folder: Path, commit: str = LAST_RELEASE) -> Path:
    """The release's files as git has them (`git archive`), in `folder`."""
    if run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], timeout=30,
           capture_output=True).returncode:
        pytest.skip(f"this clone lacks the last release's commit {commit} (a shallow clone?)")
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder.with_suffix(".tar")
    run(["git", "-C", str(ROOT), "archive", "--output", str(archive), commit], timeout=60, check=True)
    run(["tar", "-xf", str(archive), "-C", str(folder)], timeout=60, check=True)
    archive.unlink()
    return folder


def old_release_databases(tree: Path, data: Path, guard_env: dict, url: str | None = None) -> dict:
    """The release's databases, made and filled by its own code in a child process; what it read back."""
    manifest = data.parent / f"{data.name}-manifest.json"
    env = {**os.environ, **guard_env, "PYTHONPATH": guard_env["PYTHONPATH"].replace(str(ROOT), str(tree))}
    done = run([sys.executable, str(ROOT / "tests" / "old_release.py"), str(tree), str(data), str(manifest),
                *([url] if url else [])], timeout=240, cwd=tree, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(manifest.read_text())


def snapshot(engine) -> dict[str, list]:
    """Every row of every table, as (column, value) pairs (the FTS5 index's own tables aside: they mirror
    search_documents)."""
    metadata = MetaData()
    with engine.connect() as connection:
        names = [n for n in inspect(connection).get_table_names() if not n.startswith("conversation_search")]
        metadata.reflect(connection, only=names)
        return {name: sorted((tuple(row._mapping.items())
                              for row in connection.execute(metadata.tables[name].select())), key=repr)
                for name in names}


def assert_kept(before: dict, after: dict, histories: list[str]) -> None:
    """Every row of every table as it was; the tables the upgrade added are the models' (or a version table), empty;
    a column the upgrade added to a table holds one value in all of its rows (its default)."""
    versions = {HISTORIES[h].version_table for h in histories}
    declared = {t for h in histories for m in model_metadata(h, "any") for t in m.tables} | versions
    added = set(after) - set(before)
    assert versions <= added <= declared
    assert all(after[table] == [] for table in added - versions)
    for table, rows in before.items():
        columns = {name for row in rows for name, _ in row}
        kept = sorted((tuple((name, value) for name, value in row if name in columns) for row in after[table]),
                      key=repr)
        assert kept == rows, f"{table} changed in the upgrade"
        new = {}
        for row in after[table]:
            for name, value in row:
                if name not in columns:
                    new.setdefault(name, set()).add(value)
        assert all(len(values) == 1 for values in new.values()), f"{table}: new columns not filled alike: {new}"


def read_with_todays_code(data: Path, url: str | None, session_ids: list[str]) -> dict:
    from auth.sessions import SessionStore
    from callbacks.chain_stats import ChainStatistics
    from memory.store import ConversationStore
    from store.files import FileStore
    from store.usage import UsageLedger

    engine = database_engine(url, data, "conversations.db")
    store = ConversationStore(engine, FileStore(data / "images"))
    sessions = SessionStore(database_engine(url, data, "sessions.db"), old_release.SECRET, timedelta(hours=8))
    return old_release.describe_store(store, UsageLedger(engine), ChainStatistics(engine), sessions, session_ids)


def assert_everything_there(made: dict, data: Path, url: str | None) -> None:
    """Today's code finds what the release stored: every conversation (turns, pictures in messages and memory,
    documents and passages, steps, sources, usage, feedback), comparison, budget, chain statistic and session."""
    found = read_with_todays_code(data, url, made["session_ids"])
    for key in ("conversations", "passages", "comparisons", "budgets", "search", "chain_stats", "sessions", "files"):
        assert found[key] == made[key], key
    assert sum(len(c) for c in found["conversations"].values()) == 44
    assert all(found["sessions"].values()) and len(found["comparisons"]) == 1
    # The image references resolve: each file is there and memory's picture comes back as the bytes that were sent.
    leave = next(c for c in found["conversations"]["ada-oid/tenant-1"] if c["id"] == made["leave"])
    refs = [a["ref"] for a in leave["turns"][0]["attachments"]]
    assert refs == [made["refs"]["shared"], made["refs"]["own"], made["refs"]["pdf"]]
    assert all((data / "images" / ref.removeprefix("stored:")).is_file() for ref in refs)
    picture = leave["memory"][1]["content"][1]["image_url"]["url"]
    assert base64.b64decode(picture.split(",", 1)[1]) == old_release.PICTURES["memory"]
    assert leave["memory"][0]["summary"] == "summarization"


def assert_versions_work(data: Path, url: str | None, made: dict) -> None:
    """The new feature on the upgraded database: the last exchange regenerated, both versions kept, the old one
    restored; and a new turn is stored and found."""
    from langchain_core.messages import AIMessage, HumanMessage

    from memory.conversation import Conversation, Turn, Usage, Version
    from memory.store import ConversationStore, Owner
    from store.files import FileStore

    ada = Owner("ada-oid", "tenant-1")
    store = ConversationStore(database_engine(url, data, "conversations.db"), FileStore(data / "images"))
    conversation = store.load(ada, made["leave"])
    question, answer = conversation.turns[-2:]
    fresh = Turn("assistant", "The service answered this time.", id=answer.id, deployment="gpt-4o",
                 chain="assistant@1", usage=Usage(20, 7, Decimal("0.0002")))
    remembered = [HumanMessage(question.content, id=question.id)]
    fresh.versions = [Version(1, question.content, answer, memory_tail=remembered),
                      Version(2, question.content, fresh, active=True)]
    conversation.turns[-1] = fresh
    store.use_version(ada, conversation, question, fresh, fresh.versions)
    again = store.load(ada, made["leave"])
    assert [(v.n, v.active, v.answer.status) for v in again.turns[-1].versions] == [(1, False, "failed"),
                                                                                     (2, True, "complete")]
    assert again.turns[-1].content == "The service answered this time."
    question, shown = again.turns[-2:]
    for version in shown.versions:  # back to the first version, as the page's "Previous" does
        version.active = version.n == 1
    store.use_version(ada, again, question, replace(shown.versions[0].answer, id=shown.id, versions=shown.versions))
    back = store.load(ada, made["leave"]).turns[-1]
    assert (back.status, back.notice, back.version_in_use) == ("failed", "The service is busy.", 1)
    new = Conversation()
    user, reply = new.add(Turn("user", "A question about icebergs")), new.add(Turn("assistant", "An answer"))
    new.memory = [HumanMessage(user.content, id=user.id), AIMessage(reply.content, id=reply.id)]
    store.commit_turn(ada, new, user, reply)
    assert [h.conversation_id for h in store.search(ada, "icebergs")] == [new.id]


def made_before_migrations(engine) -> None:
    """The conversation database as code from before migrations left it: the schema of revision 0002 (the newest such
    code made with create_all), no revision recorded."""
    downgrade(engine, "conversations", to="0002_answer_versions")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version_conversations"))


def set_revision(engine, history: str, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {HISTORIES[history].version_table} SET version_num = :r"), {"r": revision})


CONCURRENT_START = """
import logging, sys, time
from pathlib import Path
from types import SimpleNamespace
import config.migrations as migrations

logging.basicConfig(level="INFO")
url, data, ready, other = sys.argv[1] or None, Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
run = migrations._run
def slow(*args):  # holds the lock long enough for the other process to find it taken
    time.sleep(1.5)
    return run(*args)
migrations._run = slow
ready.touch()
deadline = time.monotonic() + 60
while not other.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
from pydantic import SecretStr
settings = SimpleNamespace(app=SimpleNamespace(database_url=url and SecretStr(url), data_dir=data))
outcomes = migrations.upgrade_databases(settings)  # what app.py runs on start, both databases
print("OUTCOMES", " ".join(o.action for o in outcomes), flush=True)
"""


def upgrade_in_two_processes(tmp_path: Path, guard_env: dict, url: str | None = None) -> tuple[list[str], list[str]]:
    """Two replicas start on one new database at the same moment: what each one did, and their output. Then both
    databases work for today's stores."""
    from auth.sessions import SessionStore
    from memory.conversation import Conversation, Turn
    from memory.store import ConversationStore, Owner

    data = tmp_path / "data"
    ready = [tmp_path / "ready-0", tmp_path / "ready-1"]
    command = [sys.executable, "-c", CONCURRENT_START, url or "", str(data)]
    children = [Child([*command, str(ready[n]), str(ready[1 - n])], cwd=ROOT, env={**os.environ, **guard_env},
                      name=f"replica {n}") for n in (0, 1)]
    try:
        actions = [child.wait_for_line(r"^OUTCOMES (.*)$", timeout=90).group(1) for child in children]
        for child in children:
            assert child.stop(None, timeout=30) == 0, child.output
        outputs = [child.output for child in children]
    finally:
        for child in children:
            child.kill()
    store = ConversationStore(database_engine(url, data, "conversations.db"))
    conversation = Conversation()
    store.commit_turn(Owner("o", "t"), conversation, conversation.add(Turn("user", "hi")),
                      conversation.add(Turn("assistant", "hello")))
    SessionStore(database_engine(url, data, "sessions.db"), "s" * 40, timedelta(hours=1))
    return actions, outputs


def assert_exactly_one_migrated(actions: list[str], outputs: list[str]) -> None:
    for history, done in zip(("conversations", "sessions"), zip(*(a.split() for a in actions))):
        assert sorted(done) == ["created", "current"], (history, actions)  # one made it, the other found it made
    revisions = sum(len(list(scripts(history).walk_revisions())) for history in HISTORIES)
    assert sum(o.count("Running upgrade") for o in outputs) == revisions  # each revision ran once, in one process
    # They overlapped: one waited for the other's lock, then found the work done.
    assert any("waiting for another process's migration" in o and "already upgraded" in o for o in outputs), outputs


# -- SQLite ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def last_release(tmp_path_factory) -> Path:
    return release_tree(tmp_path_factory.mktemp("release") / LAST_RELEASE)


def test_a_fresh_upgrade_builds_exactly_what_the_models_declare(tmp_path):
    from auth.sessions import SessionStore
    from memory.store import ConversationStore

    conversations = database_engine(None, tmp_path, "conversations.db")
    sessions = database_engine(None, tmp_path, "sessions.db")
    ConversationStore(conversations)  # the stores run the migrations themselves
    SessionStore(sessions, "s" * 40, timedelta(hours=1))
    assert (current(conversations, "conversations"), current(sessions, "sessions")) == (
        head("conversations"), head("sessions"))
    for engine, history in ((conversations, "conversations"), (sessions, "sessions")):
        with engine.connect() as connection:
            assert differences(connection, [history]) == []
    with conversations.connect() as connection:  # the search index: raw DDL, as store/search.py writes to it
        names = set(connection.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
    assert SQLITE_SEARCH_SCHEMA <= names
    assert {n for n in names if "search" in n and not n.startswith("sqlite_")} == SQLITE_SEARCH_SCHEMA
    assert upgrade(conversations, "conversations").action == "current"


@pytest.mark.slow
def test_a_database_of_the_last_release_is_upgraded_with_everything_in_it(last_release, tmp_path, guarded_child_env):
    data = tmp_path / "data"
    made = old_release_databases(last_release, data, guarded_child_env)
    conversations = database_engine(None, data, "conversations.db")
    sessions = database_engine(None, data, "sessions.db")
    assert current(conversations, "conversations") is None and current(sessions, "sessions") is None
    before = snapshot(conversations), snapshot(sessions)

    outcomes = [upgrade(conversations, "conversations"), upgrade(sessions, "sessions")]
    assert [(o.action, o.before, o.after) for o in outcomes] == [
        ("adopted", None, head("conversations")), ("adopted", None, head("sessions"))]
    assert "answer_versions" in snapshot(conversations)
    assert_kept(before[0], snapshot(conversations), ["conversations"])
    assert_kept(before[1], snapshot(sessions), ["sessions"])
    for engine, history in ((conversations, "conversations"), (sessions, "sessions")):
        with engine.connect() as connection:
            assert differences(connection, [history]) == []
    assert_everything_there(made, data, None)
    assert_versions_work(data, None, made)


def test_a_database_made_by_the_code_between_the_release_and_migrations_is_adopted(tmp_path):
    """Made by create_all with answer_versions there already (62cd9e7): revision 0002 finds its table made."""
    from memory.store import ConversationStore

    engine = database_engine(None, tmp_path, "conversations.db")
    ConversationStore(engine)
    made_before_migrations(engine)
    assert "answer_versions" in snapshot(engine) and current(engine, "conversations") is None
    before = snapshot(engine)
    outcome = upgrade(engine, "conversations")
    assert (outcome.action, outcome.after) == ("adopted", head("conversations"))
    assert_kept(before, snapshot(engine), ["conversations"])


def test_a_database_newer_than_the_app_is_refused_with_a_clear_message(tmp_path, capsys):
    from memory.store import ConversationStore

    engine = database_engine(None, tmp_path, "conversations.db")
    upgrade(engine, "conversations")
    set_revision(engine, "conversations", FUTURE)
    before = snapshot(engine)
    for attempt in (lambda: upgrade(engine, "conversations"), lambda: ConversationStore(engine)):
        with pytest.raises(SchemaTooNew) as refused:
            attempt()
        message = str(refused.value)
        for part in (FUTURE, head("conversations"), "newer than this app", "Upgrade the app", "restore a backup",
                     "Nothing was changed"):
            assert part in message
    assert snapshot(engine) == before

    settings = SimpleNamespace(app=SimpleNamespace(database_url=None, data_dir=tmp_path))
    with pytest.raises(SystemExit) as stopped:
        upgrade_on_start(settings)
    assert stopped.value.code == 2 and f"has schema revision {FUTURE}" in capsys.readouterr().err


def test_a_failed_upgrade_changes_nothing(tmp_path, monkeypatch):
    engine = database_engine(None, tmp_path, "conversations.db")
    assert upgrade(engine, "conversations", to="0001_baseline").after == "0001_baseline"
    before = snapshot(engine)
    revision = scripts("conversations").get_revision("0002_answer_versions").module
    created = revision.upgrade

    def half_done():
        created()  # the table exists now, inside the transaction
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(revision, "upgrade", half_done)
    with pytest.raises(RuntimeError, match="disk is full"):
        upgrade(engine, "conversations")
    assert current(engine, "conversations") == "0001_baseline" and snapshot(engine) == before
    monkeypatch.setattr(revision, "upgrade", created)
    assert upgrade(engine, "conversations").action == "upgraded"
    assert "answer_versions" in snapshot(engine)


@pytest.mark.slow
def test_two_processes_upgrading_at_once_exactly_one_migrates(tmp_path, guarded_child_env):
    actions, outputs = upgrade_in_two_processes(tmp_path, guarded_child_env)
    assert_exactly_one_migrated(actions, outputs)
    assert (tmp_path / "data" / "conversations.db.migrate-lock").exists()


def test_a_migration_that_never_ends_elsewhere_stops_start_up_with_a_clear_message(tmp_path):
    import fcntl

    engine = database_engine(None, tmp_path, "conversations.db")
    with open(tmp_path / "conversations.db.migrate-lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process migrating would
        started = time.monotonic()
        with pytest.raises(MigrationLockTimeout, match=r"Another process has been migrating the conversations "
                                                       r"database .* for more than 1 s"):
            upgrade(engine, "conversations", lock_timeout=1)
        assert time.monotonic() - started < 5
    assert upgrade(engine, "conversations").action == "created"


def test_the_command_line_upgrades_shows_and_refuses(tmp_path, monkeypatch, capsys):
    from config.migrations.__main__ import main

    for name in list(os.environ):
        if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in {"APP_DATA_DIR": str(tmp_path / "data"), "ENTRA_CLIENT_SECRET": "not-a-real-secret",
                        "ENTRA_TENANT_ID": "11111111-1111-1111-1111-111111111111",
                        "ENTRA_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
                        "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com",
                        "APP_SESSION_SECRET": "a-test-session-secret-of-at-least-32-chars"}.items():
        monkeypatch.setenv(name, value)
    assert main(["current"]) == 0 and "at no revision recorded" in capsys.readouterr().out
    assert main(["upgrade"]) == 0
    assert f"conversations database (sqlite {tmp_path / 'data' / 'conversations.db'}) created at " \
           f"{head('conversations')}" in capsys.readouterr().out
    set_revision(database_engine(None, tmp_path / "data", "sessions.db"), "sessions", FUTURE)
    assert main([]) == 2 and f"has schema revision {FUTURE}" in capsys.readouterr().err
