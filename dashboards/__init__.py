"""Streamlit dashboard pages over run directories; reads through `audit.store` and never imports torch."""
