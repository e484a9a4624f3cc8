"""Tools agent chains offer the model: one file per tool, listed in chains/tools/registry.py."""
