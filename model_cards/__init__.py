"""Hugging Face model cards with model-index results, built from run directories (through `audit.store`)."""
