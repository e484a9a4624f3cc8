"""Schema migrations for developers: what the models declare, what the revisions build, and a new revision from the
difference.

    .venv/bin/python -m scripts.migration check
    .venv/bin/python -m scripts.migration new conversations "add the x column"

`check` upgrades an empty SQLite database through every revision and lists what differs from the models (nothing, or
exit status 1). `new` writes config/migrations/<history>/versions/<next number>_<words>.py with the operations Alembic
finds between the newest revision and the models (autogenerate, on SQLite): read it and make it right for Postgres too
(server defaults, data to move, the search index's raw DDL), then run tests/unit/test_migrations.py and
tests/integration/test_migrations_postgres.py. Not product code: it imports the models, which config/ may not.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

# Made by raw DDL (store/search.py's index on SQLite: an FTS5 table, its shadow tables and triggers), not by models.
SQLITE_SEARCH_OBJECTS = {"search_documents", "conversation_search", "conversation_search_config",
                         "conversation_search_data", "conversation_search_docsize", "conversation_search_idx",
                         "ix_search_documents_conversation"}


def model_metadata(history: str, dialect: str) -> list[MetaData]:
    """Every table the app's models declare in one history's database, as `dialect` gets them."""
    import auth.sessions  # noqa: F401 - imported for its tables (declared on the one base)
    import callbacks.chain_stats  # noqa: F401 - imported for its tables
    import memory.documents  # noqa: F401 - imported for its tables
    import memory.store  # noqa: F401 - imported for its tables
    import store.comparisons  # noqa: F401 - imported for its tables
    import store.inflight  # noqa: F401 - imported for its tables
    import store.usage  # noqa: F401 - imported for its tables
    import store.versions  # noqa: F401 - imported for its tables
    from store.base import tables_of
    from store.search import PostgresIndex

    found = [tables_of(history)]
    if history != "sessions" and dialect == "postgresql":
        found.append(PostgresIndex()._metadata)  # the search table; SQLite's FTS5 index is raw DDL
    return found


def _context(connection: Connection, histories: list[str]) -> MigrationContext:
    from config.migrations import HISTORIES

    ignored = {HISTORIES[h].version_table for h in HISTORIES}
    if connection.dialect.name == "sqlite":
        ignored |= SQLITE_SEARCH_OBJECTS

    def include_name(name, kind, _parents) -> bool:
        return kind not in ("table", "index") or name not in ignored

    return MigrationContext.configure(connection, opts={
        "compare_type": True, "compare_server_default": True, "include_name": include_name,
        "version_table": HISTORIES[histories[0]].version_table})


def differences(connection: Connection, histories: list[str]) -> list:
    """What separates the database on `connection` from the models of `histories` (empty: nothing). Pass every
    history that lives in that database (on Postgres both share one)."""
    metadata = [m for h in histories for m in model_metadata(h, connection.dialect.name)]
    return compare_metadata(_context(connection, histories), metadata)


def _upgraded_sqlite(folder: Path, history: str):
    from config.database import database_engine
    from config.migrations import upgrade

    engine = database_engine(None, folder, f"{history}.db")
    upgrade(engine, history)
    return engine


def check() -> int:
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for history in ("conversations", "sessions"):
            engine = _upgraded_sqlite(Path(folder), history)
            with engine.connect() as connection:
                found = differences(connection, [history])
            engine.dispose()
            print(f"{history}: " + ("the newest revision builds what the models declare" if not found else
                                    "the newest revision differs from the models:"))
            for difference in found:
                print(f"  {difference}")
            failed |= bool(found)
    return 1 if failed else 0


def new(history: str, message: str) -> int:
    from config.migrations import head, scripts

    with tempfile.TemporaryDirectory() as folder:
        engine = _upgraded_sqlite(Path(folder), history)
        with engine.connect() as connection:
            context = _context(connection, [history])
            migration = produce_migrations(context, model_metadata(history, "sqlite"))
            upgrades = render_python_code(migration.upgrade_ops, migration_context=context)
            downgrades = render_python_code(migration.downgrade_ops, migration_context=context)
        engine.dispose()
    if migration.upgrade_ops.is_empty():
        print(f"{history}: the models declare nothing the newest revision does not build; no revision written")
        return 1
    newest = head(history)
    number = int(newest.split("_", 1)[0]) + 1
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]
    imports = "from sqlalchemy.dialects import postgresql\n" if "postgresql." in upgrades + downgrades else ""
    path = scripts(history).generate_revision(f"{number:04d}_{slug}", message, head=newest, upgrades=upgrades.strip(),
                                              downgrades=downgrades.strip(), imports=imports).path
    print(f"wrote {Path(path).relative_to(Path.cwd()) if Path(path).is_relative_to(Path.cwd()) else path}: "
          "read it, make it right for Postgres too, then run tests/unit/test_migrations.py")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.migration", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="do the revisions build exactly what the models declare?")
    making = commands.add_parser("new", help="write a revision from the models' difference to the newest revision")
    making.add_argument("history", choices=("conversations", "sessions"))
    making.add_argument("message")
    args = parser.parse_args(argv)
    return check() if args.command == "check" else new(args.history, args.message)


if __name__ == "__main__":
    sys.exit(main())
