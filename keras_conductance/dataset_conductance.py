"""Per-filter conductance aggregated over a whole ``tf.data.Dataset``.

``conductance_over_dataset`` streams batches through one compiled step that
integrates along the path *inside the graph* (the engine's in-graph
``integrate``: a ``tf.while_loop`` over chunks of path points). The step runs per
replica under ``strategy.run`` and returns only running sums (per filter, per
label, completeness error), reduced across replicas with
``strategy.reduce(SUM)``; the host adds them up in float64. Nothing per
example leaves the devices, so the same code serves one CPU, several GPUs,
several workers or a TPU.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance import interrupts, quadrature, top_examples
from keras_conductance.arguments import check, check_labels_dtype, message
from keras_conductance.attribution import channel_axes, check_channel_axes, filters_along
from keras_conductance.cache import cached, compiled
from keras_conductance.checkpoint import Checkpoint, weights_digest
from keras_conductance.progress import Progress
from keras_conductance.engine import check_target_callable, points_per_chunk
from keras_conductance.explainer import (
    CONVERGENCE_WARNING_THRESHOLD,
    DEFAULT_BATCH_SIZE,
    Conductance,
    unchanged_message,
)
from keras_conductance.dataset_result import DatasetConductance
from keras_conductance.functional import explainer_for
from keras_conductance.targets import label_ids as to_label_ids
from keras_conductance.targets import resolve_target

__all__ = ["DatasetConductance", "conductance_over_dataset"]



# -- input checks ------------------------------------------------------------


def _split_spec(spec):
    """``(features spec, label spec or None)`` of a dataset element.

    Elements follow Keras' ``fit`` convention: ``features``, ``(features,)``,
    ``(features, labels)`` or ``(features, labels, sample_weight)``, where
    ``features`` is a tensor, a tuple/list (one per model input) or a dict
    keyed by input name.
    """
    if not isinstance(spec, tuple):
        return spec, None
    if not 1 <= len(spec) <= 3:
        raise ValueError(
            "`dataset` elements must be `features`, `(features,)`, `(features, labels)` "
            f"or `(features, labels, sample_weight)`. Received {len(spec)} components."
        )
    if len(spec) == 3:
        warnings.warn(
            "conductance_over_dataset ignores sample weights (the third "
            "component of the dataset's elements): means are unweighted.",
            stacklevel=3,
        )
    return spec[0], (spec[1] if len(spec) > 1 else None)


def _label_slots(label_spec, target, n_outputs: int, num_labels: Optional[int]) -> int:
    """How many label ids the per-label sums have room for."""
    if num_labels is not None:
        return num_labels
    if _is_one_hot(label_spec):
        return int(label_spec.shape[-1])
    if isinstance(target, str):  # "label": ids are output indices
        return n_outputs
    # A single sigmoid output still has two labels.
    return max(n_outputs, 2)


def _is_one_hot(label_spec) -> bool:
    shape = label_spec.shape
    return shape.rank is not None and shape.rank >= 2 and (shape[-1] or 0) > 1


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
        explainer: supplies the model adapter and the engine.
        rule: the integration rule.
        rows_per_example: path points per chunk ``m`` (rows per call are
            ``per-replica batch x m``).
        baselines: per interpolated tensor, ``(1, *S_i)`` float32 start of
            the path.
        target: None, "label", an int or a callable.
        label_slots: K, room for label ids 0..K-1 (0: no labels).
        one_hot: whether labels come one-hot.
        channel_axis: filter axis of each layer output, one per layer.
        strategy: the ``tf.distribute`` strategy.
        const_shapes: per-example shapes of the held-constant inputs.
        top_k: positions kept per unit and sign (None: no top examples,
            histograms or mean |conductance|).
    """

    def __init__(self, explainer, rule, rows_per_example, baselines, target,
                 label_slots, one_hot, channel_axis, strategy, const_shapes, top_k=None):
        self.adapter = explainer.adapter
        self.engine = explainer.engine
        self.rule, self.m = rule, rows_per_example
        self.baselines = [tf.constant(b) for b in baselines]
        self.target = target
        self.target_fn = target if callable(target) else None
        self.label_slots = label_slots
        self.one_hot = one_hot
        self.channel_axes = list(channel_axis)
        self.strategy = strategy
        path_shapes = [tuple(b.shape[1:]) for b in baselines]
        self.layer_shapes = self.engine.layer_shapes(path_shapes, const_shapes)
        check_channel_axes(dict(zip(explainer.layers, self.channel_axes)), self.layer_shapes)
        self._forward = self.engine.forward_function(path_shapes, const_shapes)
        self._compiled = {}
        self.top_k = top_k
        self.has_labels = label_slots > 0

    def position_shape(self, k: int) -> tuple:
        """Layer ``k``'s positions per example, e.g. ``(T,)`` or ``(H, W)``."""
        shape = self.layer_shapes[k]
        places, _ = top_examples.position_axes(len(shape) + 1, self.channel_axes[k])
        return tuple(int(shape[a - 1]) for a in places)

    def empty_top(self) -> Dict[str, np.ndarray]:
        """The host's running top-k state before the first batch."""
        state = {}
        for k, shape in enumerate(self.layer_shapes):
            places = int(np.prod(self.position_shape(k), dtype=np.int64))
            empty = top_examples.empty_state(filters_along(shape, self.channel_axes[k]), places,
                                             self.top_k, self.has_labels)
            state.update({f"top/{k}/{key}": value for key, value in empty.items()})
        return state

    def compiled(self, element_spec) -> Callable:
        """The step for a distributed dataset's (inputs, labels) spec.

        The signature leaves the batch size unknown, so the last, partial
        batch and later datasets of the same spec reuse one trace.
        """
        key = repr(element_spec)
        fn = self._compiled.get(key)
        if fn is None:
            fn = compiled(self._distributed, input_signature=[element_spec])
            self._compiled[key] = fn
        return fn

    @property
    def tracing_count(self) -> int:
        return sum(f.experimental_get_tracing_count() for f in self._compiled.values())

    def _per_filter(self, values: tf.Tensor, channel_axis: int) -> tf.Tensor:
        """``(b, *Y) -> (b, C)``: sum over every axis but batch and channel."""
        rank = values.shape.rank
        if rank == 2:
            return values
        channel = channel_axis % rank
        return tf.reduce_sum(values, axis=[a for a in range(1, rank) if a != channel])

    def _targets(self, xs, consts, label_ids):
        batch = tf.shape(xs[0])[0]
        if self.target is None:
            outputs = self._forward(xs, consts)
            flat = tf.reshape(outputs, [batch, -1])
            return tf.argmax(flat, axis=1, output_type=tf.int32)
        if isinstance(self.target, str):
            return label_ids
        if self.target_fn is not None:
            return tf.fill([batch], -1)
        return tf.fill([batch], tf.constant(int(self.target), tf.int32))

    def _replica_sums(self, inputs, labels=None, ids=None):
        # A replica can get an empty share of the last batch. Skip it: on
        # CPU, TensorFlow's oneDNN fused Conv2D+ReLU fails on empty batches
        # ("input depth must be evenly divisible by filter depth").
        first = tf.nest.flatten(inputs)[0]
        return tf.cond(
            tf.shape(first)[0] > 0,
            lambda: self._sums(inputs, labels, ids),
            self._zero_sums,
        )

    def _zero_sums(self):
        sums = {name: tf.constant(0.0) for name in ("count", "output_diff", "abs_output_diff",
                                                     "nonfinite", "unchanged", "bad_ids")}
        for k, shape in enumerate(self.layer_shapes):
            filters = filters_along(shape, self.channel_axes[k])
            sums[f"filters_{k}"] = tf.zeros([filters])
            sums[f"abs_delta_{k}"] = tf.constant(0.0)
            if self.label_slots:
                sums[f"label_filters_{k}"] = tf.zeros([self.label_slots, filters])
        if self.label_slots:
            sums["label_count"] = tf.zeros([self.label_slots])
            sums["outside"] = tf.constant(0.0)
            sums["fractional"] = tf.constant(0.0)
        if self.top_k:
            # An empty share's candidates: every slot empty, as on the host.
            for key, value in self.empty_top().items():
                sums[key] = tf.constant(value[None])
            for k, shape in enumerate(self.layer_shapes):
                filters = filters_along(shape, self.channel_axes[k])
                sums[f"abs_filters_{k}"] = tf.zeros([filters])
                sums[f"histogram_{k}"] = tf.zeros([filters, top_examples.HISTOGRAM_EDGES.size + 1])
        return sums

    def _sums(self, inputs, labels=None, ids=None):
        # Each kept example's fingerprint, to check the second read's inputs.
        checksums = None if ids is None else top_examples.checksums(inputs)
        raw = self.adapter.structure(inputs, "features", convert=False)
        xs, consts = self.adapter.split(raw)
        xbs = [tf.broadcast_to(b, tf.shape(x)) for b, x in zip(self.baselines, xs)]
        label_ids = None if labels is None else to_label_ids(labels, self.one_hot)
        fractional = None
        if labels is not None and labels.dtype.is_floating and not self.one_hot:
            flat = tf.reshape(labels, [-1])
            fractional = tf.reduce_sum(tf.cast(tf.not_equal(flat, tf.round(flat)), tf.float32))
        if label_ids is not None:
            # Out-of-range ids would fall out of the sums silently; count
            # them and let the host raise.
            outside = (label_ids < 0) | (label_ids >= self.label_slots)
            label_ids = tf.where(outside, 0, label_ids)
        target = self._targets(xs, consts, label_ids)
        conductance, f0, f1 = self.engine.integrate(xs, xbs, consts, target, self.rule, self.m,
                                                    self.target_fn)
        diff = f1 - f0
        # Only the first batch is checked on the host; later batches report
        # non-finite features here, and the host stops at the first.
        finite = [tf.reduce_all(tf.reshape(tf.math.is_finite(x), [tf.shape(x)[0], -1]), axis=1)
                  for x in xs]
        sums = {"count": tf.cast(tf.shape(xs[0])[0], tf.float32),
                "output_diff": tf.reduce_sum(diff),
                "abs_output_diff": tf.reduce_sum(tf.abs(diff)),
                "nonfinite": tf.reduce_sum(tf.cast(~tf.reduce_all(tf.stack(finite), 0),
                                                   tf.float32)),
                "unchanged": tf.reduce_sum(tf.cast(tf.equal(diff, 0.0), tf.float32)),
                # Token ids that are fractional or beyond an Embedding's rows
                # (the first batch was checked on the host).
                "bad_ids": self.adapter.count_bad_token_ids(raw)}
        for k, values in enumerate(conductance):
            per_filter = self._per_filter(values, self.channel_axes[k])
            total = tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)
            sums[f"filters_{k}"] = tf.reduce_sum(per_filter, axis=0)
            sums[f"abs_delta_{k}"] = tf.reduce_sum(tf.abs(total - diff))
            if label_ids is not None:
                sums[f"label_filters_{k}"] = tf.math.unsorted_segment_sum(
                    per_filter, label_ids, self.label_slots)
            if self.top_k:
                sums.update(self._unit_statistics(k, values, per_filter, ids, target, label_ids,
                                                  checksums))
        if label_ids is not None:
            ones = tf.ones_like(diff)
            sums["label_count"] = tf.math.unsorted_segment_sum(ones, label_ids, self.label_slots)
            sums["outside"] = tf.reduce_sum(tf.cast(outside, tf.float32))
            sums["fractional"] = tf.constant(0.0) if fractional is None else fractional
        return sums

    def _unit_statistics(self, k, values, per_filter, ids, target, label_ids, checksums):
        """Layer ``k``'s top-k candidates, |conductance| sums and histogram."""
        per_position = top_examples.positions_of(values, self.channel_axes[k])
        candidates = top_examples.replica_candidates(per_position, ids, target, label_ids,
                                                     self.top_k, checksums)
        out = {f"top/{k}/{key}": value for key, value in candidates.items()}
        out[f"abs_filters_{k}"] = tf.reduce_sum(tf.abs(per_filter), axis=0)
        out[f"histogram_{k}"] = top_examples.histogram_counts(per_filter)
        return out

    def _distributed(self, element):
        per_replica = self.strategy.run(self._replica_sums, kwargs=element)
        # Sums add up across replicas; top-k candidates are gathered (one
        # block per replica) and merged on the host by the exact rule.
        return {
            key: self.strategy.gather(value, axis=0) if key.startswith("top/")
            else self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in per_replica.items()
        }


