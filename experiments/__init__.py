"""Offline evaluation of chat chains over a JSONL dataset, through the same turn engine the page uses.

    python -m experiments run DATASET --chains assistant@1,concise@1 [--judge DEPLOYMENT]

Nothing in this package imports streamlit.
"""
