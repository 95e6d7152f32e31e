"""Filter ablation through the tail of a split model, many filters per batch.

The paper ablates a filter by setting its bias to -inf, i.e. its post-ReLU
output to 0, and calls F(x) - F(x with the filter ablated) the filter's
ablation score. Here the model is split once at the layer
(``kc.split_model``): the head runs once per example, and the tail runs on
copies of the layer output in which the chosen filters are replaced by the
ablation value, a batch of (example, filter set) rows at a time. The model is
never edited and never re-run from the input per filter.

Two ablation values: ``"zero"`` (the paper) and ``"baseline"``, the filter's
own value at the baseline, y(x'). Conductance measures a filter's change from
y(x') to y(x); zero-ablation its change from 0 to y(x). They agree only where
the baseline's activations are near zero.
"""

from __future__ import annotations

import collections
import dataclasses
import weakref
from typing import Optional, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance.engine import budget_batch_size, check_batch_size
from keras_conductance.graph import layer_graph
from keras_conductance.split import split_model
from keras_conductance.targets import output_activation, resolve_target, strip_softmax

__all__ = ["Ablator", "FlipResult", "ablation_scores", "ablate_until_flip"]

# Default tail rows (example x filter set) per compiled call: as many as keep
# the block of layer outputs under this many floats (64 MB), within limits.
LAYER_BUDGET = 2 ** 24
MIN_BATCH, MAX_BATCH = 16, 4096
VALUES = ("zero", "baseline")
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CACHE_SIZE = 8


@dataclasses.dataclass(eq=False)
class FlipResult:
    """Cumulative ablation until the top prediction changes.

    Attributes:
        n_ablated: ``(B,)`` int, how many filters (a prefix of the ranking)
            were ablated when the prediction first changed; -1 when it did
            not change within ``max_filters``.
        flipped: ``(B,)`` bool, ``n_ablated > 0``.
        original_class: ``(B,)`` int, the prediction at x.
        new_class: ``(B,)`` int, the prediction after the flip (-1 if none).
        max_filters: the limit that was tried.
    """

    n_ablated: np.ndarray
    flipped: np.ndarray
    original_class: np.ndarray
    new_class: np.ndarray
    max_filters: int


def _check_batch_size(batch_size, layer_shape=()) -> int:
    default = budget_batch_size(layer_shape, LAYER_BUDGET, MIN_BATCH, MAX_BATCH)
    return check_batch_size(batch_size, "tail rows", default)


