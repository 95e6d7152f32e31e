"""Filters to flip (paper Section 5.1).

Ablate filters cumulatively in conductance order until the top prediction
changes; compare with ablating the top-k filters by internal influence all
at once.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import keras
import numpy as np

from keras_conductance.ablation import Ablator, FlipResult
from keras_conductance.attribution import Measures
from conductance_studies.common import VALUES, per_filter_scores, pyplot, finish

__all__ = ["FlipStudyResult", "filters_to_flip"]


@dataclasses.dataclass
class FlipStudyResult:
    """How many filters, in conductance order, change the prediction.

    Attributes:
        layer: the layer studied.
        flips: value -> ``FlipResult`` (cumulative ablation, conductance order).
        influence_flipped: value -> ``(B,)`` bool, whether ablating the
            top-``k_influence`` filters by internal influence together
            changed the prediction.
        random_flipped: value -> ``(B,)`` bool, the same for
            ``k_influence`` random filters (a control: how often does
            ablating that many filters flip the prediction anyway?).
        k_influence: how many filters the two controls ablate.
    """

    layer: str
    flips: Dict[str, FlipResult]
    influence_flipped: Dict[str, np.ndarray]
    random_flipped: Dict[str, np.ndarray]
    k_influence: int

    def summary(self) -> Dict[str, Dict[str, float]]:
        """value -> mean / median / max filters to flip (over the examples
        that flipped within the limit), counts, and the influence control."""
        out = {}
        for value, flip in self.flips.items():
            n = flip.n_ablated[flip.flipped]
            out[value] = {
                "examples": int(flip.n_ablated.size),
                "flipped": int(flip.flipped.sum()),
                "mean": float(n.mean()) if n.size else float("nan"),
                "median": float(np.median(n)) if n.size else float("nan"),
                "max": int(n.max()) if n.size else -1,
                "more_than_10": int((n > 10).sum()),
                "limit": int(flip.max_filters),
                "influence_top_k_flipped": int(self.influence_flipped[value].sum()),
                "random_k_flipped": int(self.random_flipped[value].sum()),
            }
        return out

    def plot(self, path=None, title: Optional[str] = None):
        """Histogram of the number of filters needed, per ablation value."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for value, flip in self.flips.items():
            n = flip.n_ablated[flip.flipped]
            limit = flip.max_filters
            ax.hist(n, bins=np.arange(1, limit + 2) - 0.5, alpha=0.6,
                    label=f"{value}: {flip.flipped.sum()}/{flip.n_ablated.size} flip")
        ax.set_xlabel("filters ablated (conductance order)")
        ax.set_ylabel("examples")
        ax.legend(fontsize=8)
        ax.set_title(title or f"{self.layer}: filters to flip the prediction", fontsize=10)
        return finish(fig, path, dpi=110)


def filters_to_flip(
    model: keras.Model,
    inputs,
    layer: str,
    measures: Measures,
    *,
    max_filters: int = 50,
    k_influence: int = 10,
    values: Sequence[str] = VALUES,
    baselines=None,
    start_layer: Optional[str] = None,
    pre_softmax: bool = False,
    sign: Optional[np.ndarray] = None,
    ablator: Optional[Ablator] = None,
    seed: int = 0,
) -> FlipStudyResult:
    """Filters needed, in conductance order, to change each prediction.

    Args:
        model, inputs, layer, measures: as ``ablation_agreement``.
        max_filters: give up after this many filters.
        k_influence: the control ablates this many top internal-influence
            filters together (the paper: 10).
        values, baselines, start_layer, pre_softmax, sign, ablator: as
            ``ablation_agreement``.
        seed: seed of the random-filters control.

    Returns:
        ``FlipStudyResult``.
    """
    scores = per_filter_scores(measures, layer, sign)
    n_filters = scores["conductance"].shape[1]
    max_filters = min(max_filters, n_filters)
    ranking = np.argsort(-scores["conductance"], axis=1, kind="stable")[:, :max_filters]
    top_influence = np.argsort(-scores["internal_influence"], axis=1, kind="stable")[:, :k_influence]
    masks = np.zeros((len(ranking), 2, n_filters), bool)
    np.put_along_axis(masks[:, 0], top_influence, True, axis=1)
    rng = np.random.default_rng(seed)
    for row in masks[:, 1]:
        row[rng.choice(n_filters, min(k_influence, n_filters), replace=False)] = True
    ablator = ablator or Ablator(model, layer, pre_softmax=pre_softmax, start_layer=start_layer)
    flips, influence, random = {}, {}, {}
    for value in values:
        # Baselines matter (and are accepted) only for value="baseline".
        used = baselines if value == "baseline" else None
        flips[value] = ablator.until_flip(inputs, ranking, value=value, baselines=used)
        after = ablator.predict(inputs, masks, value=value, baselines=used)
        changed = after != flips[value].original_class[:, None]
        influence[value], random[value] = changed[:, 0], changed[:, 1]
    return FlipStudyResult(layer, flips, influence, random, k_influence)
