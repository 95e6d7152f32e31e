"""Ablation agreement (paper Sections 5.1 and 6.1).

For each example, take the top-k filters by conductance, compute their
ablation scores, and correlate (Pearson, across those k filters) the
ablation scores with each measure's scores. Report the mean and quartiles of
the per-example correlations, for zero- and baseline-ablation.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import keras
import numpy as np

from keras_conductance.ablation import Ablator
from keras_conductance.attribution import Measures
from conductance_studies.common import (METHODS, VALUES, describe, pearson_rows,
                                        finish, per_filter_scores, pyplot)

__all__ = ["AgreementResult", "ablation_agreement"]


@dataclasses.dataclass
class AgreementResult:
    """Per-example Pearson correlations between ablation and each measure.

    Attributes:
        layer: the layer studied.
        k: filters per example (None: all of them).
        filters: ``(B, k)`` the top-k filters by conductance per example.
        ablation: value -> ``(B, k)`` ablation scores of those filters.
        scores: method -> ``(B, k)`` the measures' scores of those filters.
        correlations: value -> method -> ``(B,)`` Pearson (NaN: undefined).
        relative_delta: ``(B,)`` the layer's completeness error.
        output_diff: ``(B,)`` F(x) - F(x') of the (oriented) score.
    """

    layer: str
    k: Optional[int]
    filters: np.ndarray
    ablation: Dict[str, np.ndarray]
    scores: Dict[str, np.ndarray]
    correlations: Dict[str, Dict[str, np.ndarray]]
    relative_delta: np.ndarray
    output_diff: np.ndarray

    def additivity(self) -> Dict[str, Dict[str, float]]:
        """value -> statistics of sum_c ablation_c / (F(x) - F(x')) over
        examples (only with ``k=None``). Conductance always sums to
        F(x) - F(x'); single-filter ablations do so only for an additive
        tail, so this ratio measures how far one-at-a-time ablation can
        agree with any complete attribution."""
        if self.k is not None:
            raise ValueError("`additivity` needs every filter: run with k=None. "
                             f"Received: k={self.k}.")
        return {v: describe(a.sum(axis=1) / self.output_diff) for v, a in self.ablation.items()}

    def summary(self) -> Dict[str, Dict[str, Dict[str, float]]]:
        """value -> method -> mean, quartiles and count of the correlations."""
        return {v: {m: describe(c) for m, c in by_m.items()}
                for v, by_m in self.correlations.items()}

    def plot(self, path=None, title: Optional[str] = None):
        """Box plots of the per-example correlations, one panel per value."""
        plt = pyplot()
        values = list(self.correlations)
        fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.4), squeeze=False)
        labels = ["cond.", "int. infl.", "activ.", "grad x act."]
        for ax, value in zip(axes[0], values):
            data = [c[np.isfinite(c)] for c in self.correlations[value].values()]
            ax.boxplot(data, tick_labels=labels[: len(data)], showmeans=True)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"{value}-ablation", fontsize=10)
            ax.set_ylabel("Pearson r with ablation")
        k = "all" if self.k is None else self.k
        fig.suptitle(title or f"{self.layer}: top-{k} filters by conductance", fontsize=10)
        return finish(fig, path, dpi=110)


def ablation_agreement(
    model: keras.Model,
    inputs,
    layer: str,
    measures: Measures,
    *,
    k: Optional[int] = 10,
    values: Sequence[str] = VALUES,
    baselines=None,
    start_layer: Optional[str] = None,
    pre_softmax: bool = False,
    sign: Optional[np.ndarray] = None,
    ablator: Optional[Ablator] = None,
) -> AgreementResult:
    """Correlates each measure with the ablation scores of the top-k filters.

    Args:
        model: the model the measures were computed on.
        inputs: ``(B, *input_shape)`` the same examples.
        layer: a layer of ``measures`` that cuts the network.
        measures: ``kc.measures(...)`` for these inputs (its ``target`` is
            the score ablated).
        k: filters per example, top by conductance (None: all).
        values: ablation values, ``"zero"`` and/or ``"baseline"``.
        baselines: the baselines the measures used (for ``"baseline"``).
        start_layer, pre_softmax: as used for the measures.
        sign: optional ``(B,)`` +1/-1 orienting a one-logit model's score to
            the predicted label (see ``predicted_sign``).
        ablator: a prebuilt ``Ablator`` for (model, layer) to reuse.

    Returns:
        ``AgreementResult``.
    """
    scores = per_filter_scores(measures, layer, sign)
    n_filters = scores["conductance"].shape[1]
    if k is not None and not 2 <= k <= n_filters:
        raise ValueError(f"`k` must be in 2..{n_filters} or None. Received: k={k!r}.")
    order = np.argsort(-scores["conductance"], axis=1, kind="stable")
    filters = order if k is None else order[:, :k]
    chosen = {m: np.take_along_axis(s, filters, axis=1) for m, s in scores.items()}
    ablator = ablator or Ablator(model, layer, pre_softmax=pre_softmax, start_layer=start_layer)
    target = measures.conductance.target
    orient = 1.0 if sign is None else sign[:, None]
    ablation, correlations = {}, {}
    for value in values:
        # Baselines matter (and are accepted) only for value="baseline".
        drop = ablator.scores(inputs, target=target, filters=filters, value=value,
                              baselines=baselines if value == "baseline" else None) * orient
        ablation[value] = drop
        correlations[value] = {m: pearson_rows(drop, chosen[m]) for m in METHODS}
    return AgreementResult(layer, k, filters, ablation, chosen, correlations,
                           measures.conductance.relative_delta([layer]),
                           measures.conductance.output_diff * (1.0 if sign is None else sign))
