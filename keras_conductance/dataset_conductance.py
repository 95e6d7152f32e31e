"""Per-filter conductance aggregated over a whole ``tf.data.Dataset``.

``conductance_over_dataset`` streams batches through one compiled step that
integrates along the path *inside the graph* (a ``tf.while_loop`` over chunks
of path points, each chunk the engine's own compiled step). The step runs per
replica under ``strategy.run`` and returns only running sums (per filter, per
label, completeness error), reduced across replicas with
``strategy.reduce(SUM)``; the host adds them up in float64. Nothing per
example leaves the devices, so the same code serves one CPU, several GPUs,
several workers or a TPU.
"""

from __future__ import annotations

import collections
import dataclasses
import time
import weakref
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from keras_conductance import quadrature
from keras_conductance.engine import chunked_rule, points_per_chunk
from keras_conductance.explainer import CONVERGENCE_WARNING_THRESHOLD, Conductance
from keras_conductance.functional import _explainer
from keras_conductance.targets import resolve_target

__all__ = ["DatasetConductance", "conductance_over_dataset"]

# verbose="auto" shows a progress bar once a run has taken this long.
PROGRESS_AFTER_S = 3.0
# Compiled dataset steps kept per explainer (weakly keyed, LRU beyond this).
STEP_CACHE_SIZE = 4
_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


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
        is_cut: layer -> whether the layer alone cuts the network.
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
    is_cut: Dict[str, bool]

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
        return np.argsort(-scores, kind="stable")[:k]

    def _layer(self, layer: str) -> str:
        if layer not in self.mean:
            raise KeyError(
                f"No such layer in this result: {layer!r}. Valid layers: {self.layers}."
            )
        return layer


# -- input checks ------------------------------------------------------------


def _split_spec(spec):
    """``(input_spec, label_spec or None)`` of a dataset element."""
    if isinstance(spec, dict):
        raise TypeError(
            "`dataset` yields dicts; conductance_over_dataset needs elements "
            "`inputs` or `(inputs, labels)` for a single-input model. Map the "
            "dataset, e.g. `ds.map(lambda d: (d['image'], d['label']))`."
        )
    if not isinstance(spec, (tuple, list)):
        return spec, None
    if not 1 <= len(spec) <= 3:
        raise ValueError(
            "`dataset` elements must be `inputs`, `(inputs,)`, `(inputs, labels)` "
            f"or `(inputs, labels, sample_weight)`. Received {len(spec)} components."
        )
    if len(spec) == 3:
        warnings.warn(
            "conductance_over_dataset ignores sample weights (the third "
            "component of the dataset's elements): means are unweighted.",
            stacklevel=3,
        )
    return spec[0], (spec[1] if len(spec) > 1 else None)


def _check_batched(x_spec, explainer: Conductance):
    if not isinstance(x_spec, tf.TensorSpec):
        raise TypeError(
            f"The dataset's inputs must be a single tensor. Received element "
            f"spec {x_spec!r}."
        )
    want = len(explainer._input_spec) + 1
    if x_spec.shape.rank is not None and x_spec.shape.rank != want:
        raise ValueError(
            f"The dataset's inputs have shape {tuple(x_spec.shape)}, but the "
            f"model takes batches of shape (batch, "
            f"{', '.join(str(s) for s in explainer._input_spec)}). Batch the "
            "dataset first, e.g. `dataset.batch(32)`."
        )


def _label_slots(label_spec, target, n_outputs: int, num_labels: Optional[int]) -> int:
    """How many label ids the per-label sums have room for."""
    if num_labels is not None:
        integer = isinstance(num_labels, (int, np.integer)) and not isinstance(num_labels, bool)
        if not integer or num_labels < 1:
            raise ValueError(
                f"`num_labels` must be a positive int. Received: num_labels={num_labels!r}."
            )
        return int(num_labels)
    if _is_one_hot(label_spec):
        return int(label_spec.shape[-1])
    if isinstance(target, str):  # "label": ids are output indices
        return n_outputs
    # A single sigmoid output still has two labels.
    return max(n_outputs, 2)


