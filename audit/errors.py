"""The exception type that the CLI turns into a one-line message and exit code 2, and the warning
type for input that opt-audit repaired instead of refusing."""

from __future__ import annotations


class AuditError(Exception):
    """A problem the user can fix (bad model id, malformed data file, bad flag), not a bug.

    The message names the bad thing: the file and row, the field, or the flag.
    """


class InputWarning(UserWarning):
    """Input that was repaired rather than refused (a lone surrogate replaced by U+FFFD), named
    by file and line.

    Why a warning and not an error: the rest of the row is fine and the repair is visible. A run
    prints each one as an `opt-audit: warning:` line and records it in manifest.json
    (`input_warnings`), so the repair is never silent.
    """
