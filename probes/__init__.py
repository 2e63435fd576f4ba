"""Probe suites. Each module is one benchmark; this package maps short names to them.

Importing `probes` loads no data: a probe reads its files when it is constructed.
"""