def _is_one_hot(label_spec) -> bool:
    shape = label_spec.shape
    return shape.rank is not None and shape.rank >= 2 and (shape[-1] or 0) > 1


def _label_ids(labels: tf.Tensor, one_hot: bool) -> tf.Tensor:
    """``(b,)`` int32 label ids from ids, ``(b, 1)`` ids, or one-hot rows."""
    if one_hot:
        return tf.argmax(tf.reshape(labels, [tf.shape(labels)[0], -1]), axis=1,
                         output_type=tf.int32)
    labels = tf.reshape(labels, [-1])
    if labels.dtype.is_floating:
        labels = tf.round(labels)  # binary 0./1. labels
    return tf.cast(labels, tf.int32)


def _check_target(target, n_outputs: int):
    if isinstance(target, str):
        if target != "label":
            raise ValueError(
                f"No such target mode: target={target!r}. Valid: None (top "
                "predicted class), 'label', an int class index, or a callable."
            )
        return
    if target is not None and not callable(target) and np.ndim(target) != 0:
        raise ValueError(
            "`target` must be None, 'label', one int class index or a callable "
            f"for a whole dataset (per-example arrays do not stream). Received "
            f"an array of shape {np.shape(target)}."
        )
    # Reuses the explainer's checks (type, range); the outputs are a stand-in.
    resolve_target(target, np.zeros((1, n_outputs), np.float32), 1)


def _describe_target(target) -> str:
    if target is None:
        return "top"
    if isinstance(target, str):
        return target
    if callable(target):
        return "callable"
    return f"class {int(target)}"


# -- the per-replica step ----------------------------------------------------


