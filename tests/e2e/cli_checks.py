"""What every CLI error test asserts about a failed command: exit 2, one error line, no traceback."""

from __future__ import annotations


def one_error_line(proc) -> str:
    """The single `opt-audit: error:` line of a failed command (nothing else on stderr)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("opt-audit: error: "), lines[0]
    return lines[0]
