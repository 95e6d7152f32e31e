"""``LogsSink``: two scalars per unit in Keras' epoch ``logs``."""

from __future__ import annotations

import math
from typing import Dict, List, Optional

from keras_conductance.arguments import check
from keras_conductance.callbacks.record import Record
from keras_conductance.callbacks.sink import Sink

__all__ = ["LogsSink"]


class LogsSink(Sink):
    """Adds ``<name>_<unit>_max`` (the largest filter mean) and
    ``<name>_<unit>_abs_delta`` to the epoch ``logs``, so that ``History``
    and ``CSVLogger`` placed after the callback see them; NaN in epochs
    without a record (skipped by ``freq``).

    Args:
        name: the prefix of the keys.
    """

    def __init__(self, name: str = "conductance"):
        self.name = check("name", name)
        self._units: List[str] = []

    def check(self, filters: Dict[str, int]) -> None:
        self._units = list(filters)

    def write(self, record: Record) -> None:
        self._units = record.units  # nothing to write: ``logs`` hands the values on

    def logs(self, record: Optional[Record]) -> Dict[str, float]:
        values = {}
        for n in (record.units if record else self._units):
            values[f"{self.name}_{n}_max"] = (
                float(record.conductance[n].max()) if record else math.nan)
            values[f"{self.name}_{n}_abs_delta"] = record.abs_delta[n] if record else math.nan
        return values
