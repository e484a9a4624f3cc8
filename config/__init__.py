"""Configuration: settings from the environment / .env, and the deployment catalog. Imports nothing else of the product."""
from config.catalog import Catalog, Deployment, load_catalog
from config.errors import ConfigError
from config.settings import Settings, current_settings, load_settings

__all__ = ["Catalog", "ConfigError", "Deployment", "Settings", "current_settings", "load_catalog", "load_settings"]
