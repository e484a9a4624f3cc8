"""The one exception configuration problems raise: its message is written for the person starting the app."""


class ConfigError(Exception):
    """A missing or invalid setting; the message names the variable (or catalog entry) and what is expected."""
