"""HTML and Markdown audit reports rendered from run directories (read through `audit.store` only)."""
