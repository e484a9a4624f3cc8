"""Loaded by child processes of the tests (PYTHONPATH includes this folder): installs the same network guard."""
import os

if os.environ.get("NETGUARD") == "1":
    import netguard

    netguard.install()
