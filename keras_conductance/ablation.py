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

import dataclasses
import functools
import warnings
from typing import Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance.adapter import ModelAdapter, options_key
from keras_conductance.cache import cached, compiled
from keras_conductance.arguments import check, check_axis, check_indices, message
from keras_conductance.engine import budget_batch_size, select_score
from keras_conductance.targets import resolve_target
from keras_conductance.taps import trace_once
from keras_conductance.token_targets import TokenTarget

__all__ = ["Ablator", "FlipResult", "ablation_scores", "ablate_until_flip"]

# Default tail rows (example x filter set) per compiled call: as many as keep
# the block of layer outputs under this many floats (64 MB), within limits.
LAYER_BUDGET = 2 ** 24
MIN_BATCH, MAX_BATCH = 16, 4096
VALUES = ("zero", "baseline")


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


def _batch_size(batch_size: Optional[int], layer_shape=()) -> int:
    """``batch_size`` (checked), or the rows of a ``LAYER_BUDGET`` block."""
    return check("batch_size", batch_size) or budget_batch_size(
        layer_shape, LAYER_BUDGET, MIN_BATCH, MAX_BATCH)


class Ablator:
    """Ablates filters of one layer through the tail of the model.

    Build it once per (model, layer); its compiled tail step is reused. The
    tail maps the layer output (and the model inputs that bypass it, such as
    a padding mask) to the explained output.

    Args:
        model: Functional or Sequential ``keras.Model`` (any inputs/outputs).
        layer: a layer that cuts every path from the interpolated inputs.
        output: the explained output (name or index) of a multi-output model.
        start_layer: where baselines live for ``value="baseline"`` (e.g. the
            ``Embedding`` of a text model: the default baseline is then the
            zero embedding, as in ``kc.conductance``).
        interpolate: the inputs that baselines replace (as ``kc.conductance``).
        pre_softmax: score the logits of a softmax/sigmoid output.
        channel_axis: axis of the layer output holding the filters
            (default: -1, or -2 for ``"block:heads"``).
    """

    def __init__(self, model: keras.Model, layer: str, *, output=None,
                 start_layer: Optional[str] = None, interpolate=None,
                 pre_softmax: bool = False, channel_axis: Optional[int] = None):
        if not isinstance(layer, str):
            raise TypeError(f"`layer` must be one layer name (str). Received: layer={layer!r}.")
        self.adapter = adapter = ModelAdapter(
            model, [layer], start_layer=start_layer, output=output, interpolate=interpolate,
            pre_softmax=pre_softmax, argument="layer", require_path=False)
        inputs = adapter.graph.inputs
        self.layer = layer
        if len(adapter.taps):
            # A unit inside a layer: no split. The whole model runs per row
            # with the tapped tensor replaced by its ablated value.
            self.head = self.tail = None
            self._full = adapter.sub_model(inputs, adapter.explained, "kc_ablation_full")
            shape = self._tap_shape()
        else:
            adapter.check_cut([layer])
            (y,) = adapter.tensors
            self.head = adapter.sub_model(inputs, y, "kc_ablation_head")
            # The model inputs ride along: paths from held-constant inputs (a
            # padding mask) reach the output without passing the layer.
            self.tail = adapter.sub_model([y] + inputs, adapter.explained, "kc_ablation_tail")
            shape = tuple(y.shape)
        if channel_axis is None:  # the unit's own: -2 (the head axis) for "block:heads"
            channel_axis = adapter.channel_axes[layer]
        self.channel_axis = check_axis("channel_axis", channel_axis, len(shape), layer, shape[1:])
        self.n_filters = int(shape[self.channel_axis])
        self._layer_shape = shape[1:]
        # The prediction of a one-output model is its sign (0.5 after a sigmoid).
        self._threshold = 0.5 if adapter.squash == "sigmoid" else 0.0
        self._steps = {}

    # -- compiled pieces ---------------------------------------------------------

    def _tap_shape(self) -> tuple:
        """The tapped tensor's shape, from a trace of the model."""
        def call(inputs):
            with self.adapter.taps.recording() as record:
                out = self._full(inputs, training=False)
            return record.values(), out

        specs = [tf.TensorSpec(t.shape, t.dtype) for t in self._full.inputs]
        return tuple(trace_once(call, [specs])[0].shape)

    def _tail_call(self, ablated, inputs):
        """The explained output with the unit's value replaced by ``ablated``."""
        if self.tail is not None:
            dtypes = [t.dtype for t in self.tail.inputs]
            ins = [tf.cast(x, d) for x, d in zip(inputs, dtypes[1:])]
            return self.tail([tf.cast(ablated, dtypes[0])] + ins, training=False)
        ins = [tf.cast(x, t.dtype) for x, t in zip(inputs, self._full.inputs)]
        with self.adapter.taps.recording(replace=[ablated]):
            return self._full(ins, training=False)

    def _step(self, layer_shape):
        """The compiled tail on rows ``(example, filter mask)``."""
        key = tuple(layer_shape)
        if key in self._steps:
            return self._steps[key]
        axis, n_f = self.channel_axis, self.n_filters
        mask_shape = [-1] + [n_f if a == axis else 1 for a in range(1, len(key) + 1)]

        def step(y, fill, inputs, rows, masks):
            y_rows, fill_rows = tf.gather(y, rows), tf.gather(fill, rows)
            m = tf.reshape(masks, mask_shape)
            ablated = y_rows * (1.0 - m) + fill_rows * m
            ins = [tf.gather(x, rows) for x in inputs]
            out = tf.cast(self._tail_call(ablated, ins), tf.float32)
            return tf.reshape(out, [tf.shape(out)[0], -1])

        self._steps[key] = fn = compiled(step, reduce_retracing=True)
        return fn

    def _tail_outputs(self, y, fill, arrays, rows, masks, batch_size) -> np.ndarray:
        """``(N, K)`` outputs for rows ``(example index, filter mask)``."""
        step = self._step(y.shape[1:])
        y, fill = tf.constant(y), tf.constant(fill)
        inputs = [tf.constant(a) for a in arrays]
        outs = []
        for s in range(0, len(rows), batch_size):
            outs.append(step(y, fill, inputs, tf.constant(rows[s:s + batch_size], tf.int32),
                             tf.constant(masks[s:s + batch_size], tf.float32)).numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)

    def _layer(self, arrays, batch_size: int) -> np.ndarray:
        """y(x): the unit's value at the inputs, ``(B, *Y)`` float32, in calls
        of ``batch_size`` examples."""
        n = arrays[0].shape[0]
        return np.concatenate([self._value([a[i:i + batch_size] for a in arrays])
                               for i in range(0, n, batch_size)])

    def _value(self, inputs) -> np.ndarray:
        if self.head is not None:
            return np.asarray(self.head(inputs, training=False), np.float32)
        with self.adapter.taps.recording() as record:
            self._full(inputs, training=False)
        return np.asarray(record.values()[0], np.float32)

    # -- inputs ----------------------------------------------------------------

    def _fill(self, value, baselines, inputs, y: np.ndarray, batch_size: int) -> np.ndarray:
        """The ablation value per unit, ``(B, *Y)`` float32."""
        valid = (f"one of {list(VALUES)}, a number, or an array broadcastable to the layer "
                 f"output (B, {', '.join(map(str, self._layer_shape))})")
        if isinstance(value, str) and value not in VALUES:
            raise ValueError(message("value", valid, value))
        if not isinstance(value, str) and np.asarray(value).dtype.kind not in "iufb":
            raise TypeError(message("value", valid, value))
        if baselines is not None and not (isinstance(value, str) and value == "baseline"):
            raise ValueError(
                "`baselines` are used only with value='baseline'; with "
                f"value={value!r} they would be ignored. Pass one or the other."
            )
        if isinstance(value, str):
            if value == "zero":
                return np.zeros_like(y)
            fill = np.ascontiguousarray(
                np.broadcast_to(self.baseline_layer(baselines, inputs, batch_size), y.shape))
            same = np.all((fill == y).reshape(len(y), -1), axis=1)
            if same.any():
                warnings.warn(
                    f"The layer's output at the baseline equals its output at the input "
                    f"for {int(same.sum())} of {len(y)} examples (F(x) = F(x'), e.g. "
                    "baselines equal to the inputs): ablating to it changes nothing.",
                    stacklevel=4,
                )
            return fill
        try:
            return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.float32), y.shape))
        except ValueError:
            raise ValueError(
                f"An array ablation `value` must broadcast to the layer output "
                f"{y.shape}. Received shape {np.shape(value)}."
            ) from None

    def baseline_layer(self, baselines, inputs, batch_size: Optional[int] = None) -> np.ndarray:
        """y(x'): the layer output at the baselines, ``(B, *Y)``.

        Args:
            baselines: as ``kc.conductance``: None (zeros, or the zero output
                of ``start_layer``), token ids (with ``start_layer``), an
                array broadcastable to the interpolated input, or the
                inputs' structure.
            inputs: the examples (held-constant inputs come from them).
            batch_size: most examples per call (default as ``ablation_scores``).
        """
        batch_size = _batch_size(batch_size, self._layer_shape)
        if not self.adapter.path_tensors:
            raise ValueError(
                "value='baseline' needs a path start: model inputs here are all "
                "integer ids. Pass `start_layer=` (e.g. the Embedding) so the "
                "baseline lives at its output."
            )
        prep = self.adapter.prepare(inputs, baselines)
        probe = self.adapter.probe
        out = []
        for i in range(0, prep.n, batch_size):
            part = prep.take(np.arange(i, min(i + batch_size, prep.n)))
            with self.adapter.taps.recording() as record:
                outs = probe(part.baselines + part.consts, training=False)
            value = record.values()[0] if len(self.adapter.taps) else outs[0]
            out.append(np.asarray(value, np.float32))
        return np.concatenate(out)

    def _predict(self, outputs: np.ndarray) -> np.ndarray:
        if outputs.shape[1] == 1:
            return (outputs[:, 0] > self._threshold).astype(np.int64)
        return outputs.argmax(axis=1)

    # -- public ----------------------------------------------------------------

    def scores(self, inputs, *, target=None, filters=None,
               value: Union[str, float, np.ndarray] = "zero", baselines=None,
               batch_size: Optional[int] = None, together: bool = False) -> np.ndarray:
        """``(B, k)``: F(x) - F(x with one filter ablated), per filter; with
        ``together``, ``(B,)``: the drop with all k filters ablated at once.

        Args:
            inputs: ``(B, *input_shape)`` examples.
            target: the explained score, as ``kc.conductance`` (None: each
                example's top predicted class; a language-model target such
                as ``kc.logit_difference(a, b)``).
            filters: None (all filters), ``(k,)`` ints, or ``(B, k)`` ints.
            value: ``"zero"``, ``"baseline"`` (y at the baselines), a number,
                or an array broadcastable to the layer output.
            baselines: the baselines for ``value="baseline"``.
            batch_size: most tail rows per compiled call.
            together: ablate each row's filters together (one drop each).
        """
        together = check("together", together)
        arrays = self.adapter.check_inputs(inputs)
        n = arrays[0].shape[0]
        batch_size = _batch_size(batch_size, self._layer_shape)
        y = self._layer(arrays, batch_size)
        fill = self._fill(value, baselines, inputs, y, batch_size)
        sets = check_indices("filters", filters, n, self.n_filters, self.layer)
        tail = functools.partial(self._tail_outputs, y, fill, arrays, batch_size=batch_size)
        full = tail(np.arange(n), np.zeros((n, self.n_filters)))
        if isinstance(target, TokenTarget):
            target_idx, target_fn = self.adapter.token_pairs(target, arrays), target.scorer
        else:
            lm = self.adapter.sequence_logits  # the tail's rows are flat: (N, T * V)
            shown = full.reshape(n, -1, int(self.adapter.explained.shape[-1])) if lm else full
            target_idx, target_fn = resolve_target(target, shown, n, lm)

        def select(outputs, rows):
            if isinstance(target, TokenTarget):  # the tail's rows are flat: (N, T * V)
                vocab = int(self.adapter.explained.shape[-1])
                outputs = outputs.reshape(len(rows), -1, vocab)
            if target_fn is not None:  # the explainer's check of the callable's shape
                return select_score(tf.constant(outputs), tf.constant(target_idx[rows]),
                                    target_fn).numpy()
            return outputs[np.arange(len(rows)), target_idx[rows]]

        base = select(full, np.arange(n))
        if together:  # each row's k filters ablated at once: one drop per example
            masks = np.zeros((n, self.n_filters), np.float32)
            masks[np.repeat(np.arange(n), sets.shape[1]), sets.reshape(-1)] = 1.0
            return (base - select(tail(np.arange(n), masks), np.arange(n))).astype(np.float32)
        k = sets.shape[1]
        rows = np.repeat(np.arange(n), k)
        masks = np.zeros((n * k, self.n_filters), np.float32)
        masks[np.arange(n * k), sets.reshape(-1)] = 1.0
        ablated = select(tail(rows, masks), rows).reshape(n, k)
        return (base[:, None] - ablated).astype(np.float32)

    def predict(self, inputs, masks, *, value="zero", baselines=None,
                batch_size: Optional[int] = None) -> np.ndarray:
        """Predicted class with filter sets ablated together.

        Args:
            masks: bool ``(B, C)`` or ``(B, M, C)``: the filters ablated
                together in each of the M variants of an example.

        Returns:
            int ``(B,)`` or ``(B, M)``: argmax of the outputs, or for a
            one-output model whether it is above 0 (0.5 after a sigmoid).
        """
        arrays = self.adapter.check_inputs(inputs)
        n = arrays[0].shape[0]
        m = np.asarray(masks, bool)
        squeeze = m.ndim == 2
        m = m[:, None] if squeeze else m
        if m.ndim != 3 or m.shape[0] != n or m.shape[2] != self.n_filters:
            raise ValueError(
                f"`masks` must be bool (B={n}, C={self.n_filters}) or "
                f"(B, M, C). Received shape {np.shape(masks)}."
            )
        batch_size = _batch_size(batch_size, self._layer_shape)
        y = self._layer(arrays, batch_size)
        fill = self._fill(value, baselines, inputs, y, batch_size)
        rows = np.repeat(np.arange(n), m.shape[1])
        pred = self._predict(self._tail_outputs(y, fill, arrays, rows,
                                                m.reshape(-1, self.n_filters), batch_size))
        pred = pred.reshape(n, m.shape[1])
        return pred[:, 0] if squeeze else pred

    def until_flip(self, inputs, ranking, *, max_filters: Optional[int] = None,
                   value="zero", baselines=None, block: int = 8,
                   batch_size: Optional[int] = None) -> FlipResult:
        """Ablates filters cumulatively in ``ranking`` order until the top
        prediction changes; see ``ablate_until_flip``."""
        arrays = self.adapter.check_inputs(inputs)
        n = arrays[0].shape[0]
        order = check_indices("ranking", ranking, n, self.n_filters, self.layer)
        if any(len(set(row)) != len(row) for row in order.tolist()):
            raise ValueError(
                "`ranking` names a filter twice in one row; each filter can be "
                "ablated once. Pass a ranking of distinct filter indices."
            )
        # At most the ranking's length: no more filters can be ablated.
        limit = check("max_filters", max_filters, high=order.shape[1]) or order.shape[1]
        block = check("block", block)
        batch_size = _batch_size(batch_size, self._layer_shape)
        y = self._layer(arrays, batch_size)
        fill = self._fill(value, baselines, inputs, y, batch_size)
        tail = functools.partial(self._tail_outputs, y, fill, arrays, batch_size=batch_size)
        original = self._predict(tail(np.arange(n), np.zeros((n, self.n_filters))))
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
            pred = self._predict(tail(rows, masks)).reshape(active.size, ks.size)
            changed = pred != original[active, None]
            hit = changed.any(axis=1)
            first = changed.argmax(axis=1)
            done = active[hit]
            n_ablated[done] = ks[first[hit]]
            new_class[done] = pred[hit, first[hit]]
            active = active[~hit]
        return FlipResult(n_ablated, n_ablated > 0, original, new_class, limit)


