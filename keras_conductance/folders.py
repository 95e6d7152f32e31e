"""Output folders: created and proven writable before any long work."""

from __future__ import annotations

import os
import tempfile

__all__ = ["check_writable"]


def check_writable(folder, argument: str, hint: str = "") -> None:
    """Creates ``folder`` and writes a file there, or raises a ValueError
    that names ``argument`` (a read-only folder, a file in the way, a
    read-only file system, no permission)."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        shown = argument if argument.startswith("-") else f"`{argument}`"  # a flag, or Python
        raise ValueError(
            f"{shown} cannot be written: {os.fspath(folder)!r} "
            f"({err.strerror or err}).{(' ' + hint) if hint else ''}"
        ) from None
