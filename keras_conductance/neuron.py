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

from typing import Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance import adaptive, quadrature
from keras_conductance.adapter import ModelAdapter, Prepared, options_key
from keras_conductance.cache import cached, compiled
from keras_conductance.engine import (
    PathEngine,
    budget_batch_size,
    check_target_callable,
    chunks,
    resolve_jit,
    select_score,
    target_spec,
)
from keras_conductance.arguments import ARGUMENTS, check, check_axis, check_indices
from keras_conductance.explainer import path_rule, warn_if_unchanged
from keras_conductance.targets import resolve_target

__all__ = ["MODES", "NeuronConductance", "neuron_conductance", "point_weights"]

MODES = ARGUMENTS["mode"].choices  # ("auto", "reverse", "forward")

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
    return _point_weights(rule.alphas[None], rule.left[None], rule.right[None])[0]


def _point_weights(a: np.ndarray, wl: np.ndarray, wr: np.ndarray) -> np.ndarray:
    """``(K, P)`` point weights of K Stieltjes grids ``a`` with interval
    weights ``wl``, ``wr`` (as ``quadrature.Rule``'s ``left``, ``right``)."""
    h = np.diff(a, axis=1)
    w = np.zeros(a.shape)
    w[:, 1:] += wr[:, 1:] * h
    w[:, :-1] += wl[:, 1:] * h
    # The sliver [0, alphas[0]] (quadrature.START) belongs to the first point
    # of a grid that starts the path, where the rule uses it (not "right",
    # which never does).
    w[:, 0] += np.where((w[:, 0] != 0) & (a[:, 0] <= quadrature.START), a[:, 0], 0.0)
    return w


