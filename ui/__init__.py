"""Streamlit page code: the only package (with app.py) that imports streamlit."""
