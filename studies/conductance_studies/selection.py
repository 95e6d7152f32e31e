"""Feature selection (paper Section 5.2, Table 1).

Per label, average each method's per-filter importance over the training
examples of that label; keep the k filters with the highest average for any
label; train a linear classifier (standardised logistic regression) on those
filters' activations; report its accuracy on held-out examples.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from conductance_studies.common import pyplot, finish

__all__ = ["SelectionResult", "feature_selection", "linear_probe_accuracy", "per_label_splits",
           "select_filters", "stratified_splits"]

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
        per_split: method -> k -> the accuracy of each split, in split order
            (for standard deviations and aggregates over label sets).
        selected: method -> k -> ``(splits, k)`` filters chosen on each split.
    """

    ks: Sequence[int]
    accuracy: Dict[str, Dict[int, float]]
    all_filters: float
    splits: int
    chance: float
    per_split: Dict[str, Dict[int, List[float]]] = dataclasses.field(default_factory=dict)
    selected: Dict[str, Dict[int, List[List[int]]]] = dataclasses.field(default_factory=dict)

    def std(self) -> Dict[str, Dict[int, float]]:
        """method -> k -> standard deviation of the accuracy over splits."""
        return {m: {k: float(np.std(v)) for k, v in by_k.items()}
                for m, by_k in self.per_split.items()}

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
            (for the explained score: the predicted label's, or the true
            label's on training examples).
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
    chosen = {m: {k: [] for k in ks} for m in importances}
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
                cols = select_filters(importance[train], labels[train], k)
                chosen[method][k].append(cols.tolist())
                acc[method][k].append(probe(cols))
        for k in ks:
            acc[RANDOM][k].append(np.mean([probe(rng.choice(n_filters, k, replace=False))
                                           for _ in range(random_draws)]))
        full.append(probe(np.arange(n_filters)))
        counts = np.bincount(labels[train])
        chance.append(float(np.mean(labels[test] == counts.argmax())))
    table = {m: {k: float(np.mean(v)) for k, v in by_k.items()} for m, by_k in acc.items()}
    per_split = {m: {k: [float(a) for a in v] for k, v in by_k.items()} for m, by_k in acc.items()}
    return SelectionResult(list(ks), table, float(np.mean(full)), len(splits),
                           float(np.mean(chance)), per_split, chosen)


def stratified_splits(labels: np.ndarray, folds: int = 5, seed: int = 0):
    """``folds`` (train_index, test_index) pairs, each label spread evenly."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), int)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold_of[idx] = np.arange(idx.size) % folds
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]


def per_label_splits(labels: np.ndarray, n_train: int, splits: int = 10, seed: int = 0):
    """``splits`` random (train_index, test_index) pairs with ``n_train``
    training examples of every label, the rest held out (the paper: 30 of
    about 50 photos per label to train, 20 to evaluate).

    Raises:
        ValueError: if a label has ``n_train`` examples or fewer.
    """
    counts = {int(c): int(np.sum(labels == c)) for c in np.unique(labels)}
    short = {c: n for c, n in counts.items() if n <= n_train}
    if short:
        raise ValueError(f"`n_train`={n_train} leaves no held-out example for labels "
                         f"{short} (label: count). Use a smaller n_train.")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(splits):
        train = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n_train]
                                for c in counts])
        train.sort()
        out.append((train, np.setdiff1d(np.arange(len(labels)), train)))
    return out