def _cached(model, layer, output, start_layer, interpolate, pre_softmax, channel_axis) -> Ablator:
    # Checked before they become a cache key: "yes" must not find True's ablator.
    key = options_key(layer, output, start_layer, interpolate, check("pre_softmax", pre_softmax),
                      channel_axis)
    return cached(model, "ablator", key, lambda: Ablator(
        model, layer, output=output, start_layer=start_layer, interpolate=interpolate,
        pre_softmax=pre_softmax, channel_axis=channel_axis))


def ablation_scores(
    model: keras.Model,
    inputs,
    layer: str,
    *,
    target=None,
    baselines=None,
    output: Union[None, int, str] = None,
    start_layer: Optional[str] = None,
    interpolate: Optional[Sequence[Union[str, int]]] = None,
    batch_size: Optional[int] = None,
    pre_softmax: bool = False,
    filters=None,
    value: Union[str, float, np.ndarray] = "zero",
    channel_axis: Optional[int] = None,
    together: bool = False,
) -> np.ndarray:
    """The drop F(x) - F(x with the filter ablated), for each filter.

    Args:
        model: Functional or Sequential ``keras.Model`` (any inputs/outputs).
        inputs: examples in any structure ``kc.conductance`` takes.
        layer: a layer that cuts the network (e.g. a post-ReLU activation).
        target: the explained score as in ``kc.conductance`` (None: each
            example's top predicted class).
        baselines: baselines for ``value="baseline"`` (None: zeros, or the
            zero embedding with ``start_layer``); an error with other values.
        output: the explained output (name or index) of a multi-output model.
        start_layer: the layer whose output the baselines live at (text).
        interpolate: the inputs the baselines replace (as ``kc.conductance``).
        batch_size: most tail rows (example x filter) per compiled call
            (default: a 64 MB block of layer outputs, 16 to 4,096 rows).
        pre_softmax: score the logits of a softmax/sigmoid output.
        filters: None (all), ``(k,)`` ints shared by all examples, or
            ``(B, k)`` ints per example (e.g. each one's top-k by conductance).
        value: ``"zero"`` (the paper: bias -inf, post-ReLU output 0),
            ``"baseline"`` (the filter's value at the baseline, y(x')), a
            number, or an array broadcastable to the layer output.
        channel_axis: the layer output's filter axis (default: -1, or -2,
            the head axis, for ``"block:heads"``).
        together: ablate the ``filters`` of each example all at once and
            return one drop per example (e.g. the top-k neurons).

    Returns:
        float32 ``(B, n_filters)`` (``(B, k)`` when ``filters`` is given;
        ``(B,)`` with ``together``).
    """
    ablator = _cached(model, layer, output, start_layer, interpolate, pre_softmax, channel_axis)
    return ablator.scores(inputs, target=target, filters=filters, value=value,
                          baselines=baselines, batch_size=batch_size, together=together)