# -- progress ------------------------------------------------------------------



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
    """Sums in float64; top-k candidates in their own dtypes."""
    return {k: np.asarray(v) if k.startswith("top/") else np.asarray(v, np.float64)
            for k, v in sums.items()}


def _added(totals: Dict[str, np.ndarray], sums: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Running totals after one more batch: sums added, top-k merged."""
    out = {k: totals[k] + v if k in totals else v
           for k, v in sums.items() if not k.startswith("top/")}
    layers = sorted({k.split("/")[1] for k in sums if k.startswith("top/")})
    for layer in layers:
        prefix = f"top/{layer}/"
        state = {k[len(prefix):]: v for k, v in totals.items() if k.startswith(prefix)}
        new = {k[len(prefix):]: v for k, v in sums.items() if k.startswith(prefix)}
        out.update({prefix + k: v for k, v in top_examples.merge(state, new).items()})
    return out


def conductance_over_dataset(
    model: keras.Model,
    dataset: tf.data.Dataset,
    layers: Union[str, Sequence[str]],
    *,
    target: Union[None, int, str, Callable] = None,
    baselines=None,
    output: Union[None, int, str] = None,
    start_layer: Optional[str] = None,
    interpolate: Optional[Sequence[Union[str, int]]] = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    steps: Optional[int] = None,
    num_labels: Optional[int] = None,
    channel_axis: Union[int, Dict[str, int]] = -1,
    strategy: Optional[tf.distribute.Strategy] = None,
    checkpoint_dir: Optional[str] = None,
    checkpoint_every: int = 10,
    top_k: Optional[int] = None,
    verbose: Union[int, str] = "auto",
) -> DatasetConductance:
    """Mean per-filter conductance over a dataset, overall and per label.

    Streams ``dataset`` batch by batch, keeps running sums, and never holds
    more than one batch of attributions. Under a ``tf.distribute`` strategy
    each replica integrates its share of the batch and the sums are reduced
    across replicas; the result equals the single-device one.

    Args:
        model: a Functional or Sequential ``keras.Model`` (any inputs and
            outputs). Under a strategy, build or load it in
            ``strategy.scope()``.
        dataset: a *batched* ``tf.data.Dataset`` of ``features`` or
            ``(features, labels)``, as ``model.fit`` takes them: features
            ``(b, *input_shape)``, or a tuple/dict of them for several
            inputs; labels ``(b,)`` or ``(b, 1)`` int ids, or one-hot
            ``(b, K)``. A third element (sample weights) is ignored.
        layers: a layer name or a list of names.
        target: None explains each example's top predicted class; ``"label"``
            its label; an int that class; a callable ``outputs (N, ...) ->
            scores (N,)`` any score.
        baselines: None (zeros; the zero embedding with ``start_layer``) or
            one baseline broadcastable to a single example, ``(*input_shape)``
            (token ids with ``start_layer``), or the features' structure.
        output: the explained output (name or index) of a multi-output model.
        start_layer: start the path at this layer's output (text models).
        interpolate: model inputs that move along the path (default: the
            float inputs); the others are held constant.
        n_steps: steps of the integration rule.
        method: ``"trapezoid"``, ``"left"``, ``"right"`` or
            ``"gauss_legendre"``.
        steps: stream at most this many batches (like ``model.evaluate``).
        num_labels: label ids run 0..num_labels-1. Default: the one-hot
            width, else the number of model outputs (at least 2).
        channel_axis: axis of the layer outputs that holds the filters (-1
            channels-last, 1 channels-first), or a dict ``{unit: axis}``
            (others -1), e.g. ``{"block/attention_output:input": -2}`` for
            per-head means beside per-neuron FFN means.
        strategy: a ``tf.distribute.Strategy``; default the strategy whose
            scope is active (or the default single-device one).
        batch_size: about this many rows (examples x path points) per
            replica per compiled call; default 128. A replica's batch larger
            than this is processed one path point per call.
        jit_compile: True, False or ``"auto"`` for the compiled chunk step.
        pre_softmax: explain the logits of a softmax/sigmoid model.
        checkpoint_dir: keep the running sums in this folder, saved
            atomically every ``checkpoint_every`` batches and when the run is
            interrupted (Ctrl-C, SIGTERM); the same call started again
            resumes there and returns exactly the uninterrupted result. The
            dataset must yield the same batches in the same order each time
            (no unseeded reshuffling). A checkpoint written with other
            settings is refused with what differs.
        checkpoint_every: batches between checkpoints.
        top_k: also keep, for every unit of every layer, the ``top_k``
            positions of the dataset where it conducts most and the
            ``top_k`` where it conducts most negatively (``result.top``),
            each unit's mean |conductance| and a histogram of its
            per-example conductance, and the inputs of the examples kept
            (read in a second pass over ``dataset``, without computing). A
            position is an example and, for ``(b, T, C)`` or ``(b, H, W, C)``
            outputs, a token or a cell; memory stays bounded whatever the
            dataset's length. None: none of this.
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
    verbose = check("verbose", verbose)
    steps, num_labels = check("steps", steps), check("num_labels", num_labels)
    checkpoint_every = check("checkpoint_every", checkpoint_every)
    top_k = check("top_k", top_k)
    checkpoint_dir = check("checkpoint_dir", checkpoint_dir)
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(message(
            "strategy", "a tf.distribute.Strategy instance or None (the active strategy)",
            strategy, hint="E.g. `tf.distribute.MirroredStrategy()`; build or load the model "
            "in its `scope()`."))
    strategy = strategy or tf.distribute.get_strategy()
    explainer = explainer_for(model, layers, output=output, start_layer=start_layer,
                              interpolate=interpolate, jit_compile=jit_compile,
                              pre_softmax=pre_softmax)
    batch_size = check("batch_size", batch_size) or DEFAULT_BATCH_SIZE
    rule = quadrature.make_rule(method, n_steps)
    x_spec, label_spec = _split_spec(dataset.element_spec)
    explainer.adapter.check_batched(x_spec, "dataset")
    if label_spec is not None:
        check_labels_dtype(label_spec.dtype, "dataset", "the dataset's labels")
    n_outputs = explainer.adapter.n_outputs
    _check_target(target, n_outputs)
    if callable(target):
        check_target_callable(target, explainer.adapter.explained.shape)
    if target == "label" and label_spec is None:
        raise ValueError(
            "target='label' explains each example's label, but `dataset` yields "
            "no labels. Stream `(inputs, labels)` pairs, or pass target=None."
        )
    if (target == "label" and label_spec is not None and _is_one_hot(label_spec)
            and label_spec.shape[-1] != n_outputs):
        raise ValueError(
            f"The dataset's labels are one-hot rows of width {label_spec.shape[-1]}, but "
            f"the explained output has {n_outputs} classes: target='label' needs labels "
            "that are output indices. Pass `num_labels=` with another target, or "
            "labels of the model's classes."
        )
    if steps is not None:
        dataset = dataset.take(steps)

    first = _first_batch(dataset)
    features = first[0] if isinstance(first, tuple) else first
    # Shape, dtype and NaN checks on the first batch; the baselines of its
    # first example start every path.
    prep = explainer.adapter.prepare(features, baselines)
    starts = [b[:1] for b in prep.baselines]
    slots = 0 if label_spec is None else _label_slots(label_spec, target, n_outputs, num_labels)
    per_replica = -(-prep.n // strategy.num_replicas_in_sync)
    m = _rows_per_example(batch_size, per_replica, rule.n_points)
    axes = tuple(channel_axes(channel_axis, explainer.layers).values())
    step = _cached_step(
        explainer, rule, m, starts, target, slots,
        label_spec is not None and _is_one_hot(label_spec),
        axes, strategy, [c.shape[1:] for c in prep.consts], top_k,
    )
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = Checkpoint(checkpoint_dir, checkpoint_every, dict(
            weights=weights_digest(model), layers=list(explainer.layers),
            output=output, start_layer=start_layer, interpolate=interpolate,
            method=rule.method, n_steps=rule.n_steps, points_per_chunk=m,
            jit_compile=explainer.engine.jit_compile, target=_target_fingerprint(target),
            baselines=[hashlib.sha256(np.ascontiguousarray(b).tobytes()).hexdigest()
                       + str(b.shape) for b in starts],
            pre_softmax=pre_softmax, label_slots=slots,
            # An int as before (older checkpoints stay resumable); a dict as given.
            channel_axis=dict(zip(explainer.layers, axes))
            if isinstance(channel_axis, dict) else channel_axis,
            steps=steps, replicas=strategy.num_replicas_in_sync,
            dataset=repr(dataset.element_spec), batches=int(dataset.cardinality()),
            top_k=top_k,
        ))
    keyed = _keyed(dataset, with_ids=top_k is not None)
    totals, done, resumed = _stream(keyed, step, strategy, verbose, checkpoint)
    result = _result(totals, explainer, target, slots, rule, label_spec is not None,
                     batches=done, resumed_batches=resumed)
    if top_k is not None:
        _add_top(result, totals, step, keyed)
    return result


def _target_fingerprint(target) -> str:
    """What a checkpoint records of the target: the mode, or for a callable
    its name and a hash of its code and constants (a lambda's name alone
    would not tell two lambdas apart)."""
    if not callable(target):
        return _describe_target(target)
    code = getattr(target, "__code__", None)
    body = b"" if code is None else code.co_code + repr(code.co_consts).encode()
    return f"{getattr(target, '__qualname__', type(target).__name__)}:" \
        f"{hashlib.sha256(body).hexdigest()[:16]}"


def _cached_step(explainer: Conductance, rule, m, baselines, *settings) -> _DatasetStep:
    """The step for these settings, kept with the explainer: repeated calls
    (e.g. one per class subset) reuse its traces."""
    key = (rule.method, rule.n_steps, m, tuple(b.tobytes() for b in baselines)) + tuple(
        id(s) if isinstance(s, tf.distribute.Strategy)
        else tuple(map(tuple, s)) if isinstance(s, list) else s for s in settings
    )
    return cached(explainer, "dataset_step", key,
                  lambda: _DatasetStep(explainer, rule, m, baselines, *settings))


def _keyed(dataset: tf.data.Dataset, with_ids: bool) -> tf.data.Dataset:
    """Elements as ``{"inputs", "labels"?, "ids"?}``: sample weights are
    dropped, and ``ids`` (with ``top_k``) numbers the examples from 0 across
    batches, before any skip or sharding, so that every replica, worker and
    resumed run names an example alike."""
    def keyed(*element):
        out = {"inputs": element[0]}
        if len(element) > 1:
            out["labels"] = element[1]
        return out

    dataset = dataset.map(keyed)
    if not with_ids:
        return dataset

    def number(start, element):
        size = tf.shape(tf.nest.flatten(element["inputs"])[0], out_type=tf.int64)[0]
        return start + size, dict(element, ids=start + tf.range(size))

    # Several workers shard by data, never by file: sharded by file, each
    # worker would number its own files from 0 and the ids would collide.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.scan(tf.constant(0, tf.int64), number).with_options(options)


def _stream(dataset, step: _DatasetStep, strategy, verbose, checkpoint=None):
    """Sums every batch; returns ``(totals, batches done, batches resumed)``."""
    cardinality = int(dataset.cardinality())
    resumed, totals = checkpoint.load() if checkpoint is not None else (0, None)
    progress = Progress(cardinality if cardinality >= 0 else None, "batches", verbose,
                        "conductance over the dataset", initial=resumed)
    if resumed:
        dataset = dataset.skip(resumed)
    distributed = strategy.experimental_distribute_dataset(dataset)
    function = step.compiled(distributed.element_spec)
    # (batches done, totals) is replaced in one assignment, so an interrupt
    # between batches never leaves a count that disagrees with the sums.
    state = (resumed, totals or ({} if not step.top_k else step.empty_top()))
    try:
        with interrupts.sigterm_as_interrupt(enabled=checkpoint is not None):
            for element in distributed:
                sums = _host_sums(function(element))
                _check_batch(sums, state[0] + 1)
                done, totals = state
                state = (done + 1, _added(totals, sums))
                if checkpoint is not None and checkpoint.due(state[0]):
                    checkpoint.save(*state)
                progress.update(1, examples=int(state[1]["count"]))
    except BaseException:
        if checkpoint is not None and state[1]:
            checkpoint.save(*state)  # what was summed before the interrupt
        raise
    finally:
        progress.close(examples=int(state[1].get("count", 0)))
    done, totals = state
    if checkpoint is not None and totals:
        checkpoint.save(done, totals, finished=True)
    return totals, done, resumed


def _check_batch(sums: Dict[str, np.ndarray], index: int):
    """Stops at the first batch with NaN/Inf features or fractional labels
    (the first batch was checked before the run; these come later)."""
    if sums.get("nonfinite", 0) > 0:
        raise ValueError(
            f"Batch {index} of `dataset` has NaN or Inf features in "
            f"{int(sums['nonfinite'])} examples: every mean would become NaN. Clean "
            "or filter the dataset (e.g. `ds.unbatch().filter(...)`)."
        )
    if sums.get("bad_ids", 0) > 0:
        raise ValueError(
            f"Batch {index} of `dataset` has {int(sums['bad_ids'])} token ids that are not "
            "whole numbers or lie beyond the vocabulary of the Embedding they feed: the "
            "lookup would truncate them or fail. Token ids must be ints in 0..vocabulary-1."
        )
    if sums.get("fractional", 0) > 0:
        raise ValueError(
            f"Batch {index} of `dataset` has {int(sums['fractional'])} labels that are "
            "not whole numbers (e.g. 0.5): labels must be class ids (ints, or "
            "floats like 0. and 1.) or one-hot rows."
        )


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
                f"n_steps={rule.n_steps}: the gradient changes faster along the path "
                "than the steps resolve (ReLU kinks, or steep tanh/GELU/softmax "
                "regions). Pass a larger `n_steps` (e.g. 200-400).",
                stacklevel=3,
            )


def _result(totals, explainer: Conductance, target, slots, rule, has_labels, batches: int,
            resumed_batches: int) -> DatasetConductance:
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
    if totals.get("unchanged", 0) > 0:
        warnings.warn(unchanged_message(int(totals["unchanged"]), int(count)), stacklevel=3)
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
        batches=batches,
        resumed_batches=resumed_batches,
    )


