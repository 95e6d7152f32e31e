"""What ``conductance_over_dataset`` returns, and its ``.npz`` file."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Union

import numpy as np

from keras_conductance.arguments import check, message
from keras_conductance.folders import write_npz_atomically
from keras_conductance.top_examples import HISTOGRAM_EDGES, SIGNS, TopExamples

__all__ = ["DatasetConductance", "load_dataset_result"]

_FORMAT = "keras_conductance.DatasetConductance/1"


@dataclasses.dataclass(eq=False)
class DatasetConductance:
    """Per-filter conductance aggregated over a dataset.

    ``C`` is a layer's number of filters (channels), ``L`` the number of
    distinct labels seen. Means are float64 over all examples streamed.

    Attributes:
        layers: the layer names, in the order requested.
        mean: layer -> ``(C,)`` mean per-filter conductance over all examples
            (the conductance of a filter is the sum over its units, Eq. 3).
        count: number of examples streamed.
        labels: ``(L,)`` int label ids that occurred, ascending; None when
            the dataset yields no labels.
        mean_per_label: layer -> ``(L, C)``; row ``i`` is the mean over the
            examples whose label is ``labels[i]`` (the paper's class-level
            importance, Sec. 5.2). None without labels.
        count_per_label: ``(L,)`` examples per label; None without labels.
        mean_abs_delta: layer -> mean over examples of |sum of the layer's
            conductances - (F(x) - F(x'))|, the completeness error (only a
            layer that cuts the network must have it near zero).
        mean_output_diff: mean of F(x) - F(x') over examples.
        target: what was explained: ``"top"`` (each example's top predicted
            class), ``"label"``, ``"class <k>"`` or ``"callable"``.
        n_steps: steps of the integration rule.
        method: the integration rule.
        is_cut: layer -> whether the layer alone cuts the network (None: a
            unit inside a layer, unknown).
        batches: batches summed, all told.
        resumed_batches: how many of them came from a checkpoint
            (``checkpoint_dir``) rather than this call.
        top: with ``top_k``: layer -> ``TopExamples``, each unit's strongest
            positive and negative positions over the dataset. None without.
        mean_abs: with ``top_k``: layer -> ``(C,)`` mean over examples of
            |per-filter conductance| (how much a unit conducts, either way).
        histogram: with ``top_k``: layer -> ``(C, bins)`` counts of the
            per-example per-filter conductance in the bins of
            ``histogram_edges`` (the first and last bins are open).
        histogram_edges: ``(bins - 1,)`` float32 bin edges, symmetric and
            log-spaced (``top_examples.HISTOGRAM_EDGES``).
        example_ids: with ``top_k``: ``(N,)`` sorted dataset indices of the
            examples that appear in ``top``.
        example_inputs: their features, ``(N, ...)``: an array for a
            single-input model, else a dict by input name (or position).
        channel_axes: with ``top_k``: layer -> the axis of its batched
            output that holds the units (what ``channel_axis`` resolved to).
    """

    layers: List[str]
    mean: Dict[str, np.ndarray]
    count: int
    labels: Optional[np.ndarray]
    mean_per_label: Optional[Dict[str, np.ndarray]]
    count_per_label: Optional[np.ndarray]
    mean_abs_delta: Dict[str, float]
    mean_output_diff: float
    target: str
    n_steps: int
    method: str
    is_cut: Dict[str, Optional[bool]]
    batches: int = 0
    resumed_batches: int = 0
    top: Optional[Dict[str, TopExamples]] = None
    mean_abs: Optional[Dict[str, np.ndarray]] = None
    histogram: Optional[Dict[str, np.ndarray]] = None
    histogram_edges: Optional[np.ndarray] = None
    example_ids: Optional[np.ndarray] = None
    example_inputs: Union[None, np.ndarray, Dict[str, np.ndarray]] = None
    channel_axes: Optional[Dict[str, int]] = None

    def label_mean(self, layer: str, label: int) -> np.ndarray:
        """``(C,)`` mean per-filter conductance over the examples of ``label``."""
        if self.labels is None:
            raise ValueError(
                "This result has no per-label means: the dataset yielded no "
                "labels. Stream `(inputs, labels)` pairs to get them."
            )
        where = np.flatnonzero(self.labels == label)
        if where.size == 0:
            raise ValueError(
                f"No example had label={label!r}. Labels seen: {self.labels.tolist()}."
            )
        return self.mean_per_label[self._layer(layer)][where[0]]

    def top_filters(self, layer: str, k: int = 10, label: Optional[int] = None) -> np.ndarray:
        """``(k,)`` indices of the filters with the largest mean conductance.

        Args:
            layer: layer name.
            k: how many filters.
            label: rank by the mean over this label's examples instead of all.
        """
        scores = self.mean[self._layer(layer)] if label is None else self.label_mean(layer, label)
        return np.argsort(-scores, kind="stable")[:check("k", k, high=scores.size)]

    def _layer(self, layer: str) -> str:
        if not isinstance(layer, str):
            raise TypeError(message("layer", "a layer name (str)", layer))
        if layer not in self.mean:
            raise KeyError(
                f"No such layer: {layer!r} in this result. Valid layers: {self.layers}."
            )
        return layer

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Writes the whole result to one ``.npz`` file (atomically), for
        ``load_dataset_result`` and ``keras-conductance browse``.

        Returns:
            The path written.
        """
        path = os.fspath(check("path", path))
        arrays, meta = {}, {"format": _FORMAT}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "top":
                meta["top"] = None if value is None else {
                    layer: list(t.position_shape) for layer, t in value.items()}
                for layer, t in (value or {}).items():
                    for name in ("values", "examples", "positions", "targets", "labels",
                                 "contexts"):
                        for sign, array in (getattr(t, name) or {}).items():
                            arrays[f"top/{layer}/{name}/{sign}"] = array
            elif isinstance(value, dict) and value and isinstance(
                    next(iter(value.values())), np.ndarray):
                meta[field.name] = "dict"
                for key, array in value.items():
                    arrays[f"{field.name}/{key}"] = array
            elif isinstance(value, np.ndarray):
                meta[field.name] = "array"
                arrays[field.name] = value
            else:
                meta[field.name] = value
        write_npz_atomically(path, dict(meta=json.dumps(meta), **arrays))
        return path


def load_dataset_result(path: Union[str, os.PathLike]) -> DatasetConductance:
    """Reads a ``DatasetConductance`` that ``DatasetConductance.save`` wrote.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not such a result.
    """
    path = os.fspath(check("path", path))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No such result file: {path!r}. Write one with `result.save(path)` after "
            "`kc.conductance_over_dataset(..., top_k=K)`.")
    with np.load(path, allow_pickle=False) as data:
        if "meta" not in data.files:
            raise ValueError(message("path", "a file written by DatasetConductance.save", path,
                                     got=f"a .npz without its 'meta' entry: {path!r}"))
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(message("path", f"a file written by DatasetConductance.save "
                                     f"({_FORMAT!r})", path,
                                     got=f"{path!r}, which holds {meta.get('format')!r}"))
        arrays = {k: np.array(data[k]) for k in data.files if k != "meta"}
    fields = {}
    for field in dataclasses.fields(DatasetConductance):
        kind = meta.get(field.name)
        if field.name == "top":
            fields["top"] = None if kind is None else {
                layer: _top_from(arrays, layer, shape) for layer, shape in kind.items()}
        elif kind == "dict":
            prefix = field.name + "/"
            fields[field.name] = {k[len(prefix):]: v for k, v in arrays.items()
                                  if k.startswith(prefix)}
        elif kind == "array":
            fields[field.name] = arrays[field.name]
        else:
            fields[field.name] = kind
    return DatasetConductance(**fields)


def _top_from(arrays: Dict[str, np.ndarray], layer: str, shape: List[int]) -> TopExamples:
    def field(name):
        got = {s: arrays[f"top/{layer}/{name}/{s}"] for s in SIGNS
               if f"top/{layer}/{name}/{s}" in arrays}
        return got or None

    return TopExamples(values=field("values"), examples=field("examples"),
                       positions=field("positions"), targets=field("targets"),
                       labels=field("labels"), contexts=field("contexts"),
                       position_shape=tuple(shape))

