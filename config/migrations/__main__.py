"""`python -m config.migrations [upgrade | current]`: upgrade both databases of the configured app now (what the app
does when it starts), or show which schema revision each is at. Configuration as for the app (environment, .env)."""
from __future__ import annotations

import argparse
import sys

from config import ConfigError, load_settings
from config.database import database_engine
from config.logs import configure_logging
from config.migrations import DATABASES, MigrationError, current, describe, head, upgrade_databases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.migrations", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("upgrade", "current"), nargs="?", default="upgrade")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as problem:
        sys.stderr.write(f"{problem}\n")
        return 2
    configure_logging(settings.app.log_level)
    if args.command == "upgrade":
        try:
            for outcome in upgrade_databases(settings):
                print(outcome)
        except MigrationError as problem:
            sys.stderr.write(f"{problem}\n")
            return 2
        return 0
    url = settings.app.database_url.get_secret_value() if settings.app.database_url else None
    for history, sqlite_name in DATABASES:
        engine = database_engine(url, settings.app.data_dir, sqlite_name)
        try:
            print(f"{history} database ({describe(engine)}): at {current(engine, history) or 'no revision recorded'}, "
                  f"this app's newest is {head(history)}")
        finally:
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