def _batch_size(batch_size: Optional[int], path_shape) -> int:
    """``batch_size`` (checked), or the rows that keep a Jacobian block
    within ``JACOBIAN_BUDGET``."""
    return check("batch_size", batch_size) or budget_batch_size(
        path_shape, JACOBIAN_BUDGET, MIN_BATCH, MAX_BATCH)


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
        self.channel_axis = check_axis("channel_axis", channel_axis, rank, layer, shape[1:])
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
        """Pieces shared by both modes: the path rows and dF/dy."""
        probe = self._probe
        dtypes = [t.dtype for t in probe.inputs[: self._n_path]]

        def rows_of(xs, xbs, alphas):
            """``(g_n * m, *S)`` rows for per-example points ``alphas`` (g_n, m)."""
            return [tf.cast(PathEngine._path(x, xb, alphas), d)
                    for x, xb, d in zip(xs, xbs, dtypes)]

        def gradient(rows, consts, target, m):
            """dF/dy per row (rows are independent: the gradient of the sum is
            each row's own), and the scores."""
            with tf.GradientTape() as tape:
                tape.watch(rows)
                y, out = self._unit(rows + consts)
                scores = select_score(out, tf.repeat(target, m, axis=0), target_fn)
                total = tf.reduce_sum(scores)
            g = tape.gradient(total, y)
            return y, (tf.zeros_like(y) if g is None else g), scores

        return rows_of, gradient

    @staticmethod
    def _weighted(per_point, weights, g_n, m):
        """``(W, g_n, *R)``: per-point values ``(g_n * m, *R)`` summed over each
        example's points with each of the ``W`` weight rows ``(W, g_n, m)``
        (one row for a fixed rule; fine and coarse for a panel)."""
        shaped = tf.reshape(per_point, tf.concat([[g_n, m], tf.shape(per_point)[1:]], 0))
        rank = shaped.shape.rank
        w = tf.reshape(weights, tf.concat([tf.shape(weights), [1] * (rank - 2)], 0))
        return tf.reduce_sum(w * shaped[None], axis=2)

    def _reverse_step(self, target_fn):
        """One masked VJP per (row, filter), vectorised over the filters."""
        sum_axes = self._sum_axes
        rows_of, _ = self._common(target_fn)

        def step(xs, xbs, consts, alphas, weights, target, filters):
            g_n, m = tf.shape(xs[0])[0], tf.shape(alphas)[1]
            rows = rows_of(xs, xbs, alphas)
            const_rows = [tf.repeat(c, m, axis=0) for c in consts]
            with tf.GradientTape(persistent=len(rows) > 1) as outer:
                outer.watch(rows)
                with tf.GradientTape() as inner:
                    inner.watch(rows)
                    y, out = self._unit(rows + const_rows)
                    scores = select_score(out, tf.repeat(target, m, axis=0), target_fn)
                    total = tf.reduce_sum(scores)
                with outer.stop_recording():
                    g = inner.gradient(total, y)
                g = tf.zeros_like(y) if g is None else tf.stop_gradient(g)
                # s[n, c] = <g masked to filter c, y>: its gradient w.r.t. the
                # row is the VJP with the masked cotangent.
                s = tf.cast(g * y, tf.float32)
                s = tf.reduce_sum(s, axis=sum_axes) if sum_axes else s
                s = tf.gather(s, tf.repeat(filters, m, axis=0), axis=1, batch_dims=1)
            sums = [self._weighted(tf.cast(outer.batch_jacobian(s, r, experimental_use_pfor=True),
                                           tf.float32), weights, g_n, m) for r in rows]
            return sums, tf.reshape(scores, [g_n, m])

        return step

    def _forward_step(self, target_fn):
        """One JVP per (row, input group): every filter from the same JVPs."""
        head, sum_axes = self._head_to_y, [a + 1 for a in self._sum_axes]
        rows_of, gradient = self._common(target_fn)
        dtype = self._probe.inputs[0].dtype
        n_extra = self._extra[0]

        def step(xs, xbs, consts, alphas, weights, target, filters, groups):
            (x,), (xb,) = xs, xbs
            group_shape = x.shape[1:len(x.shape) - n_extra]
            n_groups = int(np.prod(group_shape))
            g_n, m, k = tf.shape(x)[0], tf.shape(alphas)[1], tf.shape(groups)[1]
            (rows,) = rows_of(xs, xbs, alphas)
            const_rows = [tf.repeat(c, m, axis=0) for c in consts]
            _, g, scores = gradient([rows], const_rows, target, m)
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
            s = self._weighted(s, weights, g_n, m)  # (W, examples, k, F)
            return [tf.transpose(s, [0, 1, 3, 2])], tf.reshape(scores, [g_n, m])

        return step

    def _step_fn(self, target_fn, mode, prep: Prepared):
        """The compiled step for these input shapes (one trace each)."""
        shapes = tuple(x.shape[1:] for x in prep.xs)
        consts = tuple((c.shape[1:], c.dtype) for c in prep.consts)
        key = (getattr(target_fn, "trace_key", target_fn), mode, shapes, consts)
        if key not in self._steps:
            build = self._forward_step if mode == "forward" else self._reverse_step
            xspec = [tf.TensorSpec((None,) + s, tf.float32) for s in shapes]
            cspec = [tf.TensorSpec((None,) + s, d) for s, d in consts]
            matrix = tf.TensorSpec((None, None), tf.int32)
            signature = [xspec, xspec, cspec, tf.TensorSpec((None, None), tf.float32),
                         tf.TensorSpec((None, None, None), tf.float32),
                         target_spec(target_fn), matrix]
            if mode == "forward":
                signature.append(matrix)
            self._steps[key] = compiled(build(target_fn), input_signature=signature,
                                        jit_compile=self.jit_compile)
        return self._steps[key]

    # -- inputs ----------------------------------------------------------------

    # -- running ---------------------------------------------------------------

    def __call__(self, inputs, filters=None, *, target=None, baselines=None,
                 n_steps: int = 50, method: str = "trapezoid",
                 tolerance: Optional[float] = None, batch_size: Optional[int] = None,
                 mode: str = "auto", max_steps: int = 1024):
        """Eq. 2 maps; see ``neuron_conductance`` for the arguments."""
        mode = check("mode", mode)
        rule = path_rule(method, n_steps, tolerance, max_steps)
        tolerance = getattr(rule, "tolerance", None)
        prep = self.adapter.prepare(inputs, baselines)
        budget = _batch_size(batch_size, prep.xs[0].shape[1:])
        filt = check_indices("filters", filters, prep.n, self.n_filters, self.layer)
        # F at both ends: the target (top class at x) and the F(x) = F(x')
        # check, from two forward passes.
        ends = [self._engine.forward(xs, prep.consts, budget) for xs in (prep.xs, prep.baselines)]
        if callable(target):
            check_target_callable(target, self.adapter.explained.shape)
            target_idx, target_fn = np.full(prep.n, -1, np.int32), target
        else:
            target_idx, target_fn = resolve_target(target, ends[0], prep.n)
        f1, f0 = [np.asarray(select_score(tf.constant(f), tf.constant(target_idx), target_fn))
                  for f in ends]
        if len(prep.xs) > 1 or mode == "auto":
            moved = self._moved(prep)
            mode = "forward" if len(prep.xs) == 1 and \
                moved.sum(axis=1).max() <= filt.shape[1] else "reverse"
        warn_if_unchanged(f1, f0)
        work = _Work(self, prep, target_idx, target_fn, filt, mode)
        if tolerance is None:
            weights = point_weights(rule)
            keep = np.flatnonzero(weights != 0)
            alphas = np.broadcast_to(rule.alphas[keep], (prep.n, keep.size))
            maps, _ = work.run(np.arange(prep.n), alphas,
                               np.broadcast_to(weights[keep], (1, prep.n, keep.size)), budget)
            maps = [m[0] for m in maps]
        else:
            adaptive.integrate(work, rule, budget, lambda totals, diff: np.zeros(prep.n), 0,
                               desc="neuron conductance")
            maps = work.totals()
        return maps[0] if len(maps) == 1 else dict(zip(self.adapter.path_names, maps))

    def _moved(self, prep: Prepared) -> np.ndarray:
        """Input groups (features, or tokens with a start layer) that differ
        from the baseline: the others attribute exactly 0."""
        z, zb = prep.xs[0], prep.baselines[0]
        n_groups = int(np.prod(z.shape[1:z.ndim - self._extra[0]]))
        return (z != zb).reshape(len(z), n_groups, -1).any(axis=2)


