"""opt-audit: a Responsible-AI audit of causal language models (bias, toxicity, degeneration).

Nothing is imported or loaded here: importing `audit` must stay cheap (the dashboard imports
`audit.store` and must never pull in torch).
"""

__version__ = "0.1.0"
