"""Running top-k examples per unit over a dataset, and their histograms.

``conductance_over_dataset(..., top_k=K)`` asks, for every unit (filter,
FFN neuron, head) of the explained layers: at which *positions* of the
dataset does it conduct most, and most negatively? A position is one
example and one place in it: the token index of a ``(B, T, C)`` output, the
spatial cell of a ``(B, H, W, C)`` one (channels-first ``(B, C, H, W)``
too), or the whole example for a ``(B, C)`` output. Axes after the channel
axis belong to the unit (a head's ``d`` in ``(B, T, heads, d)``) and are
summed, as for the per-filter sums of Eq. 3.

The device side (``replica_candidates``, inside the compiled step) reduces a
replica's share of a batch to its K best candidates per unit and sign. The
host side (``merge``) keeps the K best of everything seen so far, in numpy,
so replicas, workers and a resumed checkpoint all merge by the same exact
rule. Order is total: by value (descending for the positive list,
ascending for the negative one), then example index, then position, both
ascending; that is what makes the result independent of how the batches
were split between replicas, and equal to a brute-force sort.

Histograms of each unit's per-example conductance use fixed, symmetric
log-spaced bins (``HISTOGRAM_EDGES``), so that they are plain counts: they
add up across replicas and checkpoints like every other sum.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_conductance.arguments import check

__all__ = ["HISTOGRAM_EDGES", "TopExamples", "checksums", "empty_state", "histogram_counts",
           "host_checksums", "merge", "position_axes", "positions_of", "replica_candidates",
           "to_result"]

# |value| edges from 1e-6 to 1e3, four bins per decade, mirrored; the bin
# between -1e-6 and 1e-6 holds (near-)zeros. 73 edges, 74 bins.
_MAGNITUDES = 10.0 ** np.arange(-6.0, 3.0 + 1e-9, 0.25)
HISTOGRAM_EDGES = np.concatenate([-_MAGNITUDES[::-1], _MAGNITUDES]).astype(np.float32)
SIGNS = ("positive", "negative")


def position_axes(rank: int, channel_axis: int) -> Tuple[List[int], List[int]]:
    """``(position axes, within-unit axes)`` of a batched output of ``rank``.

    Channels-first (axis 1 with spatial axes after it): the axes after it
    are positions. Otherwise the axes between the batch and the channel
    axis are positions and those after it belong to the unit.
    """
    channel = channel_axis % rank
    if channel == 1 and rank > 2:
        return list(range(2, rank)), []
    return list(range(1, channel)), list(range(channel + 1, rank))


def positions_of(values: tf.Tensor, channel_axis: int) -> tf.Tensor:
    """``(b, *Y) -> (b, P, C)``: each unit's conductance at each position.

    ``P`` is the product of the position axes (1 for a ``(b, C)`` output).
    """
    rank = values.shape.rank
    channel = channel_axis % rank
    places, inside = position_axes(rank, channel_axis)
    if inside:
        values = tf.reduce_sum(values, axis=inside)
    order = [0] + places + [channel]
    kept = sorted(order)
    values = tf.transpose(values, [kept.index(a) for a in order])
    dims = values.shape[1:-1]
    # Static where the layer's shape is (it is, for a traced Keras layer).
    places = int(np.prod(dims, dtype=np.int64)) if dims.is_fully_defined() else -1
    return tf.reshape(values, [tf.shape(values)[0], places, values.shape[-1]])


def histogram_counts(per_filter: tf.Tensor) -> tf.Tensor:
    """``(b, C) -> (C, bins)`` counts of per-example values in the fixed bins."""
    edges = tf.constant(HISTOGRAM_EDGES)
    bins = HISTOGRAM_EDGES.size + 1
    channels = per_filter.shape[-1]
    columns = tf.transpose(per_filter)  # (C, b)
    index = tf.searchsorted(tf.broadcast_to(edges, [channels, edges.shape[0]]), columns,
                            side="right")
    segments = index + bins * tf.range(channels)[:, None]
    counts = tf.math.unsorted_segment_sum(tf.ones([tf.size(columns)]), tf.reshape(segments, [-1]),
                                          channels * bins)
    return tf.reshape(counts, [channels, bins])


def checksums(inputs) -> tf.Tensor:
    """``(b,)`` float64 fingerprint of each example: the sum of each input's
    values, weighted 1, 2, ... by input (``host_checksums`` runs it eagerly
    on the host's copy)."""
    total = 0.0
    for i, x in enumerate(tf.nest.flatten(inputs)):
        rows = tf.reshape(tf.cast(x, tf.float64), [tf.shape(x)[0], -1])
        total += (i + 1) * tf.reduce_sum(rows, axis=1)
    return total


def host_checksums(inputs) -> np.ndarray:
    """``checksums`` of numpy inputs, run eagerly."""
    return checksums(tf.nest.map_structure(tf.convert_to_tensor, inputs)).numpy()


def replica_candidates(per_position: tf.Tensor, ids: tf.Tensor, targets: tf.Tensor,
                       labels: Optional[tf.Tensor], k: int,
                       checksums: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
    """A replica's K best candidates per unit and sign, from one batch share.

    Args:
        per_position: ``(b, P, C)`` conductance per example, position, unit.
        ids: ``(b,)`` int64 dataset index of each example.
        targets: ``(b,)`` int32 explained class per example (-1: a callable).
        labels: ``(b,)`` int32 label ids, or None.
        k: how many per unit and sign.
        checksums: ``(b,)`` float64 fingerprints of the examples (kept with
            each candidate), or None (zeros).

    Returns:
        ``{"<sign>/<field>": (1, C, k[, P])}`` tensors, padded with
        value -inf/+inf and example -1 where the share holds fewer than
        ``k`` positions (the leading 1 is the axis ``strategy.gather`` joins).
    """
    # Rows in ascending example index, so that top_k's rule for ties (the
    # lower flat index first) is the global rule: example, then position.
    order = tf.argsort(ids, stable=True)
    per_position = tf.gather(per_position, order)
    ids, targets = tf.gather(ids, order), tf.gather(targets, order)
    labels = None if labels is None else tf.gather(labels, order)
    checksums = tf.zeros(tf.shape(ids), tf.float64) if checksums is None else \
        tf.gather(checksums, order)
    b = tf.shape(per_position)[0]
    places, channels = per_position.shape[1], per_position.shape[2]
    by_unit = tf.transpose(per_position, [2, 0, 1])  # (C, b, P)
    flat = tf.reshape(by_unit, [channels, -1])
    out = {}
    for sign, scale in zip(SIGNS, (1.0, -1.0)):
        padded = tf.concat([scale * flat, tf.fill([channels, k], -np.inf)], axis=1)
        best, where = tf.math.top_k(padded, k=k, sorted=True)
        real = where < b * places
        example = tf.minimum(where // places, tf.maximum(b - 1, 0))
        fields = {
            "value": scale * best,
            "example": tf.where(real, tf.gather(ids, example), tf.constant(-1, tf.int64)),
            "position": tf.where(real, tf.cast(where % places, tf.int64),
                                 tf.constant(-1, tf.int64)),
            "target": tf.where(real, tf.gather(targets, example), -1),
            "checksum": tf.where(real, tf.gather(checksums, example),
                                 tf.constant(0.0, tf.float64)),
            # The unit's values at every position of the chosen example.
            "context": tf.where(real[..., None], tf.gather(by_unit, example, batch_dims=1), 0.0),
        }
        if labels is not None:
            fields["label"] = tf.where(real, tf.gather(labels, example), -1)
        for name, value in fields.items():
            out[f"{sign}/{name}"] = value[None]
    return out


def empty_state(channels: int, places: int, k: int, has_labels: bool) -> Dict[str, np.ndarray]:
    """The running state before any batch: every slot empty."""
    state = {}
    for sign, pad in zip(SIGNS, (-np.inf, np.inf)):
        state[f"{sign}/value"] = np.full((channels, k), pad, np.float32)
        for name in ("example", "position"):
            state[f"{sign}/{name}"] = np.full((channels, k), -1, np.int64)
        state[f"{sign}/target"] = np.full((channels, k), -1, np.int32)
        state[f"{sign}/checksum"] = np.zeros((channels, k), np.float64)
        state[f"{sign}/context"] = np.zeros((channels, k, places), np.float32)
        if has_labels:
            state[f"{sign}/label"] = np.full((channels, k), -1, np.int32)
    return state


def merge(state: Dict[str, np.ndarray], candidates: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The K best of ``state`` and ``candidates`` (``(R, C, K[, P])`` each,
    one block per replica), by the module's total order."""
    merged = {}
    for sign, scale in zip(SIGNS, (1.0, -1.0)):
        k = state[f"{sign}/value"].shape[1]
        joined = {}
        for key, value in state.items():
            if key.startswith(sign + "/"):
                extra = candidates[key]
                extra = np.concatenate(list(extra), axis=1)  # (C, R*K[, P])
                joined[key] = np.concatenate([value, extra], axis=1)
        example = joined[f"{sign}/example"]
        # Empty slots (example -1) sort last whatever their padding value.
        empty = example < 0
        value = np.where(empty, -np.inf, scale * joined[f"{sign}/value"].astype(np.float64))
        big = np.iinfo(np.int64).max
        order = np.lexsort((joined[f"{sign}/position"], np.where(empty, big, example), -value),
                           axis=-1)[:, :k]
        for key, value in joined.items():
            index = order if value.ndim == 2 else order[..., None]
            merged[key] = np.take_along_axis(value, index, axis=1)
    return merged


@dataclasses.dataclass(eq=False)
class TopExamples:
    """One layer's strongest positions per unit, over a dataset.

    ``C`` is the layer's number of units, ``K`` the slots kept (``top_k``,
    or fewer when the dataset holds fewer positions), ``P`` positions per
    example (1 for a ``(B, C)`` layer).

    Attributes:
        values: sign -> ``(C, K)`` float32 conductance at the position,
            ``"positive"`` descending, ``"negative"`` ascending. Each list
            holds the K most extreme values whatever their sign: a unit
            that seldom conducts positively ends its positive list with
            zeros or negative values (the unit browser leaves those out).
        examples: sign -> ``(C, K)`` int64 index of the example in the
            dataset (counting from 0 across batches).
        positions: sign -> ``(C, K)`` int64 flat position index;
            ``np.unravel_index(p, position_shape)`` gives e.g. ``(row, col)``.
        targets: sign -> ``(C, K)`` int32 explained class of the example
            (-1 with a callable target).
        labels: sign -> ``(C, K)`` int32 label ids, or None without labels.
        contexts: sign -> ``(C, K, P)`` float32: the unit's conductance at
            every position of that example (the tokens to shade).
        position_shape: the shape the flat positions unravel to, e.g.
            ``(T,)`` or ``(H, W)``; ``()`` for one position.
    """

    values: Dict[str, np.ndarray]
    examples: Dict[str, np.ndarray]
    positions: Dict[str, np.ndarray]
    targets: Dict[str, np.ndarray]
    labels: Optional[Dict[str, np.ndarray]]
    contexts: Dict[str, np.ndarray]
    position_shape: Tuple[int, ...]

    @property
    def n_units(self) -> int:
        return int(self.values["positive"].shape[0])

    def unit(self, unit: int, sign: str = "positive") -> List[Dict[str, object]]:
        """One unit's entries, best first: dicts of example, position
        (unravelled), value, target and label."""
        sign = check("sign", sign)
        unit = check("unit", unit, high=self.n_units - 1)
        rows = []
        for j in range(self.values[sign].shape[1]):
            flat = int(self.positions[sign][unit, j])
            rows.append({
                "example": int(self.examples[sign][unit, j]),
                "position": tuple(int(p) for p in np.unravel_index(flat, self.position_shape))
                if self.position_shape else (),
                "value": float(self.values[sign][unit, j]),
                "target": int(self.targets[sign][unit, j]),
                "label": None if self.labels is None else int(self.labels[sign][unit, j]),
            })
        return rows

    def example_ids(self) -> np.ndarray:
        """Sorted distinct dataset indices of every example kept."""
        ids = np.concatenate([self.examples[s].ravel() for s in SIGNS])
        return np.unique(ids[ids >= 0])


def to_result(state: Dict[str, np.ndarray], filled: int,
              position_shape: Sequence[int]) -> TopExamples:
    """The final ``TopExamples`` of a layer's state, cut to ``filled`` slots
    (fewer than K when the dataset held fewer positions)."""
    def field(name):
        return {s: state[f"{s}/{name}"][:, :filled] for s in SIGNS}

    return TopExamples(
        values=field("value"), examples=field("example"), positions=field("position"),
        targets=field("target"),
        labels=field("label") if "positive/label" in state else None,
        contexts=field("context"), position_shape=tuple(int(d) for d in position_shape))