def ablate_until_flip(
    model: keras.Model,
    inputs,
    layer: str,
    ranking,
    *,
    baselines=None,
    output: Union[None, int, str] = None,
    start_layer: Optional[str] = None,
    interpolate: Optional[Sequence[Union[str, int]]] = None,
    batch_size: Optional[int] = None,
    pre_softmax: bool = False,
    max_filters: Optional[int] = None,
    value: Union[str, float, np.ndarray] = "zero",
    channel_axis: Optional[int] = None,
) -> FlipResult:
    """Ablates filters cumulatively in ``ranking`` order until the top
    prediction of each example changes.

    Prefixes of the ranking (1, 2, ... filters ablated together) are tried
    a block at a time for all examples that have not flipped yet.

    Args:
        model, inputs, layer: as ``ablation_scores``.
        ranking: ``(R,)`` or ``(B, R)`` int filter order, most important
            first (e.g. ``np.argsort(-attr.per_filter(layer), axis=1)``);
            a filter may appear once per row.
        baselines, output, start_layer, interpolate: as ``ablation_scores``.
        batch_size, pre_softmax, value, channel_axis: as ``ablation_scores``.
        max_filters: try at most this many (default: the ranking's length).

    Returns:
        ``FlipResult``: per example how many filters were needed (-1: none
        within ``max_filters``), the original and the new prediction.
    """
    ablator = _cached(model, layer, output, start_layer, interpolate, pre_softmax, channel_axis)
    return ablator.until_flip(inputs, ranking, max_filters=max_filters, value=value,
                              baselines=baselines, batch_size=batch_size)
