"""Feature selection (paper Section 5.2, Table 1).

Per label, average each method's per-filter importance over the training
examples of that label; keep the k filters with the highest average for any
label; train a linear classifier (standardised logistic regression) on those
filters' activations; report its accuracy on held-out examples.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from keras_conductance.studies.common import pyplot, finish

__all__ = ["SelectionResult", "feature_selection", "linear_probe_accuracy", "select_filters",
           "stratified_splits"]

KS = (5, 10, 15, 20)
RANDOM = "random"


def select_filters(importance: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``(k,)`` filters with the highest per-label mean importance for any label.

    Args:
        importance: ``(N, C)`` per-example, per-filter importance.
        labels: ``(N,)`` int labels.
        k: how many filters to keep.
    """
    classes = np.unique(labels)
    per_label = np.stack([importance[labels == c].mean(axis=0) for c in classes])
    return np.argsort(-per_label.max(axis=0), kind="stable")[:k]


def linear_probe_accuracy(train_x, train_y, test_x, test_y, *, c: float = 1.0) -> float:
    """Accuracy of a standardised L2 logistic regression (scikit-learn)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ImportError(
            "Feature selection trains scikit-learn's LogisticRegression: `pip "
            "install 'keras-conductance[studies]'`."
        ) from None
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


@dataclasses.dataclass
class SelectionResult:
    """Held-out accuracy per method and number of selected filters.

    Attributes:
        ks: the numbers of filters tried.
        accuracy: method -> k -> accuracy (mean over splits; ``"random"`` is
            the mean over random draws of k filters, a control).
        all_filters: accuracy with every filter of the layer.
        splits: how many train/test splits were averaged.
        chance: accuracy of always predicting the most frequent label.
    """

    ks: Sequence[int]
    accuracy: Dict[str, Dict[int, float]]
    all_filters: float
    splits: int
    chance: float

    def plot(self, path=None, title: Optional[str] = None):
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for method, by_k in self.accuracy.items():
            style = "--" if method == RANDOM else "-"
            ax.plot(list(by_k), [100 * a for a in by_k.values()], style, marker="o", label=method)
        ax.axhline(100 * self.all_filters, color="grey", lw=0.8, label="all filters")
        ax.set_xlabel("filters selected (k)")
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend(fontsize=7)
        ax.set_title(title or "feature selection", fontsize=10)
        return finish(fig, path, dpi=110)


def feature_selection(
    importances: Mapping[str, np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    splits: Sequence[tuple],
    *,
    ks: Sequence[int] = KS,
    random_draws: int = 10,
    seed: int = 0,
) -> SelectionResult:
    """Table 1 for one label set.

    Args:
        importances: method -> ``(N, C)`` per-filter importance per example
            (for the explained score of the predicted label).
        features: ``(N, C)`` per-filter activations, the classifier's inputs.
        labels: ``(N,)`` int labels.
        splits: ``(train_index, test_index)`` pairs; importance aggregation
            and classifier training use only the train part.
        ks: numbers of filters to select.
        random_draws: random k-filter sets per split for the control.
        seed: seed of the random control.

    Returns:
        ``SelectionResult``.
    """
    rng = np.random.default_rng(seed)
    n_filters = features.shape[1]
    acc = {m: {k: [] for k in ks} for m in list(importances) + [RANDOM]}
    full, chance = [], []
    for train, test in splits:
        if np.unique(labels[train]).size < 2:
            raise ValueError(
                "Every training split needs examples of at least 2 labels. Received "
                f"a split whose {len(train)} training examples all have label "
                f"{labels[train][0]}."
            )
        probe = lambda cols: linear_probe_accuracy(features[train][:, cols], labels[train],
                                                   features[test][:, cols], labels[test])
        for method, importance in importances.items():
            for k in ks:
                acc[method][k].append(probe(select_filters(importance[train], labels[train], k)))
        for k in ks:
            acc[RANDOM][k].append(np.mean([probe(rng.choice(n_filters, k, replace=False))
                                           for _ in range(random_draws)]))
        full.append(probe(np.arange(n_filters)))
        counts = np.bincount(labels[train])
        chance.append(float(np.mean(labels[test] == counts.argmax())))
    table = {m: {k: float(np.mean(v)) for k, v in by_k.items()} for m, by_k in acc.items()}
    return SelectionResult(list(ks), table, float(np.mean(full)), len(splits), float(np.mean(chance)))


def stratified_splits(labels: np.ndarray, folds: int = 5, seed: int = 0):
    """``folds`` (train_index, test_index) pairs, each label spread evenly."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), int)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold_of[idx] = np.arange(idx.size) % folds
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]