def _add_top(result: DatasetConductance, totals, step: "_DatasetStep", keyed):
    """Fills in the top-k fields: the kept positions per layer, the unit
    statistics, and the inputs of the examples kept."""
    count = max(result.count, 1)
    result.top, result.mean_abs, result.histogram, result.channel_axes = {}, {}, {}, {}
    for k, name in enumerate(result.layers):
        shape = step.position_shape(k)
        places = int(np.prod(shape, dtype=np.int64))
        state = {key[len(f"top/{k}/"):]: v for key, v in totals.items()
                 if key.startswith(f"top/{k}/")}
        filled = min(step.top_k, result.count * places)
        result.top[name] = top_examples.to_result(state, filled, shape)
        result.mean_abs[name] = totals[f"abs_filters_{k}"] / count
        result.histogram[name] = totals[f"histogram_{k}"].astype(np.int64)
        rank = len(step.layer_shapes[k]) + 1
        result.channel_axes[name] = int(step.channel_axes[k] % rank)
    result.histogram_edges = top_examples.HISTOGRAM_EDGES.copy()
    sums = {}  # example -> its fingerprint, as the compiled step saw it
    for k in range(len(result.layers)):
        for sign in top_examples.SIGNS:
            ids, fingerprints = totals[f"top/{k}/{sign}/example"], totals[f"top/{k}/{sign}/checksum"]
            sums.update(zip(ids[ids >= 0].tolist(), fingerprints[ids >= 0].tolist()))
    wanted = np.array(sorted(sums), np.int64)
    result.example_ids = wanted
    result.example_inputs = _gather_inputs(keyed, wanted, np.array([sums[i] for i in wanted]))


