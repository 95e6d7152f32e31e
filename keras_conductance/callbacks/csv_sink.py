"""``CSVSink``: a ConductanceCallback's history as one CSV row per filter."""

from __future__ import annotations

import os
from typing import Dict

from keras_conductance.arguments import check, message
from keras_conductance.callbacks.record import Record
from keras_conductance.callbacks.sink import Sink
from keras_conductance.folders import check_writable

__all__ = ["CSVSink", "CSV_HEADER"]

CSV_HEADER = "epoch,iteration,layer,filter,conductance,abs_delta\n"


class CSVSink(Sink):
    """Appends each record to a CSV file: one row per unit and filter.

    Args:
        filename: the ``.csv`` file (its folder is created).
        append: keep the rows already in the file (else the first record
            starts it afresh).
    """

    def __init__(self, filename, append: bool = False):
        self.filename = check("filename", filename)
        if not self.filename.endswith(".csv"):
            raise ValueError(message("filename", "a path ending in '.csv'", filename))
        self.append = check("append", append)
        self._started = False

    def check(self, filters: Dict[str, int]) -> None:
        check_writable(os.path.dirname(os.path.abspath(self.filename)), "filename",
                       "Pass a folder you can write to, or filename=None for no history file.")

    def write(self, record: Record) -> None:
        fresh = not self._started and not self.append
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        lines = [] if exists and not fresh else [CSV_HEADER]
        for n in record.units:
            delta = record.abs_delta[n]
            for j, value in enumerate(record.conductance[n]):
                lines.append(f"{record.epoch},{record.iteration},{_field(n)},{j},"
                             f"{value:.9g},{delta:.9g}\n")
        # One write per record, then flush and fsync: earlier rows are never
        # touched, and a crash leaves whole records.
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        with open(self.filename, "w" if fresh else "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        self._started = True


def _field(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text
