"""Storage: the one SQLAlchemy declarative base every table of the app is declared on (`store.base.Base`).

The tables themselves still live beside the code that owns them (memory/, auth/sessions.py, callbacks/chain_stats.py);
they move here one module at a time (issue 33). Schema changes go through the Alembic histories in config/migrations.
"""