def _gather_inputs(keyed: tf.data.Dataset, wanted: np.ndarray, fingerprints: np.ndarray):
    """The features of examples ``wanted`` (sorted dataset indices), read
    from the dataset on the host: ``(N, ...)`` arrays in ``wanted``'s order,
    one array for one input, else a dict by input name (or position).

    Raises:
        ValueError: the dataset gave other examples this time (reshuffled
            or randomly augmented): their fingerprints differ.
    """
    rows, found = [], 0
    for element in keyed:
        ids = element["ids"].numpy()
        keep = np.flatnonzero(np.isin(ids, wanted))
        if keep.size:
            found += keep.size
            rows.append(tf.nest.map_structure(lambda t: np.asarray(t)[keep], element["inputs"]))
        if found == wanted.size:
            break
    if not rows:
        return None
    read = np.concatenate([top_examples.host_checksums(r) for r in rows])
    if read.shape != fingerprints.shape or not np.allclose(read, fingerprints, rtol=1e-6,
                                                             atol=1e-6):
        raise ValueError(
            "`dataset` gave other examples on its second read (the kept examples' inputs "
            "are read again after the run): with `top_k`, it must yield the same examples "
            "in the same order each time. Shuffle with a seed and "
            "`reshuffle_each_iteration=False`, and apply random augmentation before "
            "`cache()`, or not at all.")
    stacked = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *rows)
    if isinstance(stacked, dict):
        return {str(k): v for k, v in stacked.items()}
    if isinstance(stacked, (tuple, list)):
        return {str(i): v for i, v in enumerate(stacked)}
    return stacked
