"""The app's one declarative base: every table, whichever module declares it, is in `Base.metadata`.

Two Alembic histories share it (config/migrations): the sign-in sessions' tables (`SESSIONS_TABLES`, which may live in
a database of their own) and everything else. `tables_of(history)` is the part of the metadata each history builds.
"""
from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

SESSIONS_TABLES = frozenset({"auth_sessions", "auth_used_states"})


class Base(DeclarativeBase):
    pass


def tables_of(history: str) -> MetaData:
    """A copy of the metadata holding only the tables of `history` ("sessions" or "conversations")."""
    part = MetaData()
    for table in Base.metadata.sorted_tables:
        if (table.name in SESSIONS_TABLES) == (history == "sessions"):
            table.to_metadata(part)
    return part
