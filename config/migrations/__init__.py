"""Schema migrations (Alembic) of the app's two databases, run when the app starts and whenever a store is built.

Two independent histories, each a folder of revision scripts beside this file:
- `conversations`: everything but the sign-in sessions (conversations, messages, documents, comparisons, versions,
  usage, chain statistics, the search index), in `conversations.db` or the configured database;
- `sessions`: the sign-in sessions, in `sessions.db` or the same configured database.
On Postgres both live in one database, so each history keeps its revision in a version table of its own.

`upgrade(engine, history)` brings a database to the newest revision this code knows:
- at that revision already: nothing is locked or changed (one SELECT; every store constructor calls it);
- empty: every revision runs;
- made before migrations existed (`create_all`: the history's tables are there, its version table is not): the
  baseline revision runs over it, creating only what is missing, as `create_all` did, then the later revisions;
- at a revision this code does not know (a newer app upgraded it): `SchemaTooNew`, and nothing is changed.
Only one process migrates a database at a time: a Postgres advisory lock (one key per history) or, on SQLite, an
exclusive `flock` on a lock file beside the database file. The others wait, then find the work done.

Revision scripts are frozen DDL (`op.create_table(...)` with the columns written out), never imports of today's models:
they must build the same schema in a year, whatever the models say then. tests/unit/test_migrations.py checks that
the newest revision is exactly what the models declare; scripts/migration.py writes a new revision from the models.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from config.database import database_engine

log = logging.getLogger(__name__)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # its set-up lines tell an operator nothing

HERE = Path(__file__).resolve().parent
LOCK_TIMEOUT = 600.0  # seconds a replica waits for another one's migration before it gives up


class MigrationError(RuntimeError):
    """The database cannot be brought to this app's schema; the message says why and what to do."""


class SchemaTooNew(MigrationError):
    pass


class MigrationLockTimeout(MigrationError):
    pass


