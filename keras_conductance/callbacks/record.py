"""``Record``: one computation of a ``ConductanceCallback``, as every sink
receives it."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["Record"]


@dataclasses.dataclass
class Record:
    """What one record of the callback computed.

    Attributes:
        epoch: 0-based epoch, or -1 for ``model.evaluate`` outside ``fit``.
        iteration: the optimizer's step count at the record.
        last_epoch: the last epoch trained so far (-1: none), the step of an
            evaluation outside ``fit`` on the epoch axis.
        conductance: unit -> ``(C,)`` mean per-filter conductance over the
            probe set.
        abs_delta: unit -> mean |completeness error| over the probe set.
        followed: unit -> the filter indices followed over time: chosen once,
            at the first record (its ``top_k``) or by the user (``follow=``).
        followed_why: how they were chosen, in words.
        attribution: the probe set's ``Attribution`` (None in a record built
            by hand, e.g. in a sink's test).
        pictures: ``(tag, (H, W, 3) uint8)`` images drawn for this record.
    """

    epoch: int
    iteration: int
    conductance: Dict[str, np.ndarray]
    abs_delta: Dict[str, float]
    followed: Dict[str, List[int]]
    followed_why: str = ""
    last_epoch: int = -1
    attribution: Optional[object] = None
    pictures: List[Tuple[str, np.ndarray]] = dataclasses.field(default_factory=list)

    @property
    def units(self) -> List[str]:
        return list(self.conductance)

    @property
    def when(self) -> str:
        """"epoch 3 · iteration 120" or "evaluate · iteration 120"."""
        moment = f"epoch {self.epoch}" if self.epoch >= 0 else "evaluate"
        return f"{moment} \u00b7 iteration {self.iteration}"

    def history_entry(self) -> dict:
        """The entry kept in ``callback.history``."""
        return {"epoch": self.epoch, "iteration": self.iteration,
                "conductance": dict(self.conductance), "abs_delta": dict(self.abs_delta),
                "followed": {n: list(f) for n, f in self.followed.items()}}