class _DatasetStep:
    """Compiled per-replica step: one batch in, running sums out.

    Args:
        explainer: supplies the probe engine, its compiled chunk step, the
            start head and the integration settings.
        rule: the integration rule.
        rows_per_example: path points per chunk ``m`` (rows per call are
            ``per-replica batch x m``).
        baseline: ``(1, *S)`` float32 start of the path.
        target: None, "label", an int or a callable.
        label_slots: K, room for label ids 0..K-1 (0: no labels).
        one_hot: whether labels come one-hot.
        channel_axis: filter axis of each layer output.
        strategy: the ``tf.distribute`` strategy.
    """

    def __init__(self, explainer, rule, rows_per_example, baseline, target,
                 label_slots, one_hot, channel_axis, strategy):
        engine = explainer._engine
        self.head = explainer._head
        self.input_shape = tuple(baseline.shape[1:])
        self.baseline = tf.constant(baseline)
        self.target = target
        self.target_fn = target if callable(target) else None
        self.label_slots = label_slots
        self.one_hot = one_hot
        self.channel_axis = channel_axis
        self.strategy = strategy
        self.layer_shapes = [
            tuple(s[1:]) for s in
            engine.probe.compute_output_shape((1,) + self.input_shape)[:-1]
        ]
        _check_channel_axis(channel_axis, self.layer_shapes)
        self._chunks = [tf.constant(a) for a in chunked_rule(rule, rows_per_example)]
        self._step = engine.step_function(self.input_shape, np.float32, self.target_fn,
                                          rule.derivative)
        self._forward = engine.forward_function(self.input_shape)
        self._compiled = {}

    def compiled(self, element_spec) -> Callable:
        """The step for a distributed dataset's (inputs, labels) spec.

        The signature leaves the batch size unknown, so the last, partial
        batch and later datasets of the same spec reuse one trace.
        """
        key = repr(element_spec)
        fn = self._compiled.get(key)
        if fn is None:
            fn = tf.function(self._distributed, input_signature=[element_spec])
            self._compiled[key] = fn
        return fn

    @property
    def tracing_count(self) -> int:
        return sum(f.experimental_get_tracing_count() for f in self._compiled.values())

    def _integrate(self, x, xb, target):
        """Path integral for a per-replica batch: conductance and F ends."""
        alphas, left, right = self._chunks
        batch = tf.shape(x)[0]
        zeros = [tf.zeros(tf.concat([[batch], s], 0), tf.float32) for s in self.layer_shapes]
        # Loop variables: chunk, previous alpha, carried y and g (last point
        # of the previous chunk), the two accumulators, F(x') and F(x).
        state = (tf.constant(0), tf.constant(0.0), zeros, zeros, zeros, zeros,
                 tf.zeros([batch]), tf.zeros([batch]))

        def body(c, prev, carry_y, carry_g, acc_c, acc_i, f0, f1):
            acc_c, acc_i, carry_y, carry_g, scores = self._step(
                x, xb, alphas[c], left[c], right[c], prev, target,
                carry_y, carry_g, acc_c, acc_i,
            )
            # Every rule starts at alpha = 0; padding repeats alpha = 1, so
            # the last column of the last chunk is F at the input.
            f0 = tf.where(tf.equal(c, 0), scores[:, 0], f0)
            return c + 1, alphas[c][-1], carry_y, carry_g, acc_c, acc_i, f0, scores[:, -1]

        out = tf.while_loop(lambda c, *_: c < alphas.shape[0], body, state)
        return out[4], out[6], out[7]

    def _per_filter(self, values: tf.Tensor) -> tf.Tensor:
        """``(b, *Y) -> (b, C)``: sum over every axis but batch and channel."""
        rank = values.shape.rank
        if rank == 2:
            return values
        channel = self.channel_axis % rank
        return tf.reduce_sum(values, axis=[a for a in range(1, rank) if a != channel])

    def _targets(self, x, label_ids):
        batch = tf.shape(x)[0]
        if self.target is None:
            outputs = self._forward(x)
            flat = tf.reshape(outputs, [batch, -1])
            return tf.argmax(flat, axis=1, output_type=tf.int32)
        if isinstance(self.target, str):
            return label_ids
        if self.target_fn is not None:
            return tf.fill([batch], -1)
        return tf.fill([batch], tf.constant(int(self.target), tf.int32))

    def _replica_sums(self, inputs, labels=None):
        # A replica can get an empty share of the last batch. Skip it: on
        # CPU, TensorFlow's oneDNN fused Conv2D+ReLU fails on empty batches
        # ("input depth must be evenly divisible by filter depth").
        return tf.cond(
            tf.shape(inputs)[0] > 0,
            lambda: self._sums(inputs, labels),
            self._zero_sums,
        )

    def _zero_sums(self):
        sums = {name: tf.constant(0.0) for name in ("count", "output_diff", "abs_output_diff")}
        for k, shape in enumerate(self.layer_shapes):
            filters = shape[(self.channel_axis % (len(shape) + 1)) - 1]  # shape has no batch axis
            sums[f"filters_{k}"] = tf.zeros([filters])
            sums[f"abs_delta_{k}"] = tf.constant(0.0)
            if self.label_slots:
                sums[f"label_filters_{k}"] = tf.zeros([self.label_slots, filters])
        if self.label_slots:
            sums["label_count"] = tf.zeros([self.label_slots])
            sums["outside"] = tf.constant(0.0)
        return sums

    def _sums(self, inputs, labels=None):
        x = inputs if self.head is None else self.head(inputs, training=False)
        x = tf.cast(x, tf.float32)
        xb = tf.broadcast_to(self.baseline, tf.shape(x))
        label_ids = None if labels is None else _label_ids(labels, self.one_hot)
        if label_ids is not None:
            # Out-of-range ids would fall out of the sums silently; count
            # them and let the host raise.
            outside = (label_ids < 0) | (label_ids >= self.label_slots)
            label_ids = tf.where(outside, 0, label_ids)
        target = self._targets(x, label_ids)
        conductance, f0, f1 = self._integrate(x, xb, target)
        diff = f1 - f0
        sums = {"count": tf.cast(tf.shape(x)[0], tf.float32),
                "output_diff": tf.reduce_sum(diff),
                "abs_output_diff": tf.reduce_sum(tf.abs(diff))}
        for k, values in enumerate(conductance):
            per_filter = self._per_filter(values)
            total = tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)
            sums[f"filters_{k}"] = tf.reduce_sum(per_filter, axis=0)
            sums[f"abs_delta_{k}"] = tf.reduce_sum(tf.abs(total - diff))
            if label_ids is not None:
                sums[f"label_filters_{k}"] = tf.math.unsorted_segment_sum(
                    per_filter, label_ids, self.label_slots)
        if label_ids is not None:
            ones = tf.ones_like(diff)
            sums["label_count"] = tf.math.unsorted_segment_sum(ones, label_ids, self.label_slots)
            sums["outside"] = tf.reduce_sum(tf.cast(outside, tf.float32))
        return sums

    def _distributed(self, element):
        per_replica = self.strategy.run(self._replica_sums, args=tuple(element))
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in per_replica.items()
        }


