"""Neuron conductance (Eq. 2): how much of each input feature's attribution
flows through a filter, for many filters at once.

For a filter c with units y_u (its positions in the layer output), the paper's
Eq. 2 summed over the filter's units is

    Cond_i^c(x) = (x_i - x'_i) * integral_0^1 sum_u dF/dy_u * dy_u/dx_i dalpha
                = (x_i - x'_i) * integral_0^1 [J_y(x_alpha)^T (g_alpha * m_c)]_i dalpha

with g = dF/dy and m_c the 0/1 mask of the filter's units: at each path point
it is ONE vector-Jacobian product of the layer with the cotangent dF/dy
masked to the filter. (Summing a neuron selector first, i.e.
(sum_u dF/dy_u) * (sum_u dy_u/dx_i), is a different and wrong quantity.)
All requested filters share the forward pass and dF/dy. Two ways to get
the rest, with the same result:

* reverse mode: the masked VJPs of all filters vectorised together
  (``GradientTape.batch_jacobian``, pfor over the filters); per path point one
  forward pass, one backward pass of the tail, and one backward pass of the
  head per filter;
* forward mode, when the maps are wanted per group of input features (per
  token with a start layer: Eq. 2 summed over the embedding axis): the
  group's share sum_{i in group} (x_i - x'_i) [J^T (g * m_c)]_i equals
  (g * m_c) . (J d_group) with d_group = (x - x') on the group, so one JVP
  per group and path point serves every filter at once.
"""

from __future__ import annotations

import collections
import weakref
from typing import Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance import quadrature
from keras_conductance.engine import budget_batch_size, check_batch_size, select_score
from keras_conductance.graph import layer_graph
from keras_conductance.targets import resolve_target, strip_softmax

__all__ = ["MODES", "NeuronConductance", "neuron_conductance", "point_weights"]

MODES = ("auto", "reverse", "forward")

# Default VJPs (path rows x filters) per compiled call: as many as keep the
# Jacobian block they produce under this many floats (64 MB), within limits.
JACOBIAN_BUDGET = 2 ** 24
MIN_BATCH, MAX_BATCH = 16, 1024
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CACHE_SIZE = 8


def point_weights(rule: quadrature.Rule) -> np.ndarray:
    """``(P,)`` weights of a plain quadrature of h(alpha) at ``rule.alphas``.

    Eq. 2 integrates a vector per point (the masked VJP), not a Stieltjes
    sum, so each rule's interval weights become point weights: the
    trapezoid gives h/2 at both ends and h inside, ``left``/``right`` give h
    at one end of each interval, Gauss-Legendre keeps its node weights.
    """
    if rule.derivative:
        return np.asarray(rule.right, np.float64).copy()
    h = np.diff(rule.alphas)
    w = np.zeros(rule.n_points)
    w[1:] += rule.right[1:] * h
    w[:-1] += rule.left[1:] * h
    return w


def _check_batch_size(batch_size, path_shape) -> int:
    default = budget_batch_size(path_shape, JACOBIAN_BUDGET, MIN_BATCH, MAX_BATCH)
    return check_batch_size(batch_size, "path rows x filters", default)


