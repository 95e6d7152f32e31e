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

import warnings
from typing import Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance import quadrature
from keras_conductance.adapter import ModelAdapter, Prepared, options_key
from keras_conductance.cache import cached, compiled
from keras_conductance.engine import (
    PathEngine,
    budget_batch_size,
    check_batch_size,
    check_tolerance,
    resolve_jit,
    select_score,
)
from keras_conductance.explainer import warn_if_unchanged
from keras_conductance.targets import resolve_target

__all__ = ["MODES", "NeuronConductance", "neuron_conductance", "point_weights"]

MODES = ("auto", "reverse", "forward")

# Default VJPs (path rows x filters) per compiled call: as many as keep the
# Jacobian block they produce under this many floats (64 MB), within limits.
JACOBIAN_BUDGET = 2 ** 24
MIN_BATCH, MAX_BATCH = 16, 1024


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
    # The sliver [0, alphas[0]] (quadrature.START) belongs to the first
    # point, where the rule uses it (not "right", which never does).
    if w[0]:
        w[0] += rule.alphas[0]
    return w


def _check_batch_size(batch_size, path_shape) -> int:
    default = budget_batch_size(path_shape, JACOBIAN_BUDGET, MIN_BATCH, MAX_BATCH)
    return check_batch_size(batch_size, "path rows x filters", default)


