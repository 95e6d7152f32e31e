"""``Sink``: where a ``ConductanceCallback`` hands each record."""

from __future__ import annotations

from typing import Dict, Optional

from keras_conductance.callbacks.record import Record

__all__ = ["Sink"]


class Sink:
    """Receives the records of a ``ConductanceCallback``.

    The callback computes a record once and hands the same ``Record`` to
    every sink, in order, with Ctrl-C held back until all have written it.
    Subclasses implement ``write``; the other hooks are optional.

    Example:
        >>> class Printer(kc.Sink):
        ...     def write(self, record):
        ...         print(record.when, {n: c.max() for n, c in record.conductance.items()})
        >>> kc.ConductanceCallback(x_val[:32], "conv2", sinks=[Printer()])
    """

    #: Whether this sink shows pictures (the callback then draws them).
    wants_images = False

    def check(self, filters: Dict[str, int]) -> None:
        """Called before any work (training or evaluation starts): refuse
        now what would fail at the first record, e.g. a folder that cannot
        be written. ``filters`` maps each unit to its number of filters."""

    def write(self, record: Record) -> None:
        """Writes one record."""
        raise NotImplementedError(f"{type(self).__name__} must implement write(record).")

    def logs(self, record: Optional[Record]) -> Dict[str, float]:
        """Values for Keras' epoch ``logs`` (``record`` None: an epoch with
        no record, e.g. skipped by ``freq``)."""
        return {}

    def close(self) -> None:
        """Called at the end of training or evaluation, and on an error."""