class NeuronConductance:
    """Reusable Eq. 2 explainer for one layer (compiled step cached).

    Args:
        model: Functional or Sequential ``keras.Model``, one input, one output.
        layer: name of the hidden layer whose filters are explained (it need
            not be a cut: Eq. 2 is the flow through it either way).
        start_layer: start the path at this layer's output (e.g. an
            ``Embedding``); attributions are then per token, summed over the
            start layer's extra axes (the embedding axis).
        pre_softmax: explain the logits of a softmax/sigmoid model.
        channel_axis: axis of the layer output holding the filters.
    """

    def __init__(self, model: keras.Model, layer: str, *, start_layer: Optional[str] = None,
                 pre_softmax: bool = False, channel_axis: int = -1):
        if not isinstance(layer, str):
            raise TypeError(f"`layer` must be one layer name (str). Received: layer={layer!r}.")
        explained = strip_softmax(model) if pre_softmax else model
        graph = layer_graph(explained)
        source = graph.model
        if len(source.inputs) != 1 or len(source.outputs) != 1:
            raise ValueError(
                f"Model '{model.name}' has {len(source.inputs)} inputs and "
                f"{len(source.outputs)} outputs; neuron_conductance explains "
                "single-input, single-output models."
            )
        (y,) = graph.resolve([layer], "layer")
        start, self._head = source.inputs[0], None
        if start_layer is not None:
            (start,) = graph.resolve([start_layer], "start_layer")
            graph.check_cut([start_layer], what="start layer")
            self._head = keras.Model(source.inputs[0], start, name="kc_neuron_start")
        try:
            self._probe = keras.Model(start, [y, source.outputs[0]], name="kc_neuron_probe")
        except ValueError as err:
            raise ValueError(
                f"Cannot reach layer {layer!r} from start_layer {start_layer!r}: "
                f"the layer must come after the start layer. ({err})"
            ) from None
        rank = len(y.shape)
        self.channel_axis = channel_axis % rank if -rank <= channel_axis < rank else None
        if self.channel_axis in (None, 0):
            raise ValueError(
                f"`channel_axis` must name a non-batch axis of layer {layer!r}'s "
                f"output {tuple(y.shape)}. Received: channel_axis={channel_axis}."
            )
        self.layer = layer
        self.n_filters = int(y.shape[self.channel_axis])
        self._raw_spec = tuple(source.inputs[0].shape[1:])
        self._path_spec = tuple(start.shape[1:])
        self._sum_axes = [a for a in range(1, rank) if a != self.channel_axis]
        self._head_to_y = keras.Model(start, y, name="kc_neuron_head")
        # Eq. 2 is reported per group of path features: each feature, or
        # with a start layer each input position (token), summing the start
        # layer's extra axes (the embedding axis).
        self._group_shape = self._path_spec
        if start_layer is not None:
            self._group_shape = self._raw_spec
            if tuple(self._path_spec[: len(self._raw_spec)]) != tuple(self._raw_spec):
                raise ValueError(
                    f"The start layer {start_layer!r} output {self._path_spec} does not "
                    f"extend the input shape {self._raw_spec} (e.g. tokens (L,) -> "
                    "embeddings (L, E)), so its features cannot be summed per input position."
                )
        self._steps = {}
        self._forward_fn = tf.function(
            lambda z: tf.cast(self._probe(z, training=False)[1], tf.float32),
            input_signature=[tf.TensorSpec((None,) + self._path_spec, tf.float32)])

    # -- compiled pieces ------------------------------------------------------

    def _common(self, target_fn):
        """Pieces shared by both modes: the path rows and the weighted dF/dy."""
        probe, dtype = self._probe, self._probe.inputs[0].dtype

        def rows_of(x, xb, alphas):
            a = tf.reshape(alphas, [1, -1] + [1] * (x.shape.rank - 1))
            rows = xb[:, None] + a * (x - xb)[:, None]
            return tf.cast(tf.reshape(rows, tf.concat([[-1], tf.shape(x)[1:]], 0)), dtype)

        def weighted_gradient(rows, weights, target, m):
            """dF/dy times each row's quadrature weight, and the scores."""
            with tf.GradientTape() as tape:
                tape.watch(rows)
                y, out = probe(rows, training=False)
                scores = select_score(out, tf.repeat(target, m), target_fn)
                # Rows are independent: the gradient of the weighted sum is
                # each row's own dF/dy times its weight.
                total = tf.reduce_sum(scores * tf.tile(weights, [tf.shape(target)[0]]))
            g = tape.gradient(total, y)
            return y, (tf.zeros_like(y) if g is None else g), scores

        return rows_of, weighted_gradient

    def _reverse_step(self, target_fn):
        """One masked VJP per (row, filter), vectorised over the filters."""
        probe, sum_axes = self._probe, self._sum_axes
        rows_of, _ = self._common(target_fn)

        def step(x, xb, alphas, weights, target, filters):
            g_n, m = tf.shape(x)[0], tf.shape(alphas)[0]
            rows = rows_of(x, xb, alphas)
            with tf.GradientTape() as outer:
                outer.watch(rows)
                with tf.GradientTape() as inner:
                    inner.watch(rows)
                    y, out = probe(rows, training=False)
                    scores = select_score(out, tf.repeat(target, m), target_fn)
                    total = tf.reduce_sum(scores * tf.tile(weights, [g_n]))
                with outer.stop_recording():
                    g = inner.gradient(total, y)
                g = tf.zeros_like(y) if g is None else tf.stop_gradient(g)
                # s[n, c] = <g masked to filter c, y>: its gradient w.r.t. the
                # row is the VJP with the masked cotangent.
                s = tf.cast(g * y, tf.float32)
                s = tf.reduce_sum(s, axis=sum_axes) if sum_axes else s
                s = tf.gather(s, filters, axis=1)
            jac = tf.cast(outer.batch_jacobian(s, rows, experimental_use_pfor=True), tf.float32)
            shape = tf.concat([[g_n, m], tf.shape(jac)[1:]], 0)
            return tf.reduce_sum(tf.reshape(jac, shape), axis=1)

        spec = tf.TensorSpec((None,) + self._path_spec, tf.float32)
        vec, ints = tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.int32)
        return tf.function(step, input_signature=[spec, spec, vec, vec, ints, ints])

    def _forward_step(self, target_fn):
        """One JVP per (row, input group): every filter from the same JVPs."""
        head, sum_axes = self._head_to_y, [a + 1 for a in self._sum_axes]
        rows_of, weighted_gradient = self._common(target_fn)
        dtype = head.inputs[0].dtype
        group_shape, n_extra = self._group_shape, len(self._path_spec) - len(self._group_shape)
        n_groups = int(np.prod(group_shape))

        def step(x, xb, alphas, weights, target, filters, groups):
            g_n, m, k = tf.shape(x)[0], tf.shape(alphas)[0], tf.shape(groups)[1]
            rows = rows_of(x, xb, alphas)
            _, g, _ = weighted_gradient(rows, weights, target, m)
            # Tangent of group j: (x - x') on the group's features, else 0
            # (index -1 pads the groups of a chunk with zero tangents).
            onehot = tf.one_hot(groups, n_groups)
            mask = tf.reshape(onehot, tf.stack([g_n, k] + list(group_shape) + [1] * n_extra))
            tangents = tf.cast(mask * (x - xb)[:, None], dtype)
            full = tf.concat([[g_n, m, k], tf.shape(x)[1:]], 0)
            flat = tf.concat([[-1], tf.shape(x)[1:]], 0)
            rows_t = tf.reshape(tf.broadcast_to(tf.reshape(rows, tf.concat(
                [[g_n, m, 1], tf.shape(x)[1:]], 0)), full), flat)
            tangents = tf.reshape(tf.broadcast_to(tangents[:, None], full), flat)
            with tf.autodiff.ForwardAccumulator(rows_t, tangents) as acc:
                y_t = head(rows_t, training=False)
            jvp = tf.reshape(tf.cast(acc.jvp(y_t), tf.float32),
                             tf.concat([[g_n * m, k], tf.shape(y_t)[1:]], 0))
            s = tf.cast(g, tf.float32)[:, None] * jvp
            s = tf.reduce_sum(s, axis=sum_axes) if sum_axes else s
            s = tf.gather(s, filters, axis=2)  # (rows, k, F)
            s = tf.reduce_sum(tf.reshape(s, [g_n, m, k, -1]), axis=1)
            return tf.transpose(s, [0, 2, 1])  # (examples, F, k)

        spec = tf.TensorSpec((None,) + self._path_spec, tf.float32)
        vec, ints = tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.int32)
        return tf.function(step, input_signature=[
            spec, spec, vec, vec, ints, ints, tf.TensorSpec((None, None), tf.int32)])

    def _step_fn(self, target_fn, mode):
        key = (target_fn, mode)
        if key not in self._steps:
            build = self._forward_step if mode == "forward" else self._reverse_step
            self._steps[key] = build(target_fn)
        return self._steps[key]

    def _forward(self, z: np.ndarray) -> np.ndarray:
        return np.concatenate([self._forward_fn(z[i:i + 256]).numpy()
                               for i in range(0, len(z), 256)])

    # -- inputs ----------------------------------------------------------------

    def _path_inputs(self, inputs, baselines):
        x = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs)
        spec = self._raw_spec
        if x.ndim != len(spec) + 1 or any(s is not None and s != d for s, d in zip(spec, x.shape[1:])):
            raise ValueError(
                f"`inputs` must have shape (batch, {', '.join(str(s) for s in spec)}) "
                f"to match the model input. Received shape {x.shape}."
            )
        if x.shape[0] == 0:
            raise ValueError("`inputs` holds no examples (batch size 0).")
        if self._head is None and x.dtype.kind in "iub":
            raise ValueError(
                f"`inputs` have integer dtype {x.dtype}: token ids cannot be "
                "interpolated. Pass `start_layer=` (e.g. the Embedding layer)."
            )
        z = x.astype(np.float32) if self._head is None else np.asarray(self._head(x), np.float32)
        if not np.all(np.isfinite(z)):
            raise ValueError("`inputs` contains NaN or Inf values.")
        if baselines is None:
            zb = np.zeros_like(z)
        else:
            b = np.asarray(baselines.numpy() if hasattr(baselines, "numpy") else baselines)
            if self._head is not None and b.dtype.kind in "iu":
                b = np.asarray(self._head(np.broadcast_to(b, x.shape).copy()), np.float32)
            try:
                zb = np.ascontiguousarray(np.broadcast_to(b.astype(np.float32), z.shape))
            except ValueError:
                raise ValueError(
                    f"`baselines` with shape {b.shape} cannot be broadcast to the "
                    f"path's start, shape {z.shape}."
                ) from None
            if not np.all(np.isfinite(zb)):
                raise ValueError("`baselines` contains NaN or Inf values.")
        return z, zb

    def _filters(self, filters) -> np.ndarray:
        if filters is None:
            return np.arange(self.n_filters, dtype=np.int32)
        f = np.atleast_1d(np.asarray(filters))
        if f.ndim != 1 or f.size == 0 or f.dtype.kind not in "iu":
            raise ValueError(
                "`filters` must be a non-empty 1-D sequence of int filter "
                f"indices, or None for all. Received: filters={filters!r}."
            )
        bad = (f < 0) | (f >= self.n_filters)
        if bad.any():
            raise ValueError(
                f"`filters` out of range for layer {self.layer!r} with "
                f"{self.n_filters} filters (valid 0..{self.n_filters - 1}). "
                f"Received: {f[bad][:10].tolist()}."
            )
        return f.astype(np.int32)

    # -- running ---------------------------------------------------------------

    def __call__(self, inputs, filters=None, *, target=None, baselines=None,
                 n_steps: int = 50, method: str = "trapezoid",
                 batch_size: Optional[int] = None, mode: str = "auto") -> np.ndarray:
        """Eq. 2 maps; see ``neuron_conductance`` for the arguments."""
        if mode not in MODES:
            raise ValueError(f"Unknown `mode`: {mode!r}. Valid modes: {list(MODES)}.")
        rule = quadrature.make_rule(method, n_steps)
        budget = _check_batch_size(batch_size, self._path_spec)
        filt = self._filters(filters)
        z, zb = self._path_inputs(inputs, baselines)
        target_idx, target_fn = resolve_target(target, self._forward(z), z.shape[0])
        weights = point_weights(rule)
        keep = np.flatnonzero(weights != 0)
        alphas, weights = rule.alphas[keep].astype(np.float32), weights[keep].astype(np.float32)
        # Input groups (features, or tokens with a start layer) that differ
        # from the baseline: the others attribute exactly 0.
        moved = (z != zb).reshape(len(z), int(np.prod(self._group_shape)), -1).any(axis=2)
        if mode == "auto":
            mode = "forward" if moved.sum(axis=1).max() <= filt.size else "reverse"
        run = self._run_forward if mode == "forward" else self._run_reverse
        maps = run(z, zb, alphas, weights, target_idx, target_fn, filt, budget, moved)
        return maps.reshape((len(z), filt.size) + self._group_shape)

    def _run_reverse(self, z, zb, alphas, weights, target, target_fn, filt, budget, moved):
        step = self._step_fn(target_fn, "reverse")
        n, n_f = z.shape[0], filt.size
        f_chunk = min(n_f, budget)
        rows = max(1, budget // f_chunk)
        group = min(n, rows)
        m = max(1, min(alphas.size, rows // group))
        total = np.zeros((n, n_f) + z.shape[1:], np.float32)
        for f0 in range(0, n_f, f_chunk):
            fs = tf.constant(filt[f0:f0 + f_chunk])
            for b0 in range(0, n, group):
                sl = slice(b0, min(b0 + group, n))
                xg, bg, tg = tf.constant(z[sl]), tf.constant(zb[sl]), tf.constant(target[sl])
                for p0 in range(0, alphas.size, m):
                    part = step(xg, bg, alphas[p0:p0 + m], weights[p0:p0 + m], tg, fs)
                    total[sl, f0:f0 + f_chunk] += part.numpy()
        maps = total * (z - zb)[:, None]
        # With a start layer, attribute per input position: sum the start
        # layer's extra axes (the embedding axis of a text model).
        extra = len(self._path_spec) - len(self._group_shape)
        return maps.sum(axis=tuple(range(maps.ndim - extra, maps.ndim))) if extra else maps

    def _run_forward(self, z, zb, alphas, weights, target, target_fn, filt, budget, moved):
        step = self._step_fn(target_fn, "forward")
        n = z.shape[0]
        maps = np.zeros((n, filt.size, moved.shape[1]), np.float32)
        fs = tf.constant(filt)
        k_max = max(int(moved.sum(axis=1).max()), 1)
        rows = max(1, budget // k_max)
        group = min(n, rows)
        m = max(1, min(alphas.size, rows // group))
        for b0 in range(0, n, group):
            sl = slice(b0, min(b0 + group, n))
            active = [np.flatnonzero(r) for r in moved[sl]]
            k = max(max(a.size for a in active), 1)
            groups = np.full((len(active), k), -1, np.int32)
            for i, a in enumerate(active):
                groups[i, : a.size] = a
            xg, bg, tg = tf.constant(z[sl]), tf.constant(zb[sl]), tf.constant(target[sl])
            part = np.zeros((len(active), filt.size, k), np.float32)
            for p0 in range(0, alphas.size, m):
                part += step(xg, bg, alphas[p0:p0 + m], weights[p0:p0 + m], tg, fs,
                             tf.constant(groups)).numpy()
            for i, a in enumerate(active):
                maps[b0 + i][:, a] = part[i][:, : a.size]
        return maps


def _cached(model, layer, start_layer, pre_softmax, channel_axis) -> NeuronConductance:
    key = (layer, start_layer, bool(pre_softmax), channel_axis)
    try:
        per_model = _CACHE.setdefault(model, collections.OrderedDict())
    except TypeError:
        per_model = collections.OrderedDict()
    explainer = per_model.get(key)
    if explainer is None:
        explainer = NeuronConductance(model, layer, start_layer=start_layer,
                                      pre_softmax=pre_softmax, channel_axis=channel_axis)
        per_model[key] = explainer
        while len(per_model) > _CACHE_SIZE:
            per_model.popitem(last=False)
    else:
        per_model.move_to_end(key)
    return explainer


def neuron_conductance(
    model: keras.Model,
    inputs,
    layer: str,
    filters: Union[None, Sequence[int], np.ndarray],
    *,
    target=None,
    baselines=None,
    n_steps: int = 50,
    method: str = "trapezoid",
    start_layer: Optional[str] = None,
    batch_size: Optional[int] = None,
    pre_softmax: bool = False,
    channel_axis: int = -1,
    mode: str = "auto",
) -> np.ndarray:
    """Eq. 2 per filter: each input feature's attribution through each filter.

    Summing a filter's map over the input features gives that filter's
    conductance (``attr.per_filter(layer)``) up to quadrature error.

    Args:
        model: Functional or Sequential ``keras.Model``.
        inputs: ``(B, *input_shape)`` examples (token ids with ``start_layer``).
        layer: the hidden layer whose filters are explained.
        filters: filter (channel) indices, or None for all of them.
        target: None (top predicted class), int, ``(B,)`` ints, or a callable
            ``outputs (N, ...) -> (N,)``; as ``kc.conductance``.
        baselines: None (zeros; the zero embedding with ``start_layer``), an
            array broadcastable to the inputs, or token ids.
        n_steps, method: the integration rule, as ``kc.conductance``.
        start_layer: start the path at this layer's output; the maps are then
            per token, summed over the embedding axis.
        batch_size: most (path rows x filters) vector-Jacobian products per
            compiled call; bounds memory, not the result. Default: as many
            as keep the Jacobian block under 64 MB (16 to 1024; 111 for
            224 x 224 x 3 images, 1024 for a sentence of 56 x 50).
        pre_softmax: explain the logits of a softmax/sigmoid model.
        channel_axis: the layer output's filter axis (-1: channels-last).
        mode: ``"reverse"`` (one masked VJP per filter and path point),
            ``"forward"`` (one JVP per input group and path point, e.g. per
            token with ``start_layer``: all filters come from the same
            JVPs), or ``"auto"``: forward when an example has no more input
            groups that differ from the baseline than filters requested.
            Both give the same maps up to float rounding.

    Returns:
        float32 ``(B, len(filters), *input_shape[1:])``.
    """
    explainer = _cached(model, layer, start_layer, pre_softmax, channel_axis)
    return explainer(inputs, filters, target=target, baselines=baselines,
                     n_steps=n_steps, method=method, batch_size=batch_size, mode=mode)
