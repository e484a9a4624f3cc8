"""The SQL database behind conversations and sign-in sessions: Postgres (or any SQLAlchemy URL) when configured,
else SQLite files in the data directory."""
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


def create_tables(metadata, engine: Engine, attempts: int = 5) -> None:
    """`create_all` that tolerates replicas starting at the same moment: Postgres lets two concurrent CREATE TABLEs
    collide (a unique violation on its catalogue); the loser waits and finds the tables there."""
    import time

    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
