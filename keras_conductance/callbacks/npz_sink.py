"""``NPZSink``: a ConductanceCallback's history as arrays in one ``.npz``."""

from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from keras_conductance.arguments import check, message
from keras_conductance.callbacks.record import Record
from keras_conductance.callbacks.sink import Sink
from keras_conductance.folders import check_writable, write_npz_atomically

__all__ = ["NPZSink"]


class NPZSink(Sink):
    """Rewrites a ``.npz`` file whole at each record (atomically): ``epoch``
    and ``iteration`` ``(R,)``, ``layers``, and per unit
    ``conductance/<unit>`` ``(R, C)`` and ``abs_delta/<unit>`` ``(R,)``.

    Args:
        filename: the ``.npz`` file (its folder is created).
        append: keep the records already in the file.
    """

    def __init__(self, filename, append: bool = False):
        self.filename = check("filename", filename)
        if not self.filename.endswith(".npz"):
            raise ValueError(message("filename", "a path ending in '.npz'", filename))
        self.append = check("append", append)
        self._rows: List[Record] = []
        self._prior: Dict[str, np.ndarray] = {}

    def check(self, filters: Dict[str, int]) -> None:
        """The folder is writable; with ``append``, an existing file holds as
        many filters per unit as this run writes (or the first record would
        fail mid-fit)."""
        check_writable(os.path.dirname(os.path.abspath(self.filename)), "filename",
                       "Pass a folder you can write to, or filename=None for no history file.")
        if not (self.append and os.path.exists(self.filename)):
            return
        with np.load(self.filename) as existing:
            for n, count in filters.items():
                key = f"conductance/{n}"
                if key in existing.files and existing[key].shape[1:] != (count,):
                    raise ValueError(
                        f"`append=True`, but {self.filename} holds "
                        f"{existing[key].shape[1]} filters per record for {n!r} and this "
                        f"run gives {count} (another model, or another `channel_axis`?). "
                        "Pass another `filename`, or append=False to start the file again.")

    def write(self, record: Record) -> None:
        if not self._rows and self.append and os.path.exists(self.filename):
            with np.load(self.filename) as existing:
                self._prior = {k: existing[k] for k in existing.files}
        self._rows.append(record)
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        write_npz_atomically(self.filename, self._arrays())

    def _arrays(self) -> Dict[str, np.ndarray]:
        rows, prior = self._rows, self._prior

        def joined(key, new):
            return np.concatenate([prior[key], new]) if key in prior else new

        arrays = {
            "epoch": joined("epoch", np.array([r.epoch for r in rows], np.int64)),
            "iteration": joined("iteration", np.array([r.iteration for r in rows], np.int64)),
            "layers": np.array(rows[-1].units),
        }
        for n in rows[-1].units:
            arrays[f"conductance/{n}"] = joined(
                f"conductance/{n}", np.stack([r.conductance[n] for r in rows]))
            arrays[f"abs_delta/{n}"] = joined(
                f"abs_delta/{n}", np.array([r.abs_delta[n] for r in rows], np.float32))
        return arrays