def _check_channel_axis(channel_axis: int, layer_shapes):
    for shape in layer_shapes:
        rank = len(shape) + 1  # with the batch axis
        if not -rank <= channel_axis < rank or channel_axis % rank == 0:
            raise ValueError(
                f"`channel_axis` must name a non-batch axis of every layer output; "
                f"a layer here has rank {rank} (batch, {', '.join(map(str, shape))}). "
                f"Received: channel_axis={channel_axis!r}."
            )


# -- progress ------------------------------------------------------------------


def _check_verbose(verbose):
    if isinstance(verbose, bool) or verbose not in (0, 1, "auto"):
        raise ValueError(f"`verbose` must be 0, 1 or 'auto'. Received: verbose={verbose!r}.")


class _Progress:
    """A Keras Progbar over batches; with verbose="auto" it appears only once
    the run has lasted ``PROGRESS_AFTER_S`` (short runs stay silent)."""

    def __init__(self, total: Optional[int], verbose: Union[int, str]):
        self.total = total
        self.verbose = verbose
        self.start = time.perf_counter()
        self.bar = None

    def update(self, done: int, examples: int):
        if self.verbose == 0:
            return
        if self.bar is None:
            if self.verbose == "auto" and time.perf_counter() - self.start < PROGRESS_AFTER_S:
                return
            self.bar = keras.utils.Progbar(self.total, unit_name="batch",
                                           stateful_metrics=["examples"])
        self.bar.update(done, values=[("examples", examples)], finalize=False)

    def close(self, done: int, examples: int):
        if self.bar is not None:
            self.bar.update(done, values=[("examples", examples)], finalize=True)


# -- the public function -------------------------------------------------------


