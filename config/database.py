"""The SQL database behind conversations and sign-in sessions: Postgres (or any SQLAlchemy URL) when configured,
else SQLite files in the data directory. Their schema comes from the migrations in config/migrations."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def database_engine(database_url: str | None, data_dir: Path, sqlite_name: str) -> Engine:
    """Postgres (or any SQLAlchemy URL) when configured, else a SQLite file in the data directory."""
    if database_url:
        return create_engine(database_url, pool_pre_ping=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{data_dir / sqlite_name}", connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(connection, _record) -> None:  # WAL: readers do not block the writer
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _wal(cursor)
        cursor.close()

    return engine


def _wal(cursor, within: float = 30.0) -> None:
    """Switch the file to WAL. Two processes opening a new file at once (replicas starting together) can get
    "database is locked" at once, without the busy timeout: SQLite needs the file to itself to change the journal mode.
    The mode is stored in the file, so the other process's switch usually ends the wait."""
    deadline = time.monotonic() + within
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
