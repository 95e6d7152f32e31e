"""Small helpers shared by the studies: per-filter scores, statistics, plots."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from keras_conductance.attribution import Measures
# The studies draw with the library's lazy matplotlib (file-only backend
# unless a notebook chose one).
from keras_conductance.plotting import finish, pyplot

__all__ = ["METHODS", "VALUES", "per_filter_scores", "predicted_sign", "pearson_rows",
           "describe", "finish", "pyplot"]

# The paper's four measures, in the order of its tables.
METHODS = ("conductance", "internal_influence", "activation", "gradient_x_activation")
VALUES = ("zero", "baseline")


def predicted_sign(measures: Measures) -> np.ndarray:
    """``(B,)`` +1/-1: the predicted label of a one-logit binary model.

    The paper explains the score of the *predicted* label. For a model with
    one logit F that is F for a positive and -F for a negative prediction;
    every measure but the activation is linear in F, so multiplying the
    scores explained for F by this sign explains the predicted label.
    """
    return np.where(measures.conductance.output_at_input > 0, 1.0, -1.0).astype(np.float32)


def per_filter_scores(measures: Measures, layer: str, sign: Optional[np.ndarray] = None,
                      channel_axis: int = -1) -> Dict[str, np.ndarray]:
    """method -> ``(B, C)`` per-filter scores, oriented by ``sign`` (not the
    activation, which does not depend on the explained score)."""
    out = {}
    for method in METHODS:
        scores = getattr(measures, method).per_filter(layer, channel_axis)
        if sign is not None and method != "activation":
            scores = scores * sign[:, None]
        out[method] = scores
    return out


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(B,)`` Pearson correlation of each row of ``a`` with that of ``b``;
    NaN where a row is constant (the correlation is undefined)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def describe(values: np.ndarray) -> Dict[str, float]:
    """Mean, quartiles and count of the finite values."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "q25": float("nan"), "median": float("nan"),
                "q75": float("nan"), "n": 0}
    q25, q50, q75 = np.percentile(v, [25, 50, 75])
    return {"mean": float(v.mean()), "q25": float(q25), "median": float(q50),
            "q75": float(q75), "n": int(v.size)}
