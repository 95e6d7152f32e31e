"""Output folders: created and proven writable before any long work."""

from __future__ import annotations

import os
import tempfile

import numpy as np

__all__ = ["check_writable", "write_npz_atomically"]


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


def write_npz_atomically(path, arrays: dict) -> None:
    """Writes ``arrays`` to the ``.npz`` file ``path`` whole or not at all:
    a temporary file beside it, flushed to disk, then renamed over it, so a
    reader (or a run killed at any moment) sees the old file or the new one,
    never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a result file is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