def _rows_per_example(batch_size: int, per_replica_batch: int, n_points: int) -> int:
    """Path points per chunk so that a call holds about ``batch_size`` rows."""
    return points_per_chunk(n_points, batch_size // max(per_replica_batch, 1))


def _first_batch(dataset: tf.data.Dataset):
    """One batch on the host, to validate inputs and size the chunks."""
    for element in dataset.take(1):
        return element
    raise ValueError("`dataset` is empty: there is nothing to explain.")


def _host_sums(sums: Dict[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in sums.items()}


def conductance_over_dataset(
    model: keras.Model,
    dataset: tf.data.Dataset,
    layers: Union[str, Sequence[str]],
    *,
    target: Union[None, int, str, Callable] = None,
    baselines: Optional[ArrayLike] = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    steps: Optional[int] = None,
    num_labels: Optional[int] = None,
    channel_axis: int = -1,
    strategy: Optional[tf.distribute.Strategy] = None,
    start_layer: Optional[str] = None,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    verbose: Union[int, str] = "auto",
) -> DatasetConductance:
    """Mean per-filter conductance over a dataset, overall and per label.

    Streams ``dataset`` batch by batch, keeps running sums, and never holds
    more than one batch of attributions. Under a ``tf.distribute`` strategy
    each replica integrates its share of the batch and the sums are reduced
    across replicas; the result equals the single-device one.

    Args:
        model: a Functional or Sequential ``keras.Model`` (one input, one
            output). Under a strategy, build or load it in
            ``strategy.scope()``.
        dataset: a *batched* ``tf.data.Dataset`` of ``inputs``
            ``(b, *input_shape)`` or ``(inputs, labels)`` with labels ``(b,)``
            or ``(b, 1)`` int ids, or one-hot ``(b, K)``. A third element
            (sample weights) is ignored.
        layers: a layer name or a list of names.
        target: None explains each example's top predicted class; ``"label"``
            its label; an int that class; a callable ``outputs (N, ...) ->
            scores (N,)`` any score.
        baselines: None (zeros; the zero embedding with ``start_layer``) or
            one baseline broadcastable to a single example, ``(*input_shape)``
            (token ids with ``start_layer``).
        n_steps: steps of the integration rule.
        method: ``"trapezoid"``, ``"left"``, ``"right"`` or
            ``"gauss_legendre"``.
        steps: stream at most this many batches (like ``model.evaluate``).
        num_labels: label ids run 0..num_labels-1. Default: the one-hot
            width, else the number of model outputs (at least 2).
        channel_axis: axis of the layer outputs that holds the filters (-1
            channels-last, 1 channels-first).
        strategy: a ``tf.distribute.Strategy``; default the strategy whose
            scope is active (or the default single-device one).
        start_layer: start the path at this layer's output (text models).
        batch_size: about this many rows (examples x path points) per
            replica per compiled call; default 128. A replica's batch larger
            than this is processed one path point per call.
        jit_compile: True, False or ``"auto"`` for the compiled chunk step.
        pre_softmax: explain the logits of a softmax/sigmoid model.
        verbose: 0 silent, 1 progress bar, ``"auto"`` a bar once the run has
            taken a few seconds.

    Returns:
        ``DatasetConductance``: ``result.mean[layer]`` is ``(C,)``;
        ``result.mean_per_label[layer]`` is ``(L, C)`` with rows for
        ``result.labels``.

    Raises:
        ValueError: unbatched or mis-shaped inputs, unknown target mode,
            ``target="label"`` without labels, labels out of range.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a batched tf.data.Dataset. Received: "
            f"{type(dataset).__name__}. For arrays, use `kc.conductance` or "
            "`tf.data.Dataset.from_tensor_slices((x, y)).batch(32)`."
        )
    _check_verbose(verbose)
    strategy = strategy or tf.distribute.get_strategy()
    explainer = _explainer(model, layers, start_layer, batch_size, jit_compile,
                           pre_softmax, 0)
    rule = quadrature.make_rule(method, n_steps)
    x_spec, label_spec = _split_spec(dataset.element_spec)
    _check_batched(x_spec, explainer)
    n_outputs = int(np.prod(explainer._engine.probe.outputs[-1].shape[1:]))
    _check_target(target, n_outputs)
    if target == "label" and label_spec is None:
        raise ValueError(
            "target='label' explains each example's label, but `dataset` yields "
            "no labels. Stream `(inputs, labels)` pairs, or pass target=None."
        )
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"`steps` must be a positive int or None. Received: steps={steps!r}.")
        dataset = dataset.take(steps)

    first = _first_batch(dataset)
    raw = first[0] if isinstance(first, (tuple, list)) else first
    x_first = explainer._prepare_inputs(raw)  # shape, dtype and NaN checks
    baseline = explainer._prepare_baselines(baselines, np.asarray(raw)[:1], x_first[:1])
    slots = 0 if label_spec is None else _label_slots(label_spec, target, n_outputs, num_labels)
    per_replica = -(-x_first.shape[0] // strategy.num_replicas_in_sync)
    step = _cached_step(
        explainer, rule, _rows_per_example(explainer.batch_size, per_replica, rule.n_points),
        baseline, target, slots, label_spec is not None and _is_one_hot(label_spec),
        channel_axis, strategy,
    )
    totals = _stream(dataset, step, strategy, verbose)
    return _result(totals, explainer, target, slots, rule, label_spec is not None)


def _cached_step(explainer: Conductance, rule, m, baseline, *settings) -> _DatasetStep:
    """The step for these settings, kept with the explainer: repeated calls
    (e.g. one per class subset) reuse its traces."""
    key = (rule.method, rule.n_steps, m, baseline.tobytes()) + tuple(
        id(s) if isinstance(s, tf.distribute.Strategy) else s for s in settings
    )
    per_explainer = _STEPS.setdefault(explainer, collections.OrderedDict())
    step = per_explainer.get(key)
    if step is None:
        step = _DatasetStep(explainer, rule, m, baseline, *settings)
        per_explainer[key] = step
        while len(per_explainer) > STEP_CACHE_SIZE:
            per_explainer.popitem(last=False)
    per_explainer.move_to_end(key)
    return step


def _as_pair(element):
    """``(inputs, labels)`` or ``(inputs,)``; sample weights are dropped."""
    element = tuple(element) if isinstance(element, (tuple, list)) else (element,)
    return element[:2]


def _stream(dataset, step: _DatasetStep, strategy, verbose) -> Dict[str, np.ndarray]:
    cardinality = int(dataset.cardinality())
    progress = _Progress(cardinality if cardinality >= 0 else None, verbose)
    distributed = strategy.experimental_distribute_dataset(dataset)
    function = step.compiled(_as_pair(distributed.element_spec))
    totals: Dict[str, np.ndarray] = {}
    done = 0
    for element in distributed:
        sums = _host_sums(function(_as_pair(element)))
        for key, value in sums.items():
            totals[key] = totals[key] + value if key in totals else value
        done += 1
        progress.update(done, int(totals["count"]))
    progress.close(done, int(totals.get("count", 0)))
    return totals


def _warn_convergence(totals, explainer: Conductance, rule):
    """The explainer's warning, on dataset means: a cut layer's completeness
    error should be a small part of the output change."""
    scale = max(totals["abs_output_diff"], 1e-12)
    for k, name in enumerate(explainer.layers):
        relative = totals[f"abs_delta_{k}"] / scale
        if explainer.is_cut[name] and relative > CONVERGENCE_WARNING_THRESHOLD:
            warnings.warn(
                f"Mean completeness error of layer {name!r} is {100 * relative:.1f}% of "
                f"the mean |F(x) - F(x')| with method={rule.method!r}, "
                f"n_steps={rule.n_steps}: the path crosses many ReLU kinks. Pass a "
                "larger `n_steps` (e.g. 200-400).",
                stacklevel=3,
            )


def _result(totals, explainer: Conductance, target, slots, rule, has_labels) -> DatasetConductance:
    count = totals["count"]
    if has_labels and totals["outside"] > 0:
        what = ("`target='label'` needs label ids that are output indices"
                if target == "label" else "labels must be ids below `num_labels`")
        raise ValueError(
            f"{int(totals['outside'])} labels fall outside 0..{slots - 1}: {what}. "
            "Pass `num_labels=` for other label sets."
        )
    layers = list(explainer.layers)
    mean = {n: totals[f"filters_{k}"] / count for k, n in enumerate(layers)}
    labels = mean_per_label = count_per_label = None
    if has_labels:
        seen = np.flatnonzero(totals["label_count"] > 0)
        labels = seen.astype(np.int64)
        count_per_label = totals["label_count"][seen].astype(np.int64)
        mean_per_label = {
            n: totals[f"label_filters_{k}"][seen] / count_per_label[:, None]
            for k, n in enumerate(layers)
        }
    _warn_convergence(totals, explainer, rule)
    return DatasetConductance(
        layers=layers,
        mean=mean,
        count=int(count),
        labels=labels,
        mean_per_label=mean_per_label,
        count_per_label=count_per_label,
        mean_abs_delta={n: float(totals[f"abs_delta_{k}"] / count) for k, n in enumerate(layers)},
        mean_output_diff=float(totals["output_diff"] / count),
        target=_describe_target(target),
        n_steps=rule.n_steps,
        method=rule.method,
        is_cut=dict(explainer.is_cut),
    )
