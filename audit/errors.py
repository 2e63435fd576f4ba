"""The one exception type that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class AuditError(Exception):
    """A problem the user can fix (bad model id, malformed data file, bad flag), not a bug.

    The message names the bad thing: the file and row, the field, or the flag.
    """
