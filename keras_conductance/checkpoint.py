"""Resumable running sums for long dataset runs.

``conductance_over_dataset(..., checkpoint_dir=...)`` keeps its float64
running sums, the number of batches consumed and a *fingerprint* of every
setting that changes the numbers (model weights, layers, rule, target mode,
baselines, dataset spec ...) in one ``.npz`` file. It is written atomically
(a temporary file in the same folder, then ``os.replace``), so a run killed at
any moment leaves either the previous checkpoint or the new one, never half
of one. A run started again with the same arguments skips the batches
already summed and adds the rest in the same order, so its result is exactly
(bit for bit) that of an uninterrupted run; a run with different arguments
is refused with the list of what differs.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Dict, Optional, Tuple

import numpy as np

from keras_conductance.folders import check_writable, write_npz_atomically

__all__ = ["Checkpoint", "CHECKPOINT_FILE", "weights_digest"]

CHECKPOINT_FILE = "conductance_over_dataset.npz"


def weights_digest(model) -> str:
    """sha256 of a model's weights (values, shapes and dtypes, in order)."""
    digest = hashlib.sha256()
    for w in model.weights:
        value = np.ascontiguousarray(np.asarray(w.numpy() if hasattr(w, "numpy") else w))
        digest.update(f"{w.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class Checkpoint:
    """One run's checkpoint file.

    Args:
        directory: folder for the file (created when missing).
        every: save after this many batches.
        fingerprint: JSON-able dict of the settings the sums depend on.
    """

    def __init__(self, directory, every: int, fingerprint: Dict[str, object]):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(
                f"`checkpoint_every` must be a positive int (batches). Received: "
                f"checkpoint_every={every!r}."
            )
        self.path = pathlib.Path(directory) / CHECKPOINT_FILE
        self.every = int(every)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.saved_at = -1
        check_writable(self.path.parent, "checkpoint_dir")

    def load(self) -> Tuple[int, Optional[Dict[str, np.ndarray]]]:
        """``(batches done, running sums)``; ``(0, None)`` without a file.

        Raises:
            ValueError: the file was written by a run with other settings.
        """
        if not self.path.exists():
            return 0, None
        with np.load(self.path, allow_pickle=False) as data:
            saved = json.loads(str(data["fingerprint"]))
            done = int(data["done"])
            totals = {k[len("sum/"):]: np.array(data[k]) for k in data.files
                      if k.startswith("sum/")}
        differs = sorted(k for k in set(saved) | set(self.fingerprint)
                         if saved.get(k) != self.fingerprint.get(k))
        if differs:
            shown = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now "
                              f"{self.fingerprint.get(k)!r}" for k in differs)
            raise ValueError(
                f"The checkpoint in {str(self.path.parent)!r} was written by a run with "
                f"other settings, so its sums cannot be continued: {shown}. Use another "
                "`checkpoint_dir`, or delete the file "
                f"{self.path.name!r} to start over."
            )
        self.saved_at = done
        return done, totals

    def due(self, done: int) -> bool:
        return done - max(self.saved_at, 0) >= self.every

    def save(self, done: int, totals: Dict[str, np.ndarray], finished: bool = False):
        """Writes the sums after ``done`` batches, atomically (``finished``:
        also when nothing changed since the last save)."""
        if done == self.saved_at and not finished:
            return
        arrays = {f"sum/{k}": np.asarray(v) for k, v in totals.items()}
        write_npz_atomically(self.path, dict(
            fingerprint=json.dumps(self.fingerprint, sort_keys=True), done=done, **arrays))
        self.saved_at = done