class NeuronConductance:
    """Reusable Eq. 2 explainer for one layer (compiled step cached).

    Args:
        model: Functional or Sequential ``keras.Model`` (any inputs/outputs).
        layer: name of the hidden layer whose filters are explained (it need
            not be a cut: Eq. 2 is the flow through it either way).
        output: the explained output (name or index) of a multi-output model.
        start_layer: start the path at this layer's output (e.g. an
            ``Embedding``); attributions are then per token, summed over the
            start layer's extra axes (the embedding axis).
        interpolate: the model inputs that move along the path (default:
            the float inputs); one map per interpolated tensor.
        jit_compile: True, False or ``"auto"`` for the compiled steps.
        pre_softmax: explain the logits of a softmax/sigmoid output.
        channel_axis: axis of the layer output holding the filters.
    """

    def __init__(self, model: keras.Model, layer: str, *, output=None,
                 start_layer: Optional[str] = None, interpolate=None,
                 jit_compile: Union[bool, str] = "auto", pre_softmax: bool = False,
                 channel_axis: int = -1):
        if not isinstance(layer, str):
            raise TypeError(f"`layer` must be one layer name (str). Received: layer={layer!r}.")
        self.adapter = adapter = ModelAdapter(
            model, [layer], start_layer=start_layer, output=output, interpolate=interpolate,
            pre_softmax=pre_softmax, argument="layer")
        self._probe = adapter.probe
        self._n_path = len(adapter.path_tensors)
        self.jit_compile = resolve_jit(jit_compile)
        # The engine runs the probe and records a unit inside a layer (a tap).
        self._engine = PathEngine(self._probe, self._n_path, self.jit_compile, adapter.taps,
                                  adapter.unit_order)
        if len(adapter.taps):
            shape = (None,) + self._engine.layer_shapes(
                [t.shape[1:] for t in adapter.path_tensors],
                [t.shape[1:] for t in adapter.const_tensors])[0]
            self._head_to_y = None  # no graph to cut: the probe runs whole
        else:
            (y,) = adapter.tensors
            shape = tuple(y.shape)
            self._head_to_y = adapter.sub_model(adapter.path_tensors + adapter.const_tensors, y,
                                                "kc_neuron_head")
        rank = len(shape)
        self.channel_axis = channel_axis % rank if -rank <= channel_axis < rank else None
        if self.channel_axis in (None, 0):
            raise ValueError(
                f"`channel_axis` must name a non-batch axis of layer {layer!r}'s "
                f"output {shape}. Received: channel_axis={channel_axis}."
            )
        self.layer = layer
        self.n_filters = int(shape[self.channel_axis])
        self._sum_axes = [a for a in range(1, rank) if a != self.channel_axis]
        # Eq. 2 is reported per group of path features: each feature, or
        # with a start layer each input position (token), summing the start
        # layer's extra axes (the embedding axis).
        self._extra = [0] * self._n_path
        if start_layer is not None:
            start = tuple(adapter.path_tensors[0].shape[1:])
            ids = adapter.graph.input_ancestors(adapter.path_tensors[0])
            raw = tuple(adapter.graph.inputs[ids[0]].shape[1:]) if len(ids) == 1 else None
            if raw is None or tuple(start[: len(raw)]) != raw:
                raise ValueError(
                    f"The start layer {start_layer!r} output {start} does not "
                    f"extend the input shape {raw} (e.g. tokens (L,) -> "
                    "embeddings (L, E)), so its features cannot be summed per input position."
                )
            self._extra[0] = len(start) - len(raw)
        self._steps = {}

    def _unit(self, inputs):
        """The unit's value and the explained output on probe inputs."""
        (y,), out = self._engine.units(inputs)
        return y, out

    # -- compiled pieces ------------------------------------------------------

    def _common(self, target_fn):
        """Pieces shared by both modes: the path rows and the weighted dF/dy."""
        probe = self._probe
        dtypes = [t.dtype for t in probe.inputs[: self._n_path]]

        def rows_of(xs, xbs, alphas):
            rows = []
            for x, xb, dtype in zip(xs, xbs, dtypes):
                a = tf.reshape(alphas, [1, -1] + [1] * (x.shape.rank - 1))
                r = xb[:, None] + a * (x - xb)[:, None]
                rows.append(tf.cast(tf.reshape(r, tf.concat([[-1], tf.shape(x)[1:]], 0)), dtype))
            return rows

        def weighted_gradient(rows, consts, weights, target, m):
            """dF/dy times each row's quadrature weight, and the scores."""
            with tf.GradientTape() as tape:
                tape.watch(rows)
                y, out = self._unit(rows + consts)
                scores = select_score(out, tf.repeat(target, m), target_fn)
                # Rows are independent: the gradient of the weighted sum is
                # each row's own dF/dy times its weight.
                total = tf.reduce_sum(scores * tf.tile(weights, [tf.shape(target)[0]]))
            g = tape.gradient(total, y)
            return y, (tf.zeros_like(y) if g is None else g), scores

        return rows_of, weighted_gradient

    def _reverse_step(self, target_fn):
        """One masked VJP per (row, filter), vectorised over the filters."""
        sum_axes = self._sum_axes
        rows_of, _ = self._common(target_fn)

        def step(xs, xbs, consts, alphas, weights, target, filters):
            g_n, m = tf.shape(xs[0])[0], tf.shape(alphas)[0]
            rows = rows_of(xs, xbs, alphas)
            const_rows = [tf.repeat(c, m, axis=0) for c in consts]
            with tf.GradientTape(persistent=len(rows) > 1) as outer:
                outer.watch(rows)
                with tf.GradientTape() as inner:
                    inner.watch(rows)
                    y, out = self._unit(rows + const_rows)
                    scores = select_score(out, tf.repeat(target, m), target_fn)
                    total = tf.reduce_sum(scores * tf.tile(weights, [g_n]))
                with outer.stop_recording():
                    g = inner.gradient(total, y)
                g = tf.zeros_like(y) if g is None else tf.stop_gradient(g)
                # s[n, c] = <g masked to filter c, y>: its gradient w.r.t. the
                # row is the VJP with the masked cotangent.
                s = tf.cast(g * y, tf.float32)
                s = tf.reduce_sum(s, axis=sum_axes) if sum_axes else s
                s = tf.gather(s, tf.repeat(filters, m, axis=0), axis=1, batch_dims=1)
            sums = []
            for r in rows:
                jac = tf.cast(outer.batch_jacobian(s, r, experimental_use_pfor=True), tf.float32)
                shape = tf.concat([[g_n, m], tf.shape(jac)[1:]], 0)
                sums.append(tf.reduce_sum(tf.reshape(jac, shape), axis=1))
            return sums

        return step

    def _forward_step(self, target_fn):
        """One JVP per (row, input group): every filter from the same JVPs."""
        head, sum_axes = self._head_to_y, [a + 1 for a in self._sum_axes]
        rows_of, weighted_gradient = self._common(target_fn)
        dtype = self._probe.inputs[0].dtype
        n_extra = self._extra[0]

        def step(xs, xbs, consts, alphas, weights, target, filters, groups):
            (x,), (xb,) = xs, xbs
            group_shape = x.shape[1:len(x.shape) - n_extra]
            n_groups = int(np.prod(group_shape))
            g_n, m, k = tf.shape(x)[0], tf.shape(alphas)[0], tf.shape(groups)[1]
            (rows,) = rows_of(xs, xbs, alphas)
            const_rows = [tf.repeat(c, m, axis=0) for c in consts]
            _, g, _ = weighted_gradient([rows], const_rows, weights, target, m)
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
            consts_t = [tf.repeat(c, m * k, axis=0) for c in consts]
            with tf.autodiff.ForwardAccumulator(rows_t, tangents) as acc:
                y_t = self._unit([rows_t] + consts_t)[0] if head is None else \
                    head([rows_t] + consts_t, training=False)
            jvp = tf.reshape(tf.cast(acc.jvp(y_t), tf.float32),
                             tf.concat([[g_n * m, k], tf.shape(y_t)[1:]], 0))
            s = tf.cast(g, tf.float32)[:, None] * jvp
            s = tf.reduce_sum(s, axis=sum_axes) if sum_axes else s
            s = tf.gather(s, tf.repeat(filters, m, axis=0), axis=2, batch_dims=1)  # (rows, k, F)
            s = tf.reduce_sum(tf.reshape(s, [g_n, m, k, -1]), axis=1)
            return tf.transpose(s, [0, 2, 1])  # (examples, F, k)

        return step

    def _step_fn(self, target_fn, mode, prep: Prepared):
        """The compiled step for these input shapes (one trace each)."""
        shapes = tuple(x.shape[1:] for x in prep.xs)
        consts = tuple((c.shape[1:], c.dtype) for c in prep.consts)
        key = (target_fn, mode, shapes, consts)
        if key not in self._steps:
            build = self._forward_step if mode == "forward" else self._reverse_step
            vec, ints = tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.int32)
            xspec = [tf.TensorSpec((None,) + s, tf.float32) for s in shapes]
            cspec = [tf.TensorSpec((None,) + s, d) for s, d in consts]
            matrix = tf.TensorSpec((None, None), tf.int32)
            signature = [xspec, xspec, cspec, vec, vec, ints, matrix]
            if mode == "forward":
                signature.append(matrix)
            self._steps[key] = compiled(build(target_fn), input_signature=signature,
                                        jit_compile=self.jit_compile)
        return self._steps[key]


    # -- inputs ----------------------------------------------------------------

    def _filters(self, filters, n: int) -> np.ndarray:
        """``(B, k)`` int32 filter indices per example."""
        if filters is None:
            return np.broadcast_to(np.arange(self.n_filters, dtype=np.int32), (n, self.n_filters))
        f = np.asarray(filters)
        if f.ndim == 0:
            f = f[None]
        if f.ndim not in (1, 2) or f.size == 0 or f.dtype.kind not in "iu" or \
                (f.ndim == 2 and f.shape[0] != n):
            raise ValueError(
                "`filters` must be a non-empty 1-D sequence of int filter indices, "
                f"a (B={n}, k) int array per example, or None for all. "
                f"Received: filters={filters!r}."
            )
        bad = (f < 0) | (f >= self.n_filters)
        if bad.any():
            raise ValueError(
                f"`filters` out of range for layer {self.layer!r} with "
                f"{self.n_filters} filters (valid 0..{self.n_filters - 1}). "
                f"Received: {f[bad][:10].tolist()}."
            )
        return np.broadcast_to(f, (n, f.shape[-1])).astype(np.int32)

    # -- running ---------------------------------------------------------------

    def __call__(self, inputs, filters=None, *, target=None, baselines=None,
                 n_steps: int = 50, method: str = "trapezoid",
                 tolerance: Optional[float] = None, batch_size: Optional[int] = None,
                 mode: str = "auto", max_steps: int = 1024):
        """Eq. 2 maps; see ``neuron_conductance`` for the arguments."""
        if mode not in MODES:
            raise ValueError(f"Unknown `mode`: {mode!r}. Valid modes: {list(MODES)}.")
        quadrature.make_rule(method, n_steps)  # validates both
        tolerance = check_tolerance(tolerance)
        prep = self.adapter.prepare(inputs, baselines)
        budget = _check_batch_size(batch_size, prep.xs[0].shape[1:])
        filt = self._filters(filters, prep.n)
        # F at both ends: the target (top class at x), the F(x) = F(x')
        # check and the scale of tolerance=, from two forward passes.
        ends = [self._engine.forward(xs, prep.consts, budget) for xs in (prep.xs, prep.baselines)]
        if callable(target):
            target_idx, target_fn = np.full(prep.n, -1, np.int32), target
        else:
            target_idx, target_fn = resolve_target(target, ends[0], prep.n)
        f1, f0 = [np.asarray(select_score(tf.constant(f), tf.constant(target_idx), target_fn))
                  for f in ends]
        if len(prep.xs) > 1 or mode == "auto":
            moved = self._moved(prep)
            mode = "forward" if len(prep.xs) == 1 and \
                moved.sum(axis=1).max() <= filt.shape[1] else "reverse"
        args = (prep, target_idx, target_fn, filt, budget, mode, method)
        warn_if_unchanged(f1, f0, stacklevel=4)
        maps = self._maps(*args, n_steps)
        if tolerance is not None:
            maps = self._refine(maps, args, n_steps, tolerance, max_steps, np.abs(f1 - f0))
        return maps[0] if len(maps) == 1 else dict(zip(self.adapter.path_names, maps))

    def _moved(self, prep: Prepared) -> np.ndarray:
        """Input groups (features, or tokens with a start layer) that differ
        from the baseline: the others attribute exactly 0."""
        z, zb = prep.xs[0], prep.baselines[0]
        n_groups = int(np.prod(z.shape[1:z.ndim - self._extra[0]]))
        return (z != zb).reshape(len(z), n_groups, -1).any(axis=2)

    def _maps(self, prep, target, target_fn, filt, budget, mode, method, n_steps):
        rule = quadrature.make_rule(method, n_steps)
        weights = point_weights(rule)
        keep = np.flatnonzero(weights != 0)
        alphas, weights = rule.alphas[keep].astype(np.float32), weights[keep].astype(np.float32)
        if mode == "forward":
            return [self._run_forward(prep, alphas, weights, target, target_fn, filt, budget)]
        return self._run_reverse(prep, alphas, weights, target, target_fn, filt, budget)

    def _refine(self, maps, args, n_steps, tolerance, max_steps, scale):
        """Doubles n_steps for the examples whose maps still change by more
        than ``tolerance * |F(x) - F(x')|`` (summed per filter)."""
        # ``scale``: |F(x) - F(x')| per example, the scale of Eq. 2.
        todo, steps = np.arange(args[0].n), n_steps
        while todo.size and steps * 2 <= max_steps:
            steps *= 2
            sub = (args[0].take(todo), args[1][todo], args[2], args[3][todo]) + args[4:]
            finer = self._maps(*sub, steps)
            change = sum(np.abs(f.reshape(f.shape[0], f.shape[1], -1).sum(axis=2) -
                                m[todo].reshape(len(todo), f.shape[1], -1).sum(axis=2)).max(axis=1)
                         for f, m in zip(finer, maps))
            for m, f in zip(maps, finer):
                m[todo] = f
            todo = todo[change > tolerance * scale[todo]]
        if todo.size:
            warnings.warn(
                f"Neuron conductance did not reach tolerance={tolerance} for "
                f"{todo.size} of {args[0].n} examples within max_steps={max_steps}.",
                stacklevel=4)
        return maps

    def _run_reverse(self, prep, alphas, weights, target, target_fn, filt, budget):
        step = self._step_fn(target_fn, "reverse", prep)
        n, n_f = prep.n, filt.shape[1]
        f_chunk = min(n_f, budget)
        rows = max(1, budget // f_chunk)
        group = min(n, rows)
        m = max(1, min(alphas.size, rows // group))
        totals = [np.zeros((n, n_f) + x.shape[1:], np.float32) for x in prep.xs]
        for f0 in range(0, n_f, f_chunk):
            for b0 in range(0, n, group):
                sl = np.arange(b0, min(b0 + group, n))
                part = prep.take(sl)
                xg = [tf.constant(x) for x in part.xs]
                bg = [tf.constant(b) for b in part.baselines]
                cg = [tf.constant(c) for c in part.consts]
                tg, fs = tf.constant(target[sl]), tf.constant(filt[sl, f0:f0 + f_chunk])
                for p0 in range(0, alphas.size, m):
                    sums = step(xg, bg, cg, alphas[p0:p0 + m], weights[p0:p0 + m], tg, fs)
                    for total, value in zip(totals, sums):
                        total[sl, f0:f0 + f_chunk] += value.numpy()
        maps = []
        for total, x, xb, extra in zip(totals, prep.xs, prep.baselines, self._extra):
            values = total * (x - xb)[:, None]
            # With a start layer, attribute per input position: sum the start
            # layer's extra axes (the embedding axis of a text model).
            maps.append(values.sum(axis=tuple(range(values.ndim - extra, values.ndim)))
                        if extra else values)
        return maps

    def _run_forward(self, prep, alphas, weights, target, target_fn, filt, budget):
        step = self._step_fn(target_fn, "forward", prep)
        moved = self._moved(prep)
        n = prep.n
        maps = np.zeros((n, filt.shape[1], moved.shape[1]), np.float32)
        k_max = max(int(moved.sum(axis=1).max()), 1)
        rows = max(1, budget // k_max)
        group = min(n, rows)
        m = max(1, min(alphas.size, rows // group))
        for b0 in range(0, n, group):
            sl = np.arange(b0, min(b0 + group, n))
            active = [np.flatnonzero(r) for r in moved[sl]]
            k = max(max(a.size for a in active), 1)
            groups = np.full((len(active), k), -1, np.int32)
            for i, a in enumerate(active):
                groups[i, : a.size] = a
            part = prep.take(sl)
            xg = [tf.constant(x) for x in part.xs]
            bg = [tf.constant(b) for b in part.baselines]
            cg = [tf.constant(c) for c in part.consts]
            tg, fs = tf.constant(target[sl]), tf.constant(filt[sl])
            values = np.zeros((len(active), filt.shape[1], k), np.float32)
            for p0 in range(0, alphas.size, m):
                values += step(xg, bg, cg, alphas[p0:p0 + m], weights[p0:p0 + m], tg, fs,
                               tf.constant(groups)).numpy()
            for i, a in enumerate(active):
                maps[b0 + i][:, a] = values[i][:, : a.size]
        z = prep.xs[0]
        return maps.reshape((n, filt.shape[1]) + z.shape[1:z.ndim - self._extra[0]])



def neuron_conductance(
    model: keras.Model,
    inputs,
    layer: str,
    filters: Union[None, Sequence[int], np.ndarray],
    *,
    target=None,
    baselines=None,
    output: Union[None, int, str] = None,
    start_layer: Optional[str] = None,
    interpolate: Optional[Sequence[Union[str, int]]] = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    tolerance: Optional[float] = None,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    channel_axis: int = -1,
    mode: str = "auto",
):
    """Eq. 2 per filter: each input feature's attribution through each filter.

    Summing a filter's map over the input features gives that filter's
    conductance (``attr.per_filter(layer)``) up to quadrature error.

    Args:
        model: Functional or Sequential ``keras.Model`` (any inputs/outputs).
        inputs: examples in any structure ``kc.conductance`` takes (token
            ids with ``start_layer``).
        layer: the hidden layer whose filters are explained, or a unit inside
            a layer (``"block/sub/leaf"``, ``...:input``) as ``kc.conductance``.
        filters: filter (channel) indices ``(k,)``, per-example indices
            ``(B, k)`` (e.g. each example's top-k), or None for all.
        target: None (top predicted class), int, ``(B,)`` ints, or a callable
            ``outputs (N, ...) -> (N,)``; as ``kc.conductance``.
        baselines: as ``kc.conductance``.
        output: the explained output (name or index) of a multi-output model.
        start_layer: start the path at this layer's output; the maps are then
            per token, summed over the embedding axis.
        interpolate: the model inputs that move along the path (default:
            the float inputs).
        n_steps, method: the integration rule, as ``kc.conductance``.
        tolerance: double ``n_steps`` for the examples whose per-filter map
            totals still change by more than ``tolerance * |F(x) - F(x')|``.
        batch_size: most (path rows x filters) vector-Jacobian products per
            compiled call; bounds memory, not the result. Default: as many
            as keep the Jacobian block under 64 MB (16 to 1024; 111 for
            224 x 224 x 3 images, 1024 for a sentence of 56 x 50).
        jit_compile: True, False or ``"auto"`` (XLA where a GPU is visible).
        pre_softmax: explain the logits of a softmax/sigmoid output.
        channel_axis: the layer output's filter axis (-1: channels-last).
        mode: ``"reverse"`` (one masked VJP per filter and path point),
            ``"forward"`` (one JVP per input group and path point, e.g. per
            token with ``start_layer``: all filters come from the same
            JVPs), or ``"auto"``: forward when an example has no more input
            groups that differ from the baseline than filters requested.
            Both give the same maps up to float rounding; several
            interpolated inputs use reverse mode.

    Returns:
        float32 ``(B, k, *input_shape[1:])`` for one interpolated tensor;
        with several, a dict of such maps keyed by interpolated input name.
    """
    key = options_key(layer, output, start_layer, interpolate, str(jit_compile),
                      bool(pre_softmax), channel_axis)
    explainer = cached(model, "neuron", key, lambda: NeuronConductance(
        model, layer, output=output, start_layer=start_layer, interpolate=interpolate,
        jit_compile=jit_compile, pre_softmax=pre_softmax, channel_axis=channel_axis))
    return explainer(inputs, filters, target=target, baselines=baselines, n_steps=n_steps,
                     method=method, tolerance=tolerance, batch_size=batch_size, mode=mode)
