"""Text scorers (toxicity, sentiment): the Scorer seam, its cache, and the implementations.

`base` holds the protocol and the runner that scores every text of a run once, batched and
cached; each other module is one scorer. Nothing heavy is imported here.
"""
