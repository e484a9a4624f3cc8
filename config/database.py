"""The SQL database behind conversations and sign-in sessions: Postgres (or any SQLAlchemy URL) when configured,
else SQLite files in the data directory. Their schema comes from the migrations in config/migrations."""
from __future__ import annotations

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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine
