"""Division of labour (paper Section 6.2, Figure 3).

The sign of each filter's conductance on many sentences, with |c| below a
threshold counted as zero: do filters carry positive or negative sentiment,
but rarely both?
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np

from conductance_studies.common import pyplot, finish

__all__ = ["LabourResult", "division_of_labour"]


@dataclasses.dataclass
class LabourResult:
    """Sign matrix of per-filter conductance and how one-sided filters are.

    Attributes:
        signs: ``(N, C)`` int8 in {-1, 0, +1} (0: |conductance| < threshold).
        threshold: the zero band (the paper: 0.01).
        positive: ``(C,)`` how many examples each filter conducts above +threshold.
        negative: ``(C,)`` ... below -threshold.
    """

    signs: np.ndarray
    threshold: float

    @property
    def positive(self) -> np.ndarray:
        return (self.signs > 0).sum(axis=0)

    @property
    def negative(self) -> np.ndarray:
        return (self.signs < 0).sum(axis=0)

    def summary(self, dominance: float = 0.95) -> Dict[str, float]:
        """Fractions of filters: single-signed (never both signs), dominated
        (>= ``dominance`` of the nonzero signs agree), and silent (always 0)."""
        pos, neg = self.positive, self.negative
        active = (pos + neg) > 0
        major = np.maximum(pos, neg) / np.maximum(pos + neg, 1)
        n = self.signs.shape[1]
        return {
            "filters": int(n),
            "examples": int(self.signs.shape[0]),
            "threshold": float(self.threshold),
            "single_signed": float(np.mean(active & ((pos == 0) | (neg == 0)))),
            "dominated": float(np.mean(active & (major >= dominance))),
            "silent": float(np.mean(~active)),
            "zero_entries": float(np.mean(self.signs == 0)),
        }

    def plot(self, path=None, title: Optional[str] = None, max_rows: int = 4000):
        """Clustered heatmap (SciPy average linkage on rows and columns):
        red negative, blue positive, green near zero, as the paper's Fig. 3."""
        plt = pyplot()
        from matplotlib.colors import ListedColormap

        signs = self.signs[:max_rows].astype(np.float32)
        rows, cols = _leaf_order(signs), _leaf_order(signs.T)
        fig, ax = plt.subplots(figsize=(7, 5))
        cmap = ListedColormap(["#d62728", "#2ca02c", "#1f77b4"])
        ax.imshow(signs[np.ix_(rows, cols)], cmap=cmap, vmin=-1, vmax=1, aspect="auto",
                  interpolation="nearest")
        ax.set_xlabel(f"filters ({signs.shape[1]}, clustered)")
        ax.set_ylabel(f"examples ({signs.shape[0]}, clustered)")
        s = self.summary()
        ax.set_title(title or (f"sign of conductance (red -, blue +, green |c| < {self.threshold}); "
                               f"{100 * s['single_signed']:.0f}% of filters single-signed"),
                     fontsize=9)
        return finish(fig, path, dpi=110)


def _leaf_order(matrix: np.ndarray) -> np.ndarray:
    try:
        from scipy.cluster import hierarchy
    except ImportError:
        raise ImportError(
            "The clustered heatmap needs SciPy: `pip install 'keras-conductance[studies]'`."
        ) from None
    if len(matrix) < 2:
        return np.arange(len(matrix))
    return hierarchy.leaves_list(hierarchy.linkage(matrix, method="average", metric="cityblock"))


def division_of_labour(conductance: np.ndarray, threshold: float = 0.01) -> LabourResult:
    """The sign matrix of per-filter conductance.

    Args:
        conductance: ``(N, C)`` per-filter conductance of one fixed score
            (e.g. the positive-sentiment logit) over N examples.
        threshold: absolute values below it count as zero (the paper: 0.01).

    Returns:
        ``LabourResult``.
    """
    c = np.asarray(conductance)
    if c.ndim != 2:
        raise ValueError(f"`conductance` must be (N, C). Received shape {c.shape}.")
    if not threshold >= 0:
        raise ValueError(f"`threshold` must be >= 0. Received: threshold={threshold!r}.")
    signs = np.where(c > threshold, 1, np.where(c < -threshold, -1, 0)).astype(np.int8)
    return LabourResult(signs, float(threshold))
