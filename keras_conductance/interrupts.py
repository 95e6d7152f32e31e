"""Signals around long work: Ctrl-C held back while a record is written, and
SIGTERM turned into an interrupt while a checkpointed run streams.

Only the main thread receives signals and may set their handlers; in any
other thread both guards do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Terminated", "deferred", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the loop can save its checkpoint."""


@contextlib.contextmanager
def _handler(signum: int, handler):
    """Sets ``handler`` for ``signum`` in the block; yields the previous one,
    restored after it (None, a handler set outside Python, as the default)."""
    previous = signal.signal(signum, handler)
    try:
        yield previous
    finally:
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def deferred():
    """Delays Ctrl-C (SIGINT) until the block is done, so that what it writes
    is written whole; then interrupts as the previous handler would."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    with _handler(signal.SIGINT, lambda signum, frame: received.append(frame)) as previous:
        yield
    if received:
        if callable(previous):  # usually signal.default_int_handler
            previous(signal.SIGINT, received[-1])
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt(enabled: bool = True):
    """While the block runs, SIGTERM raises ``Terminated`` (a
    ``KeyboardInterrupt``), so a checkpoint can be saved. Not ``enabled``:
    SIGTERM keeps its own handler."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated(f"signal {signum}")

    with _handler(signal.SIGTERM, raise_terminated):
        yield