class Ablator:
    """Ablates filters of one layer through the tail of the split model.

    Build it once per (model, layer); its compiled tail step is reused.

    Args:
        model: Functional or Sequential ``keras.Model``, one input and output.
        layer: a layer that is a cut of the network (``kc.split_model``).
        pre_softmax: score the logits of a softmax/sigmoid model.
        start_layer: where baselines live for ``value="baseline"`` (e.g. the
            ``Embedding`` of a text model: the default baseline is then the
            zero embedding, as in ``kc.conductance``).
        channel_axis: axis of the layer output holding the filters.
        batch_size: most tail rows per compiled call. Default: as many as
            keep the block of layer outputs under 64 MB (16 to 4,096).
    """

    def __init__(self, model: keras.Model, layer: str, *, pre_softmax: bool = False,
                 start_layer: Optional[str] = None, channel_axis: int = -1,
                 batch_size: Optional[int] = None):
        if not isinstance(layer, str):
            raise TypeError(f"`layer` must be one layer name (str). Received: layer={layer!r}.")
        explained = strip_softmax(model) if pre_softmax else model
        split = split_model(explained, layer)
        # One input tensor, not a list: Keras warns when a model built on a
        # list of inputs is called with a plain tensor.
        self.head = keras.Model(split.head.inputs[0], split.head.outputs[0])
        self.tail, self.layer = split.tail, layer
        shape = tuple(self.tail.inputs[0].shape)
        rank = len(shape)
        if not -rank <= channel_axis < rank or channel_axis % rank == 0:
            raise ValueError(
                f"`channel_axis` must name a non-batch axis of layer {layer!r}'s "
                f"output {shape}. Received: channel_axis={channel_axis}."
            )
        self.channel_axis = channel_axis % rank
        self.n_filters = int(shape[self.channel_axis])
        self._layer_shape = shape[1:]
        self.batch_size = _check_batch_size(batch_size, self._layer_shape)
        # The prediction of a one-output model is its sign (0.5 after a sigmoid).
        self._threshold = 0.5 if output_activation(explained) == "sigmoid" else 0.0
        self._start = None
        if start_layer is not None:
            graph = layer_graph(explained)
            start, y = graph.resolve([start_layer, layer], "start_layer")
            self._start = keras.Model(start, y, name="kc_ablation_start")
        self._step = self._compile()
        head_in = self.head.inputs[0]
        self._head_fn = tf.function(
            lambda x: tf.cast(self.head(x, training=False), tf.float32),
            input_signature=[tf.TensorSpec((None,) + tuple(head_in.shape[1:]), head_in.dtype)])

    # -- compiled tail ---------------------------------------------------------

    def _compile(self):
        tail, axis, n_f = self.tail, self.channel_axis, self.n_filters
        mask_shape = [-1] + [n_f if a == axis else 1 for a in range(1, len(self._layer_shape) + 1)]

        def step(y, fill, rows, masks):
            y_rows, fill_rows = tf.gather(y, rows), tf.gather(fill, rows)
            m = tf.reshape(masks, mask_shape)
            ablated = y_rows * (1.0 - m) + fill_rows * m
            out = tail(tf.cast(ablated, tail.inputs[0].dtype), training=False)
            out = tf.cast(out, tf.float32)
            return tf.reshape(out, [tf.shape(out)[0], -1])

        spec = tf.TensorSpec((None,) + self._layer_shape, tf.float32)
        return tf.function(step, input_signature=[
            spec, spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None, n_f), tf.float32)])

    def _tail_outputs(self, y, fill, rows, masks) -> np.ndarray:
        """``(N, K)`` outputs for rows ``(example index, filter mask)``."""
        y, fill = tf.constant(y), tf.constant(fill)
        outs = []
        for s in range(0, len(rows), self.batch_size):
            outs.append(self._step(y, fill, tf.constant(rows[s:s + self.batch_size], tf.int32),
                                   tf.constant(masks[s:s + self.batch_size], tf.float32)).numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)

    def _layer(self, x) -> np.ndarray:
        dtype = self.head.inputs[0].dtype
        return np.concatenate([self._head_fn(tf.constant(x[i:i + 256], dtype)).numpy()
                               for i in range(0, len(x), 256)])

    # -- inputs ----------------------------------------------------------------

    def _inputs(self, inputs) -> np.ndarray:
        x = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs)
        spec = tuple(self.head.inputs[0].shape[1:])
        if x.ndim != len(spec) + 1 or any(s is not None and s != d for s, d in zip(spec, x.shape[1:])):
            raise ValueError(
                f"`inputs` must have shape (batch, {', '.join(str(s) for s in spec)}) "
                f"to match the model input. Received shape {x.shape}."
            )
        if x.shape[0] == 0:
            raise ValueError("`inputs` holds no examples (batch size 0).")
        return x

    def _fill(self, value, baselines, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The ablation value per unit, ``(B, *Y)`` float32."""
        if isinstance(value, str):
            if value == "zero":
                return np.zeros_like(y)
            if value != "baseline":
                raise ValueError(
                    f"Unknown ablation `value`: {value!r}. Valid values are "
                    f"{list(VALUES)}, a number, or an array broadcastable to "
                    f"the layer output (B, {', '.join(map(str, self._layer_shape))})."
                )
            at_baseline = self.baseline_layer(baselines, x)
            if at_baseline.shape[0] not in (1, y.shape[0]):
                raise ValueError(
                    f"`baselines` hold {at_baseline.shape[0]} examples; pass one "
                    f"baseline for all or one per example ({y.shape[0]})."
                )
            return np.ascontiguousarray(np.broadcast_to(at_baseline, y.shape))
        try:
            return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.float32), y.shape))
        except ValueError:
            raise ValueError(
                f"An array ablation `value` must broadcast to the layer output "
                f"{y.shape}. Received shape {np.shape(value)}."
            ) from None

    def baseline_layer(self, baselines, inputs) -> np.ndarray:
        """y(x'): the layer output at the baselines, ``(B or 1, *Y)``.

        Args:
            baselines: None (zeros at the model input, or the zero output of
                ``start_layer``), token ids (with ``start_layer``), or an
                array broadcastable to the inputs / the start layer's output.
            inputs: the examples (only their shape is used).
        """
        x = np.asarray(inputs)
        if self._start is not None and (baselines is None or np.asarray(baselines).dtype.kind not in "iu"):
            # Baselines at the start layer's output (the zero embedding).
            model, shape = self._start, tuple(self._start.inputs[0].shape[1:])
        else:
            model, shape = self.head, x.shape[1:]
        b = np.zeros((1,) + shape, np.float32) if baselines is None else np.asarray(baselines)
        if b.dtype.kind not in "iu":
            b = b.astype(np.float32)
        if b.ndim < len(shape) + 1:
            b = b.reshape((1,) * (len(shape) + 1 - b.ndim) + b.shape)
        try:
            b = np.ascontiguousarray(np.broadcast_to(b, (b.shape[0],) + tuple(shape)))
        except ValueError:
            raise ValueError(
                f"`baselines` with shape {np.shape(baselines)} cannot be broadcast "
                f"to {(len(x),) + tuple(shape)}."
            ) from None
        return np.concatenate([np.asarray(model(b[i:i + 256], training=False), np.float32)
                               for i in range(0, len(b), 256)])

    def _filter_sets(self, filters, n: int) -> np.ndarray:
        """``(B, k)`` int filter indices per example."""
        if filters is None:
            return np.broadcast_to(np.arange(self.n_filters), (n, self.n_filters))
        f = np.asarray(filters)
        if f.dtype.kind not in "iu" or f.ndim not in (1, 2) or f.size == 0 or \
                (f.ndim == 2 and f.shape[0] != n):
            raise ValueError(
                "`filters` must be None (all), a 1-D int array of filter "
                f"indices, or a (B={n}, k) int array per example. Received "
                f"shape {f.shape}, dtype {f.dtype}."
            )
        bad = (f < 0) | (f >= self.n_filters)
        if bad.any():
            raise ValueError(
                f"`filters` out of range for layer {self.layer!r} with "
                f"{self.n_filters} filters (valid 0..{self.n_filters - 1}). "
                f"Received: {f[bad][:10].tolist()}."
            )
        return np.broadcast_to(f, (n, f.shape[-1])) if f.ndim == 1 else f

    def _predict(self, outputs: np.ndarray) -> np.ndarray:
        if outputs.shape[1] == 1:
            return (outputs[:, 0] > self._threshold).astype(np.int64)
        return outputs.argmax(axis=1)

    # -- public ----------------------------------------------------------------

    def scores(self, inputs, *, target=None, filters=None,
               value: Union[str, float, np.ndarray] = "zero", baselines=None) -> np.ndarray:
        """``(B, k)``: F(x) - F(x with one filter ablated), per filter.

        Args:
            inputs: ``(B, *input_shape)`` examples.
            target: the explained score, as ``kc.conductance`` (None: each
                example's top predicted class).
            filters: None (all filters), ``(k,)`` ints, or ``(B, k)`` ints.
            value: ``"zero"``, ``"baseline"`` (y at the baselines), a number,
                or an array broadcastable to the layer output.
            baselines: the baselines for ``value="baseline"``.
        """
        x = self._inputs(inputs)
        y = self._layer(x)
        fill = self._fill(value, baselines, x, y)
        sets = self._filter_sets(filters, len(x))
        full = self._tail_outputs(y, fill, np.arange(len(x)), np.zeros((len(x), self.n_filters)))
        target_idx, target_fn = resolve_target(target, full, len(x))

        def select(outputs, rows):
            if target_fn is not None:
                return np.asarray(target_fn(tf.constant(outputs)), np.float32).reshape(-1)
            return outputs[np.arange(len(rows)), target_idx[rows]]

        base = select(full, np.arange(len(x)))
        n, k = sets.shape
        rows = np.repeat(np.arange(n), k)
        masks = np.zeros((n * k, self.n_filters), np.float32)
        masks[np.arange(n * k), sets.reshape(-1)] = 1.0
        ablated = select(self._tail_outputs(y, fill, rows, masks), rows).reshape(n, k)
        return (base[:, None] - ablated).astype(np.float32)

    def predict(self, inputs, masks, *, value="zero", baselines=None) -> np.ndarray:
        """Predicted class with filter sets ablated together.

        Args:
            masks: bool ``(B, C)`` or ``(B, M, C)``: the filters ablated
                together in each of the M variants of an example.

        Returns:
            int ``(B,)`` or ``(B, M)``: argmax of the outputs, or for a
            one-output model whether it is above 0 (0.5 after a sigmoid).
        """
        x = self._inputs(inputs)
        m = np.asarray(masks, bool)
        squeeze = m.ndim == 2
        m = m[:, None] if squeeze else m
        if m.ndim != 3 or m.shape[0] != len(x) or m.shape[2] != self.n_filters:
            raise ValueError(
                f"`masks` must be bool (B={len(x)}, C={self.n_filters}) or "
                f"(B, M, C). Received shape {np.shape(masks)}."
            )
        y = self._layer(x)
        fill = self._fill(value, baselines, x, y)
        rows = np.repeat(np.arange(len(x)), m.shape[1])
        pred = self._predict(self._tail_outputs(y, fill, rows, m.reshape(-1, self.n_filters)))
        pred = pred.reshape(len(x), m.shape[1])
        return pred[:, 0] if squeeze else pred

    def until_flip(self, inputs, ranking, *, max_filters: Optional[int] = None,
                   value="zero", baselines=None, block: int = 8) -> FlipResult:
        """Ablates filters cumulatively in ``ranking`` order until the top
        prediction changes; see ``ablate_until_flip``."""
        x = self._inputs(inputs)
        order = self._filter_sets(ranking, len(x))
        limit = order.shape[1] if max_filters is None else int(max_filters)
        if not 1 <= limit <= order.shape[1]:
            raise ValueError(
                f"`max_filters` must be in 1..{order.shape[1]} (the ranking's "
                f"length). Received: max_filters={max_filters!r}."
            )
        y = self._layer(x)
        fill = self._fill(value, baselines, x, y)
        n = len(x)
        original = self._predict(self._tail_outputs(y, fill, np.arange(n), np.zeros((n, self.n_filters))))
        n_ablated, new_class = np.full(n, -1), np.full(n, -1)
        active = np.arange(n)
        for start in range(0, limit, block):
            ks = np.arange(start + 1, min(start + block, limit) + 1)
            if active.size == 0:
                break
            rows = np.repeat(active, ks.size)
            prefix = np.arange(order.shape[1])[None, :] < np.tile(ks, active.size)[:, None]
            masks = np.zeros((rows.size, self.n_filters), np.float32)
            r, c = np.nonzero(prefix)
            masks[r, order[rows[r], c]] = 1.0
            pred = self._predict(self._tail_outputs(y, fill, rows, masks)).reshape(active.size, ks.size)
            changed = pred != original[active, None]
            hit = changed.any(axis=1)
            first = changed.argmax(axis=1)
            done = active[hit]
            n_ablated[done] = ks[first[hit]]
            new_class[done] = pred[hit, first[hit]]
            active = active[~hit]
        return FlipResult(n_ablated, n_ablated > 0, original, new_class, limit)


def _cached(model, layer, pre_softmax, start_layer, channel_axis, batch_size) -> Ablator:
    key = (layer, bool(pre_softmax), start_layer, channel_axis)
    try:
        per_model = _CACHE.setdefault(model, collections.OrderedDict())
    except TypeError:
        per_model = collections.OrderedDict()
    ablator = per_model.get(key)
    if ablator is None:
        ablator = Ablator(model, layer, pre_softmax=pre_softmax, start_layer=start_layer,
                          channel_axis=channel_axis)
        per_model[key] = ablator
        while len(per_model) > _CACHE_SIZE:
            per_model.popitem(last=False)
    else:
        per_model.move_to_end(key)
    ablator.batch_size = _check_batch_size(batch_size, ablator._layer_shape)
    return ablator


def ablation_scores(
    model: keras.Model,
    inputs,
    layer: str,
    *,
    target=None,
    filters=None,
    value: Union[str, float, np.ndarray] = "zero",
    baselines=None,
    start_layer: Optional[str] = None,
    pre_softmax: bool = False,
    channel_axis: int = -1,
    batch_size: Optional[int] = None,
) -> np.ndarray:
    """The drop F(x) - F(x with the filter ablated), for each filter.

    Args:
        model: Functional or Sequential ``keras.Model``.
        inputs: ``(B, *input_shape)`` examples.
        layer: a layer that cuts the network (e.g. a post-ReLU activation).
        target: the explained score as in ``kc.conductance`` (None: each
            example's top predicted class).
        filters: None (all), ``(k,)`` ints shared by all examples, or
            ``(B, k)`` ints per example (e.g. each one's top-k by conductance).
        value: ``"zero"`` (the paper: bias -inf, post-ReLU output 0),
            ``"baseline"`` (the filter's value at the baseline, y(x')), a
            number, or an array broadcastable to the layer output.
        baselines: baselines for ``value="baseline"`` (None: zeros, or the
            zero embedding with ``start_layer``).
        start_layer: the layer whose output the baselines live at (text).
        pre_softmax: score the logits of a softmax/sigmoid model.
        channel_axis: the layer output's filter axis.
        batch_size: most tail rows (example x filter) per compiled call
            (default: a 64 MB block of layer outputs, 16 to 4,096 rows).

    Returns:
        float32 ``(B, n_filters)`` (``(B, k)`` when ``filters`` is given).
    """
    ablator = _cached(model, layer, pre_softmax, start_layer, channel_axis, batch_size)
    return ablator.scores(inputs, target=target, filters=filters, value=value, baselines=baselines)


def ablate_until_flip(
    model: keras.Model,
    inputs,
    layer: str,
    ranking,
    *,
    max_filters: Optional[int] = None,
    value: Union[str, float, np.ndarray] = "zero",
    baselines=None,
    start_layer: Optional[str] = None,
    pre_softmax: bool = False,
    channel_axis: int = -1,
    batch_size: Optional[int] = None,
) -> FlipResult:
    """Ablates filters cumulatively in ``ranking`` order until the top
    prediction of each example changes.

    Prefixes of the ranking (1, 2, ... filters ablated together) are tried
    a block at a time for all examples that have not flipped yet.

    Args:
        model, inputs, layer: as ``ablation_scores``.
        ranking: ``(R,)`` or ``(B, R)`` int filter order, most important
            first (e.g. ``np.argsort(-attr.per_filter(layer), axis=1)``).
        max_filters: try at most this many (default: the ranking's length).
        value, baselines, start_layer, pre_softmax, channel_axis, batch_size:
            as ``ablation_scores``.

    Returns:
        ``FlipResult``: per example how many filters were needed (-1: none
        within ``max_filters``), the original and the new prediction.
    """
    ablator = _cached(model, layer, pre_softmax, start_layer, channel_axis, batch_size)
    return ablator.until_flip(inputs, ranking, max_filters=max_filters, value=value,
                              baselines=baselines)