def panel_point_weights(alphas: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``(2, K, PANEL + 1)`` point weights of panels: the fine rule on every
    point and the coarse one on every other (``point_weights`` per panel)."""
    fine = _point_weights(alphas, left, right)
    coarse = np.zeros(alphas.shape)
    coarse[:, ::2] = _point_weights(alphas[:, ::2], left[:, ::2], right[:, ::2])
    return np.stack([fine, coarse])


class _Work(adaptive.Panels):
    """Eq. 2 maps of one call, streamed: any examples' points (a fixed rule's,
    or adaptive panels) in chunks of at most ``batch_size`` rows, filters
    (reverse mode) or input groups (forward mode) counting as rows."""

    def __init__(self, explainer: NeuronConductance, prep: Prepared, target, target_fn, filt,
                 mode: str):
        self.explainer, self.prep, self.mode = explainer, prep, mode
        self.target, self.target_fn, self.filt = target, target_fn, filt
        self.n = prep.n
        self.channel_axes = [1] * len(prep.xs)  # maps are (n, filters, *features)
        self.acc = None

    def run(self, ex, alphas, weights, batch_size, progress=None):
        """Maps of work items: item i is example ``ex[i]`` at points
        ``alphas[i]`` with point weights ``weights[:, i]`` (W rows).

        Returns:
            per interpolated tensor ``(W, K, k, *features)`` float32, and
            the scores ``(K, P)``.
        """
        if self.mode == "forward":
            return self._forward(ex, alphas, weights, batch_size, progress)
        return self._reverse(ex, alphas, weights, batch_size, progress)

    def _reverse(self, ex, alphas, weights, batch_size, progress):
        explainer, filt = self.explainer, self.filt
        step = explainer._step_fn(self.target_fn, "reverse", self.prep)
        n_f, n_points = filt.shape[1], alphas.shape[1]
        f_chunk = min(n_f, batch_size)
        totals = [np.zeros((weights.shape[0], ex.size, n_f) + x.shape[1:], np.float32)
                  for x in self.prep.xs]
        scores = np.zeros(alphas.shape, np.float32)
        for f0 in range(0, n_f, f_chunk):
            for sl, xg, bg, cg, tg, points in chunks(self.prep, ex, self.target, n_points,
                                                     f_chunk, batch_size):
                fs = tf.constant(filt[ex[sl], f0:f0 + f_chunk])
                for p in points:
                    sums, sc = step(xg, bg, cg, tf.constant(alphas[sl, p], tf.float32),
                                    tf.constant(weights[:, sl, p], tf.float32), tg, fs)
                    for total, value in zip(totals, sums):
                        total[:, sl, f0:f0 + f_chunk] += value.numpy()
                    scores[sl, p] = sc.numpy()
                    if progress is not None:
                        progress(int(sl.size * (p.stop - p.start)))
        maps = []
        for total, x, xb, extra in zip(totals, self.prep.xs, self.prep.baselines,
                                       explainer._extra):
            values = total * (x - xb)[ex][None, :, None]
            # With a start layer, attribute per input position: sum the start
            # layer's extra axes (the embedding axis of a text model).
            maps.append(values.sum(axis=tuple(range(values.ndim - extra, values.ndim)))
                        if extra else values)
        return maps, scores

    def _forward(self, ex, alphas, weights, batch_size, progress):
        explainer, filt = self.explainer, self.filt
        step = explainer._step_fn(self.target_fn, "forward", self.prep)
        moved = explainer._moved(self.prep)[ex]
        n_points, n_f = alphas.shape[1], filt.shape[1]
        maps = np.zeros((weights.shape[0], ex.size, n_f, moved.shape[1]), np.float32)
        scores = np.zeros(alphas.shape, np.float32)
        k_max = max(int(moved.sum(axis=1).max()), 1)
        for sl, xg, bg, cg, tg, points in chunks(self.prep, ex, self.target, n_points, k_max,
                                                 batch_size):
            active = [np.flatnonzero(r) for r in moved[sl]]
            k = max(max(a.size for a in active), 1)
            groups = np.full((len(active), k), -1, np.int32)
            for i, a in enumerate(active):
                groups[i, : a.size] = a
            fs, gs = tf.constant(filt[ex[sl]]), tf.constant(groups)
            values = np.zeros((weights.shape[0], sl.size, n_f, k), np.float32)
            for p in points:
                (part,), sc = step(xg, bg, cg, tf.constant(alphas[sl, p], tf.float32),
                                   tf.constant(weights[:, sl, p], tf.float32), tg, fs, gs)
                values += part.numpy()
                scores[sl, p] = sc.numpy()
                if progress is not None:
                    progress(int(sl.size * (p.stop - p.start)))
            for i, a in enumerate(active):
                maps[:, sl[i]][:, :, a] = values[:, i][:, :, : a.size]
        z = self.prep.xs[0]
        shape = z.shape[1:z.ndim - explainer._extra[0]]
        return [maps.reshape(maps.shape[:3] + shape)], scores

    # -- the adaptive rule's integrand (adaptive.Panels) ---------------------------

    def evaluate(self, ex, a, b, split, alphas, left, right, batch_size, progress):
        weights = panel_point_weights(alphas, left, right)
        err, scores = [None] * len(self.prep.xs), np.zeros(alphas.shape, np.float32)
        # A round's panels in blocks of as many as there are examples, so
        # that the maps in flight stay about twice the result's size.
        for start in range(0, ex.size, self.n):
            idx = np.arange(start, min(start + self.n, ex.size))
            maps, scores[idx] = self.run(ex[idx], alphas[idx], weights[:, idx], batch_size,
                                         progress)
            if self.acc is None:
                self.acc = [np.zeros((self.n,) + m.shape[2:], np.float32) for m in maps]
            for k, (acc, (fine, coarse)) in enumerate(zip(self.acc, maps)):
                replaced = split[idx].reshape((-1,) + (1,) * (fine.ndim - 1))
                np.add.at(acc, ex[idx], fine - replaced * coarse)
                err[k] = adaptive.fold(err[k], idx, ex.size, adaptive.per_filter(fine - coarse, 1))
        return err, scores

    def totals(self):
        return self.acc


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
    max_steps: int = 1024,
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
        tolerance: integrate adaptively (as ``kc.conductance``) until the
            estimated L1 error of the per-filter map totals is within
            ``tolerance`` of their L1 norm (or of |F(x) - F(x')| if larger).
        max_steps: most steps per example that ``tolerance`` may reach.
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
    # Checked before they become a cache key: "yes" must not find True's explainer.
    key = options_key(layer, output, start_layer, interpolate, check("jit_compile", jit_compile),
                      check("pre_softmax", pre_softmax), channel_axis)
    explainer = cached(model, "neuron", key, lambda: NeuronConductance(
        model, layer, output=output, start_layer=start_layer, interpolate=interpolate,
        jit_compile=jit_compile, pre_softmax=pre_softmax, channel_axis=channel_axis))
    return explainer(inputs, filters, target=target, baselines=baselines, n_steps=n_steps,
                     method=method, tolerance=tolerance, batch_size=batch_size, mode=mode,
                     max_steps=max_steps)
