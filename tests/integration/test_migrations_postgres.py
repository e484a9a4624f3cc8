"""Schema migrations on a real Postgres (Debian's server, started for this module): both histories in one database with
version tables of their own, a fresh upgrade exactly the models, the last release's database (made and filled by its
own code) upgraded intact, a newer database refused, a failed upgrade undone, two replicas starting at once (one
migrates, behind an advisory lock), and no password in what is logged. The same on SQLite:
tests/unit/test_migrations.py.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.database import database_engine
from config.migrations import HISTORIES, MigrationLockTimeout, SchemaTooNew, current, head, scripts, upgrade
from scripts.migration import differences
from tests.postgres import running_postgres, server_binaries
from tests.unit.test_migrations import (
    FUTURE,
    LAST_RELEASE,
    assert_everything_there,
    assert_exactly_one_migrated,
    assert_kept,
    assert_versions_work,
    old_release_databases,
    release_tree,
    set_revision,
    snapshot,
    upgrade_in_two_processes,
)

pytestmark = pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed")
PASSWORD = "a-password-never-logged-7f3a"


@pytest.fixture(scope="module")
def server_url():
    with running_postgres() as url:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:  # a role with a password, as deployments connect (trust auth accepts it)
            connection.execute(text(f"CREATE ROLE chat LOGIN CREATEDB PASSWORD '{PASSWORD}'"))
        engine.dispose()
        yield url


@pytest.fixture
def database_url(server_url) -> str:
    """A new, empty database of its own, owned by the app's role, reached with a password in the URL."""
    name = f"chat_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name} OWNER chat"))
    engine.dispose()
    return make_url(server_url).set(username="chat", password=PASSWORD, database=name).render_as_string(
        hide_password=False)


@pytest.fixture(scope="module")
def last_release(tmp_path_factory):
    return release_tree(tmp_path_factory.mktemp("release") / LAST_RELEASE)


def test_a_fresh_upgrade_builds_exactly_what_the_models_declare_on_postgres(database_url, tmp_path, caplog):
    from auth.sessions import SessionStore
    from memory.store import ConversationStore

    engine = database_engine(database_url, tmp_path, "unused.db")
    with caplog.at_level(logging.INFO):
        ConversationStore(engine)
        SessionStore(engine, "s" * 40, timedelta(hours=1))
    assert (current(engine, "conversations"), current(engine, "sessions")) == (head("conversations"), head("sessions"))
    with engine.connect() as connection:
        assert differences(connection, ["conversations", "sessions"]) == []
        tables = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert {"alembic_version_conversations", "alembic_version_sessions", "message_search", "answer_versions"} <= tables
    name = make_url(database_url).database
    assert f"conversations database (postgresql {name}) created at {head('conversations')}" in caplog.text
    assert f"sessions database (postgresql {name}) created at {head('sessions')}" in caplog.text
    assert PASSWORD not in caplog.text and "127.0.0.1" not in caplog.text


@pytest.mark.slow
def test_a_database_of_the_last_release_is_upgraded_with_everything_in_it_on_postgres(
        last_release, database_url, tmp_path, guarded_child_env):
    data = tmp_path / "data"
    made = old_release_databases(last_release, data, guarded_child_env, database_url)
    engine = database_engine(database_url, data, "unused.db")
    assert current(engine, "conversations") is None and current(engine, "sessions") is None
    before = snapshot(engine)
    outcomes = [upgrade(engine, "conversations"), upgrade(engine, "sessions")]
    assert [(o.action, o.after) for o in outcomes] == [("adopted", head("conversations")),
                                                       ("adopted", head("sessions"))]
    assert_kept(before, snapshot(engine), ["conversations", "sessions"])
    with engine.connect() as connection:
        assert differences(connection, ["conversations", "sessions"]) == []
    assert_everything_there(made, data, database_url)
    assert_versions_work(data, database_url, made)


def test_a_database_newer_than_the_app_is_refused_on_postgres(database_url, tmp_path):
    from memory.store import ConversationStore

    engine = database_engine(database_url, tmp_path, "unused.db")
    upgrade(engine, "conversations")
    set_revision(engine, "conversations", FUTURE)
    with pytest.raises(SchemaTooNew, match=f"has schema revision {FUTURE}.*its newest is {head('conversations')}.*"
                                           "newer than this app.*Upgrade the app.*restore a backup"):
        ConversationStore(engine)
    assert current(engine, "conversations") == FUTURE
    assert upgrade(engine, "sessions").action == "created"  # the other history is its own


def test_a_failed_upgrade_changes_nothing_on_postgres(database_url, tmp_path, monkeypatch):
    engine = database_engine(database_url, tmp_path, "unused.db")
    upgrade(engine, "conversations", to="0001_baseline")
    revision = scripts("conversations").get_revision("0002_answer_versions").module
    created = revision.upgrade

    def half_done():
        created()
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(revision, "upgrade", half_done)
    with pytest.raises(RuntimeError, match="disk is full"):
        upgrade(engine, "conversations")
    assert current(engine, "conversations") == "0001_baseline"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT to_regclass('answer_versions')")).scalar() is None
        # the advisory lock went with the failure: nobody holds it
        assert not connection.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()


@pytest.mark.slow
def test_two_replicas_starting_at_once_on_postgres_exactly_one_migrates(database_url, tmp_path, guarded_child_env):
    actions, outputs = upgrade_in_two_processes(tmp_path, guarded_child_env, database_url)
    assert_exactly_one_migrated(actions, outputs)
    assert all(PASSWORD not in output for output in outputs)


def test_a_replica_waits_for_the_advisory_lock_and_gives_up_with_a_clear_message(database_url, tmp_path):
    engine = database_engine(database_url, tmp_path, "unused.db")
    with engine.connect() as other:  # another replica migrating
        other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": HISTORIES["conversations"].lock_key})
        started = time.monotonic()
        with pytest.raises(MigrationLockTimeout, match="Another process has been migrating the conversations database"):
            upgrade(engine, "conversations", lock_timeout=1)
        assert time.monotonic() - started < 5
        assert upgrade(engine, "sessions").action == "created"  # each history has a lock of its own
        other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": HISTORIES["conversations"].lock_key})
        other.commit()
    assert upgrade(engine, "conversations").action == "created"