@dataclass(frozen=True)
class History:
    name: str
    version_table: str
    marker_table: str  # present in every database this history's tables were ever created in

    @property
    def folder(self) -> Path:
        return HERE / self.name

    @property
    def lock_key(self) -> int:
        """The Postgres advisory lock key: a constant signed 64-bit number per history."""
        digest = hashlib.sha256(f"entra-chat schema migrations: {self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        config.set_main_option("file_template", "%%(rev)s")  # revision ids are "0003_what_it_does"
        return config


HISTORIES = {
    "conversations": History("conversations", "alembic_version_conversations", "conversations"),
    "sessions": History("sessions", "alembic_version_sessions", "auth_sessions"),
}
# Each history and its SQLite file in the data directory (ui/services.py and auth/services.py open the same ones).
DATABASES = (("conversations", "conversations.db"), ("sessions", "sessions.db"))


@dataclass(frozen=True)
class Outcome:
    history: str
    database: str  # dialect and database name or file, never a URL (no password, host or user)
    before: str | None  # the revision found (None: no version table)
    after: str
    action: str  # "current", "created", "adopted" (made before migrations), "upgraded" or "downgraded"

    def __str__(self) -> str:
        if self.action == "current":
            return f"{self.history} database ({self.database}) is at {self.after}"
        if self.action == "created":
            return f"{self.history} database ({self.database}) created at {self.after}"
        if self.action == "adopted":
            return (f"{self.history} database ({self.database}) made before migrations: brought to the baseline and "
                    f"upgraded to {self.after}")
        return f"{self.history} database ({self.database}) {self.action} from {self.before} to {self.after}"


_scripts: dict[str, ScriptDirectory] = {}
_scripts_lock = threading.Lock()
# Alembic's `op` and `context` are process-wide proxies: two threads must not run revisions at the same moment (two
# databases, or two stores built at once); the database lock still keeps other processes out.
_running = threading.Lock()


def scripts(history: str) -> ScriptDirectory:
    """The history's revision scripts (read once per process)."""
    with _scripts_lock:
        if history not in _scripts:
            _scripts[history] = ScriptDirectory.from_config(HISTORIES[history].config())
        return _scripts[history]


def head(history: str) -> str:
    return scripts(history).get_current_head()


def current(engine: Engine, history: str) -> str | None:
    """The database's revision for this history (None: no version table)."""
    with engine.connect() as connection:
        return _current(connection, HISTORIES[history])


def upgrade(engine: Engine, history: str, *, to: str = "head", lock_timeout: float = LOCK_TIMEOUT) -> Outcome:
    """Bring the database to the newest revision of `history` (or to revision `to`, which tests use to build older
    schemas); see the module's docstring."""
    spec, script = HISTORIES[history], scripts(history)
    newest = script.get_revision(to).revision
    database = describe(engine)
    with engine.connect() as connection:  # the usual case: nothing to do, nothing locked
        found = _current(connection, spec)
    _refuse_unknown(found, spec, script, database)
    if found == newest:
        return Outcome(history, database, found, newest, "current")
    with _migration_lock(engine, spec, database, lock_timeout) as connection:
        found = _current(connection, spec)  # another process may have migrated while this one waited
        _refuse_unknown(found, spec, script, database)
        if found == newest:
            log.info("%s database (%s): already upgraded to %s by another process", history, database, newest)
            return Outcome(history, database, found, newest, "current")
        legacy = found is None and inspect(connection).has_table(spec.marker_table)
        connection.commit()
        _run(connection, spec, script, newest, script._upgrade_revs)
        outcome = Outcome(history, database, found, newest,
                          "adopted" if legacy else "created" if found is None else "upgraded")
    log.info("%s", outcome)
    return outcome


def downgrade(engine: Engine, history: str, to: str, *, lock_timeout: float = LOCK_TIMEOUT) -> Outcome:
    """Back to revision `to`, running each later revision's `downgrade()` in one transaction, under the same lock: for
    an older app on this database (the baseline cannot be undone). Tests use it to make a database as older code left
    it."""
    spec, script = HISTORIES[history], scripts(history)
    target = script.get_revision(to).revision
    database = describe(engine)
    with _migration_lock(engine, spec, database, lock_timeout) as connection:
        found = _current(connection, spec)
        _refuse_unknown(found, spec, script, database)
        _run(connection, spec, script, target, script._downgrade_revs)
    outcome = Outcome(history, database, found, target, "downgraded")
    log.info("%s", outcome)
    return outcome


def describe(engine: Engine) -> str:
    """Which database, for people: the dialect and the database's name or file; never the URL (it may hold a
    password) nor the host or user."""
    return f"{engine.dialect.name} {engine.url.database or '(memory)'}"


def _current(connection: Connection, spec: History) -> str | None:
    try:
        if not inspect(connection).has_table(spec.version_table):
            return None
        heads = connection.execute(text(f"SELECT version_num FROM {spec.version_table}")).scalars().all()
    finally:
        connection.rollback()  # no transaction left open by the read
    if len(heads) > 1:
        raise MigrationError(f"The {spec.name} database has several schema revisions at once ({', '.join(heads)}); "
                             "this app cannot tell which one it is at. Restore a backup.")
    return heads[0] if heads else None


def _refuse_unknown(found: str | None, spec: History, script: ScriptDirectory, database: str) -> None:
    if found is None or found in {revision.revision for revision in script.walk_revisions()}:
        return
    raise SchemaTooNew(
        f"The {spec.name} database ({database}) has schema revision {found}, which this version of the app does not "
        f"know: its newest is {script.get_current_head()}. The database schema is newer than this app: a newer "
        "version of the app has upgraded it. Upgrade the app (run that newer version or a later one), or restore a "
        "backup of the database taken before that upgrade. Nothing was changed.")


def _run(connection: Connection, spec: History, script: ScriptDirectory, to: str, direction) -> None:
    """Every revision from the database's to `to`, on `connection`, in one transaction: all of them or none."""
    def steps(revision, _context):
        return direction(to, revision)  # what `alembic upgrade <to>` (or downgrade) runs

    with _running, EnvironmentContext(spec.config(), script, fn=steps, destination_rev=to) as environment:
        with _transaction(connection):  # begun here, so Alembic runs inside it and leaves the commit to us
            environment.configure(connection=connection, version_table=spec.version_table, transactional_ddl=True)
            environment.run_migrations()


@contextmanager
def _transaction(connection: Connection):
    if connection.dialect.name != "sqlite":
        with connection.begin():  # Postgres: DDL is transactional
            yield
        return
    # SQLite's DDL is transactional too, but its Python driver commits before each DDL statement unless the
    # transaction is begun explicitly: driver autocommit, then BEGIN IMMEDIATE (also keeps writers out meanwhile).
    driver = connection.connection.driver_connection
    level, driver.isolation_level = driver.isolation_level, None
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        driver.isolation_level = level


@contextmanager
def _migration_lock(engine: Engine, spec: History, database: str, timeout: float):
    """Only one process migrates this database at a time; yields a connection for the migration."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            _wait(lambda: connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": spec.lock_key})
                  .scalar(), connection.rollback, spec, database, timeout)
            connection.commit()  # the lock belongs to the session, not to this transaction
            try:
                yield connection
            finally:
                try:
                    if connection.in_transaction():
                        connection.rollback()
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": spec.lock_key})
                    connection.commit()
                except Exception:  # a pooled connection must never keep the lock: close it instead
                    connection.invalidate()
                    raise
        return
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):  # in memory: no other process can see it
        with engine.connect() as connection:
            yield connection
        return
    import fcntl

    lock_file = Path(path).with_name(Path(path).name + ".migrate-lock")
    with open(lock_file, "a+") as handle:
        def take() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        _wait(take, lambda: None, spec, database, timeout, f" (lock file {lock_file})")
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait(take, between, spec: History, database: str, timeout: float, where: str = "") -> None:
    deadline, said = time.monotonic() + timeout, False
    while not take():
        between()
        if time.monotonic() >= deadline:
            raise MigrationLockTimeout(
                f"Another process has been migrating the {spec.name} database ({database}) for more than "
                f"{timeout:.0f} s{where}. If no other replica of the app is starting, that process is stuck: stop it "
                "and start this one again.")
        if not said:
            log.info("%s database (%s): waiting for another process's migration", spec.name, database)
            said = True
        time.sleep(0.1)


def upgrade_databases(settings) -> list[Outcome]:
    """Both databases of a configured app (`config.Settings`), where the stores will find them."""
    url = settings.app.database_url.get_secret_value() if settings.app.database_url else None
    outcomes = []
    for history, sqlite_name in DATABASES:
        engine = database_engine(url, settings.app.data_dir, sqlite_name)
        try:
            outcomes.append(upgrade(engine, history))
        finally:
            engine.dispose()
    return outcomes


def upgrade_on_start(settings) -> None:
    """For entry points: upgrade both databases, or say why not and exit with status 2."""
    try:
        for outcome in upgrade_databases(settings):
            if outcome.action == "current":  # the others were logged as they happened
                log.info("%s", outcome)
    except MigrationError as problem:
        sys.stderr.write(f"{problem}\n")
        raise SystemExit(2) from None
