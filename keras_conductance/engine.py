"""The numeric core: streamed path gradients for many layers in one pass.

Inputs are tensors and a *probe* model (built by ``adapter.py``) that maps a
point on the path -- one or several interpolated tensors, plus inputs held
constant at every point -- to the outputs of every requested layer plus the
explained output. For each chunk of
path points the compiled step runs one forward and one backward pass, takes
dF/dy for every requested layer from the same tape, and folds the chunk into
float32 running sums. Nothing here knows about layer names or Keras
callbacks; ``explainer.py`` decides what to compute. ``PathEngine.run``
streams chunks from Python (with progress); ``PathEngine.integrate`` is the
same integration as one in-graph loop, for ``tf.function``/``strategy.run``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance.arguments import check, message
from keras_conductance.cache import compiled
from keras_conductance.quadrature import Rule
from keras_conductance.taps import TapRecorder, trace_once

__all__ = ["PathSums", "PathEngine", "budget_batch_size", "check_scores_shape", "check_target_callable", "chunked_rule", "chunks", "plan", "points_per_chunk", "resolve_jit", "select_score", "target_spec"]

TargetFn = Callable[[tf.Tensor], tf.Tensor]


def resolve_jit(jit_compile: Union[bool, str]) -> bool:
    """Turns ``jit_compile="auto"`` into True/False for this machine.

    The rule: XLA when a GPU or TPU is visible, plain TensorFlow on CPU. On
    CPU, TensorFlow's oneDNN kernels beat XLA for convolutions (XLA measured
    several times slower on MobileNet's depthwise convolutions), while on
    accelerators XLA's fusion usually wins.
    """
    jit_compile = check("jit_compile", jit_compile)
    if isinstance(jit_compile, bool):
        return jit_compile
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices(
        "TPU"
    )
    return bool(accelerators)


@dataclasses.dataclass
class PathSums:
    """Raw results of one pass, all numpy float32.

    Attributes:
        conductance: per layer ``(B, *Y)``: the quadrature of g dy.
        internal_influence: per layer ``(B, *Y)``: the quadrature of g dalpha.
        activation: per layer ``(B, *Y)``: y at the input (alpha = 1).
        gradient: per layer ``(B, *Y)``: dF/dy at the input (alpha = 1).
        path_scores: ``(B, P)``: the explained score F at every path point.
    """

    conductance: List[np.ndarray]
    internal_influence: List[np.ndarray]
    activation: List[np.ndarray]
    gradient: List[np.ndarray]
    path_scores: np.ndarray


def check_scores_shape(shape: tf.TensorShape, outputs_shape: tf.TensorShape) -> None:
    """A target callable's scores must be ``(N,)`` (or ``(N, 1)``)."""
    if shape.rank is None or shape.rank == 0 or shape.rank > 2 or (
            shape.rank == 2 and shape[1] != 1) or (
            shape[0] is not None and outputs_shape[0] is not None
            and shape[0] != outputs_shape[0]):
        shown = tuple(shape) if shape.rank is not None else "unknown"
        raise ValueError(message(
            "target", "a callable that returns one score per example, shape (N,)",
            got=f"a callable that returned shape {shown} for outputs of shape "
            f"{tuple(outputs_shape)}", hint="E.g. `target=lambda outputs: outputs[:, 2]`."))


def check_target_callable(target_fn: TargetFn, output_shape) -> None:
    """Calls a ``target`` callable once, eagerly, on zeros shaped like two
    examples of the explained output, so that a wrong shape is refused in
    plain words before any tracing. A callable that fails on zeros (it
    indexes a position an open axis of length 1 lacks) is left to the run."""
    shape = [2] + [1 if d is None else int(d) for d in tuple(output_shape)[1:]]
    try:
        scores = tf.convert_to_tensor(target_fn(tf.zeros(shape)))
    except Exception:  # noqa: BLE001 -- judged by the real call instead
        return
    check_scores_shape(scores.shape, tf.TensorShape(shape))


def select_score(outputs: tf.Tensor, target: tf.Tensor, target_fn: Optional[TargetFn]):
    """The explained score per row, float32 ``(N,)``."""
    outputs = tf.cast(outputs, tf.float32)
    if hasattr(target_fn, "trace_key"):  # a token target: (position, token) pairs as data
        return target_fn(outputs, target)
    if target_fn is not None:
        scores = tf.convert_to_tensor(target_fn(outputs))
        # Checked while tracing too (``check_target_callable`` checks it
        # before, eagerly), so a wrong shape is never a reshape failure deep
        # inside the compiled step.
        check_scores_shape(scores.shape, outputs.shape)
        return tf.reshape(tf.cast(scores, tf.float32), [-1])
    if outputs.shape.rank == 1:
        return outputs
    flat = tf.reshape(outputs, [tf.shape(outputs)[0], -1])
    # A one-hot product selects each row's own class; it compiles under XLA
    # for any number of classes without a batched gather.
    return tf.reduce_sum(flat * tf.one_hot(target, tf.shape(flat)[1]), axis=1)


def target_spec(target_fn) -> tf.TensorSpec:
    """The compiled step's target: ``(N,)`` output indices, or a token
    target's ``(N, J, 2)`` (position, token) pairs."""
    if hasattr(target_fn, "trace_key"):
        return tf.TensorSpec((None, len(target_fn.signs), 2), tf.int32)
    return tf.TensorSpec((None,), tf.int32)


def budget_batch_size(row_shape, budget: int, low: int, high: int) -> int:
    """Rows per call that keep ``rows x prod(row_shape)`` floats near ``budget``.

    An axis left open (``None``: a sequence of any length) counts as 512.
    """
    size = int(np.prod([512 if d is None else d for d in row_shape]))
    return int(np.clip(budget // max(size, 1), low, high))


def points_per_chunk(n_points: int, most: int) -> int:
    """Points per chunk: as few chunks as ``most`` allows, split evenly.

    51 points with room for 64 rows of 4 examples (16 points) make 4 chunks
    of 13 points (52 computed), not 4 of 16 (64 computed): padding is at most
    one point per chunk.
    """
    n_chunks = -(-n_points // max(1, min(most, n_points)))
    return -(-n_points // n_chunks)


def plan(n_items: int, n_points: int, rows_per_point: int, batch_size: int):
    """``(items per call, points per chunk)``: the one chunking rule.

    A call holds at most ``batch_size`` rows, one per (item, path point,
    row of that point): the filters of a masked-VJP chunk, the input groups
    of a JVP chunk, 1 for conductance. As many items as fit, then the
    points split evenly (``points_per_chunk``); at least 1 x 1.
    """
    per_item = max(1, batch_size // max(1, rows_per_point))
    group = max(1, min(n_items, per_item))
    return group, points_per_chunk(n_points, max(1, per_item // group))


def chunks(prepared, items: np.ndarray, target: np.ndarray, n_points: int,
           rows_per_point: int, batch_size: int, pad: bool = False,
           fixed: bool = False):
    """The one streaming loop: groups of work items, as tensors, and their
    path points in chunks, sized by ``plan``.

    Args:
        prepared: ``adapter.Prepared`` of all examples.
        items: int ``(K,)`` the example of each work item (an example, or a
            panel of one).
        target: the examples' targets, indexed by ``items``.
        n_points, rows_per_point, batch_size: as ``plan``.
        pad: repeat a short last group's last item, so that every group has
            the same shape (one trace, one XLA compilation).
        fixed: with ``pad``, groups of as many items as ``batch_size``
            allows whatever the number of items (the same shape in every
            adaptive round, where the number of panels shrinks).

    Yields:
        ``(positions in items, xs, baselines, consts, target, point slices)``;
        the tensors hold the padded group.
    """
    group, m = plan(items.size, n_points, rows_per_point, batch_size)
    if pad and fixed:
        group = max(1, batch_size // max(1, rows_per_point * min(m, n_points)))
    points = [slice(p0, min(p0 + m, n_points)) for p0 in range(0, n_points, m)]
    for start in range(0, items.size, group):
        pos = np.arange(start, min(start + group, items.size))
        full = np.concatenate([pos, np.full(group - pos.size, pos[-1])]) if pad else pos
        part = prepared.take(items[full])
        yield (pos, [tf.constant(x) for x in part.xs], [tf.constant(b) for b in part.baselines],
               [tf.constant(c) for c in part.consts],
               tf.constant(np.asarray(target)[items[full]].astype(np.int32)), points)


def chunked_rule(rule: Rule, m: int):
    """The rule's alphas, left and right weights as float32 ``(n_chunks, m)``.

    The last chunk is padded by repeating alpha = 1 with zero weight: every
    chunk has the same shape (one trace, one XLA compilation), padded
    intervals have zero length, and the last carried point stays the input.
    """
    n_chunks = -(-rule.n_points // m)
    pad = n_chunks * m - rule.n_points

    def padded(values, fill):
        full = np.concatenate([values, np.full(pad, fill)]).astype(np.float32)
        return full.reshape(n_chunks, m)

    return padded(rule.alphas, 1.0), padded(rule.left, 0.0), padded(rule.right, 0.0)


def _per_point(t, k, p):
    """Rows ``(k * p, *Y)`` as float32 ``(k, p, *Y)`` (sums in float32)."""
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, tf.concat([[k, p], tf.shape(t)[1:]], 0))


def _stieltjes(y, g, a, wl, wr):
    """Stieltjes sums over the steps of ``(k, p, *Y)`` points: conductance
    (of g dy) and internal influence (of g dalpha), each ``(k, *Y)``."""
    rank = y.shape.rank
    w = _along(wl[:, 1:], rank) * g[:, :-1] + _along(wr[:, 1:], rank) * g[:, 1:]
    da = _along(a[:, 1:] - a[:, :-1], rank)
    return tf.reduce_sum(w * (y[:, 1:] - y[:, :-1]), axis=1), tf.reduce_sum(w * da, axis=1)


def _along(w, rank):
    """``(K, m)`` weights shaped to multiply ``(K, m, *Y)`` of that rank."""
    return tf.reshape(w, tf.concat([tf.shape(w), [1] * (rank - 2)], 0))


class PathEngine:
    """Compiled chunk steps over a probe model.

    Args:
        probe: ``keras.Model`` mapping ``[*path tensors (N, *S_i), *held
            constant inputs (N, *C_j)]`` to ``[y_1, ..., y_K, outputs]``.
        n_path: how many of the probe's inputs are interpolated (the first).
        jit_compile: whether to compile the step with XLA.
    """

    def __init__(self, probe: keras.Model, n_path: int, jit_compile: bool,
                 taps: Optional[TapRecorder] = None, order: Optional[List[int]] = None):
        self.probe = probe
        self.n_path = n_path
        self.jit_compile = jit_compile
        self.taps = taps if taps is not None else TapRecorder([])
        self.n_layers = len(probe.outputs) - 1 + len(self.taps)
        self.order = list(range(self.n_layers)) if order is None else list(order)
        self._dtypes = [t.dtype for t in probe.inputs]
        self._steps = {}
        self._forwards = {}
        self._shapes = {}

    # -- compiled functions -------------------------------------------------

    def layer_shapes(self, path_shapes, const_shapes) -> List[tuple]:
        """Per-example shapes of the requested units for these input shapes.

        Read from a trace of the probe (no computation), which also checks
        that every tapped sublayer runs exactly once.
        """
        key = (tuple(map(tuple, path_shapes)), tuple(map(tuple, const_shapes)))
        if key not in self._shapes:
            xspec, cspec = self._specs(path_shapes, const_shapes)
            found = trace_once(lambda xs, consts: self.units(self._call_rows(xs) + list(consts)),
                               [xspec, cspec])
            self._shapes[key] = [tuple(y.shape[1:]) for y in found]
        return list(self._shapes[key])

    def _call_rows(self, rows):
        return [tf.cast(r, d) for r, d in zip(rows, self._dtypes)]

    def units(self, inputs):
        """The probe on ``inputs``: requested unit values (user order) and
        the explained output. Tapped sublayers are recorded during the call."""
        with self.taps.recording() as record:
            outs = self._probe(inputs)
        ys = list(outs[:-1]) + (record.values() if len(self.taps) else [])
        return [ys[i] for i in self.order], outs[-1]

    def _specs(self, path_shapes, const_shapes):
        xspec = [tf.TensorSpec((None,) + tuple(s), tf.float32) for s in path_shapes]
        cspec = [tf.TensorSpec((None,) + tuple(s), d)
                 for s, d in zip(const_shapes, self._dtypes[self.n_path:])]
        return xspec, cspec

    def _probe(self, inputs) -> list:
        """The probe's outputs as a list (Keras returns a lone tensor when
        every requested unit is tapped and the output is all it yields)."""
        outs = self.probe(inputs, training=False)
        return list(outs) if isinstance(outs, (list, tuple)) else [outs]

    def _call(self, rows, consts):
        """The probe on path rows (float32, cast to its dtypes) and constants."""
        return self._probe(self._call_rows(rows) + list(consts))

    @staticmethod
    def _path(x, xb, alphas):
        """Path rows ``(B * m, *S)``, example-major: row = b * m + k.
        ``alphas``: ``(m,)`` shared, or ``(B, m)`` per example."""
        lead = [1, -1] if len(alphas.shape) == 1 else [tf.shape(alphas)[0], -1]
        a = tf.reshape(alphas, lead + [1] * (x.shape.rank - 1))
        rows = xb[:, None] + a * (x - xb)[:, None]
        return tf.reshape(rows, tf.concat([[-1], tf.shape(x)[1:]], 0))

    def _gradients(self, rows, consts, target, target_fn, tangents=None):
        """One forward and one backward pass over ``rows`` for all layers."""
        rows_in = self._call_rows(rows)
        with tf.GradientTape() as tape:
            tape.watch(rows_in)
            if tangents is None:
                ys, out = self.units(rows_in + list(consts))
                ydots = None
            else:
                primals_t = self._call_rows(tangents)
                with tf.autodiff.ForwardAccumulator(rows_in, primals_t) as acc:
                    ys, out = self.units(rows_in + list(consts))
                ydots = [acc.jvp(y) for y in ys]
            scores = select_score(out, target, target_fn)
            # Rows are independent (inference mode), so the gradient of the
            # sum gives every row's own dF/dy in one backward pass. The sum
            # must be taken under the tape, or graph mode loses the chain.
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, ys)
        grads = [tf.zeros_like(y) if g is None else g for g, y in zip(grads, ys)]
        return ys, grads, ydots, scores

    def _step_body(self, target_fn, derivative):
        def step(xs, xbs, consts, alphas, left, right, prev_alpha, target, carry_y,
                 carry_g, acc_c, acc_i):
            batch, m = tf.shape(xs[0])[0], tf.shape(alphas)[0]
            rows = [self._path(x, xb, alphas) for x, xb in zip(xs, xbs)]
            tangents = [tf.repeat(x - xb, m, axis=0) for x, xb in zip(xs, xbs)] \
                if derivative else None
            const_rows = [tf.repeat(c, m, axis=0) for c in consts]
            ys, gs, ydots, scores = self._gradients(
                rows, const_rows, tf.repeat(target, m, axis=0), target_fn, tangents
            )

            # The chunk's points, after the previous chunk's last (the
            # carry), with no weight on the interval ending at the carry.
            a_all = tf.concat([tf.reshape(prev_alpha, [1]), alphas], axis=0)[None]

            def from_carry(w):
                return tf.concat([tf.zeros([1]), w], axis=0)[None]

            new_c, new_i, last_y, last_g = [], [], [], []
            for k in range(len(ys)):
                y, g = _per_point(ys[k], batch, m), _per_point(gs[k], batch, m)
                if derivative:
                    w = _along(right[None], y.shape.rank) * g
                    c = tf.reduce_sum(w * _per_point(ydots[k], batch, m), axis=1)
                    i = tf.reduce_sum(w, axis=1)
                else:
                    y_all = tf.concat([carry_y[k][:, None], y], axis=1)
                    g_all = tf.concat([carry_g[k][:, None], g], axis=1)
                    c, i = _stieltjes(y_all, g_all, a_all, from_carry(left), from_carry(right))
                new_c.append(acc_c[k] + c)
                new_i.append(acc_i[k] + i)
                last_y.append(y[:, -1])
                last_g.append(g[:, -1])
            return new_c, new_i, last_y, last_g, tf.reshape(scores, [batch, m])

        return step

    def _panel_body(self, target_fn):
        """One self-contained panel per example: fine and coarse sums.

        A panel is ``p`` points ``alphas[k]`` of one example (its own left
        end included, weight zero), so panels of different examples and
        path positions share a call and need no carry. The coarse sum uses
        every other point (the panel before it was split), so ``fine -
        coarse`` is both the error estimate and, for a split panel, what
        replacing the parent by this child changes.
        """
        def step(xs, xbs, consts, alphas, left, right, target):
            k, p = tf.shape(alphas)[0], alphas.shape[1]
            rows = [self._path(x, xb, alphas) for x, xb in zip(xs, xbs)]
            const_rows = [tf.repeat(c, p, axis=0) for c in consts]
            ys, gs, _, scores = self._gradients(rows, const_rows, tf.repeat(target, p, axis=0),
                                                target_fn)
            out = []
            for y, g in zip(ys, gs):
                y, g = _per_point(y, k, p), _per_point(g, k, p)
                fine_c, fine_i = _stieltjes(y, g, alphas, left, right)
                coarse_c, coarse_i = _stieltjes(y[:, ::2], g[:, ::2], alphas[:, ::2],
                                                left[:, ::2], right[:, ::2])
                out.append([fine_c, coarse_c, fine_i, coarse_i, y[:, -1], g[:, -1]])
            return out, tf.reshape(scores, [k, p])

        return step

    def panel_function(self, path_shapes, const_shapes, target_fn, points: int):
        """The compiled panel step (``points`` per panel) for these shapes."""
        key = (tuple(map(tuple, path_shapes)), tuple(map(tuple, const_shapes)),
               getattr(target_fn, "trace_key", target_fn), "panel", points)
        fn = self._steps.get(key)
        if fn is None:
            xspec, cspec = self._specs(path_shapes, const_shapes)
            wspec = tf.TensorSpec((None, points), tf.float32)
            fn = compiled(self._panel_body(target_fn),
                          input_signature=[xspec, xspec, cspec, wspec, wspec, wspec,
                                           target_spec(target_fn)],
                          jit_compile=self.jit_compile)
            self._steps[key] = fn
        return fn

    def run_panels(self, prepared, examples, alphas, left, right, target, target_fn,
                   batch_size: int, progress: Optional[Callable[[int], None]] = None):
        """Evaluates panels in calls of at most ``batch_size`` rows.

        Args:
            prepared: ``adapter.Prepared`` of all examples.
            examples: int ``(K,)`` the example of each panel.
            alphas, left, right: float ``(K, p)`` each panel's points and
                Stieltjes weights (see ``quadrature.Rule``).
            target: the examples' targets (indexed by ``examples``).
            target_fn, batch_size, progress: as ``run``.

        Yields:
            ``(panel indices, per layer [fine_c, coarse_c, fine_i, coarse_i,
            y at the last point, g at the last point] (k, *Y) numpy, scores
            (k, p))`` per call.
        """
        p = alphas.shape[1]
        step = self.panel_function([x.shape[1:] for x in prepared.xs],
                                   [c.shape[1:] for c in prepared.consts], target_fn, p)
        # A panel is one item of p rows. Under XLA every call has the same
        # shape (one compilation); plain TensorFlow runs a short last call.
        for pos, xg, bg, cg, tg, _ in chunks(prepared, examples, target, 1, p, batch_size,
                                             pad=self.jit_compile, fixed=True):
            full = np.concatenate([pos, np.full(tg.shape[0] - pos.size, pos[-1])])
            out, scores = step(xg, bg, cg, *(tf.constant(a[full].astype(np.float32))
                                             for a in (alphas, left, right)), tg)
            n = pos.size
            yield pos, [[t.numpy()[:n] for t in layer] for layer in out], scores.numpy()[:n]
            if progress is not None:
                progress(int(n * p))

    def step_function(self, path_shapes, const_shapes, target_fn, derivative):
        """The compiled chunk step for these per-example input shapes."""
        key = (tuple(map(tuple, path_shapes)), tuple(map(tuple, const_shapes)),
               getattr(target_fn, "trace_key", target_fn), derivative)
        fn = self._steps.get(key)
        if fn is None:
            layers = self.layer_shapes(path_shapes, const_shapes)
            lspec = [tf.TensorSpec((None,) + s, tf.float32) for s in layers]
            xspec, cspec = self._specs(path_shapes, const_shapes)
            vspec = tf.TensorSpec((None,), tf.float32)
            signature = [
                xspec, xspec, cspec, vspec, vspec, vspec, tf.TensorSpec((), tf.float32),
                target_spec(target_fn), lspec, lspec, lspec, lspec,
            ]
            fn = compiled(
                self._step_body(target_fn, derivative),
                input_signature=signature,
                jit_compile=self.jit_compile,
                reduce_retracing=False,
            )
            self._steps[key] = fn
        return fn

    def forward_function(self, path_shapes, const_shapes):
        """Compiled plain forward pass: explained outputs at x (float32)."""
        key = (tuple(map(tuple, path_shapes)), tuple(map(tuple, const_shapes)))
        fn = self._forwards.get(key)
        if fn is None:
            def forward(xs, consts):
                return tf.cast(self._call(xs, consts)[-1], tf.float32)

            fn = compiled(
                forward,
                input_signature=list(self._specs(path_shapes, const_shapes)),
                jit_compile=self.jit_compile,
            )
            self._forwards[key] = fn
        return fn

    def forward(self, xs, consts, batch_size: int) -> np.ndarray:
        """Explained outputs at ``xs`` (numpy), ``batch_size`` rows per call
        (the same bound on rows as the path steps)."""
        fn = self.forward_function([x.shape[1:] for x in xs], [c.shape[1:] for c in consts])
        n = xs[0].shape[0]
        return np.concatenate([
            fn([x[s:s + batch_size] for x in xs], [c[s:s + batch_size] for c in consts]).numpy()
            for s in range(0, n, batch_size)])

    @property
    def tracing_count(self) -> int:
        """Total traces of the compiled steps (for retracing checks)."""
        fns = list(self._steps.values()) + list(self._forwards.values())
        return sum(f.experimental_get_tracing_count() for f in fns)

    # -- in-graph driver -------------------------------------------------------

    def integrate(self, xs, xbs, consts, target, rule: Rule, m: int, target_fn=None):
        """The whole path integral inside the graph (a ``tf.while_loop``).

        For use inside ``tf.function`` or ``strategy.run``: no Python loop,
        one compiled chunk step per iteration.

        Args:
            xs, xbs: lists of float32 ``(b, *S_i)`` path ends and starts.
            consts: held-constant inputs ``(b, *C_j)``.
            target: int32 ``(b,)`` output index per example.
            rule: the integration rule.
            m: path points per chunk.
            target_fn: optional callable ``outputs -> (N,)``.

        Returns:
            ``(conductance per layer (b, *Y), F(x') (b,), F(x) (b,))``.
        """
        chunks = [tf.constant(a) for a in chunked_rule(rule, m)]
        alphas, left, right = chunks
        path_shapes = [tuple(x.shape[1:]) for x in xs]
        const_shapes = [tuple(c.shape[1:]) for c in consts]
        step = self.step_function(path_shapes, const_shapes, target_fn, rule.derivative)
        batch = tf.shape(xs[0])[0]
        zeros = [tf.zeros(tf.concat([[batch], s], 0), tf.float32)
                 for s in self.layer_shapes(path_shapes, const_shapes)]
        state = (tf.constant(0), tf.constant(0.0), zeros, zeros, zeros, zeros,
                 tf.zeros([batch]), tf.zeros([batch]))

        def body(c, prev, carry_y, carry_g, acc_c, acc_i, f0, f1):
            acc_c, acc_i, carry_y, carry_g, scores = step(
                xs, xbs, consts, alphas[c], left[c], right[c], prev, target,
                carry_y, carry_g, acc_c, acc_i,
            )
            # Every rule starts at alpha = 0; padding repeats alpha = 1, so
            # the last column of the last chunk is F at the input.
            f0 = tf.where(tf.equal(c, 0), scores[:, 0], f0)
            return c + 1, alphas[c][-1], carry_y, carry_g, acc_c, acc_i, f0, scores[:, -1]

        out = tf.while_loop(lambda c, *_: c < alphas.shape[0], body, state)
        return out[4], out[6], out[7]

    # -- streaming driver ----------------------------------------------------

    def run(
        self,
        prepared,
        rule: Rule,
        target: np.ndarray,
        target_fn: Optional[TargetFn],
        batch_size: int,
        progress: Optional[Callable[[int], None]] = None,
    ) -> PathSums:
        """Streams the path points of ``rule`` in chunks of <= batch_size rows.

        Args:
            prepared: ``adapter.Prepared``: float32 path ends ``xs`` (alpha
                = 1), ``baselines`` (alpha = 0), held-constant ``consts``.
            rule: the integration rule.
            target: int32 ``(B,)`` output index per example (ignored when
                ``target_fn`` is given).
            target_fn: optional callable ``outputs (N, ...) -> (N,)``.
            batch_size: most rows (examples x path points) per compiled call.
            progress: called with the number of rows done after each chunk.

        Returns:
            ``PathSums`` for the B examples.
        """
        n = prepared.n
        group, m = plan(n, rule.n_points, 1, batch_size)
        alphas, left, right = chunked_rule(rule, m)
        path_shapes = [x.shape[1:] for x in prepared.xs]
        const_shapes = [c.shape[1:] for c in prepared.consts]
        step = self.step_function(path_shapes, const_shapes, target_fn, rule.derivative)
        shapes = [(group,) + s for s in self.layer_shapes(path_shapes, const_shapes)]

        parts = []
        # The last group is padded by repeating its last example.
        for pos, xg, bg, cg, tg, _ in chunks(prepared, np.arange(n), target, rule.n_points, 1,
                                             batch_size, pad=True):
            zeros = [tf.zeros(s, tf.float32) for s in shapes]
            carry_y, carry_g, acc_c, acc_i = zeros, zeros, zeros, zeros
            prev = tf.constant(0.0)
            scores = []
            for c in range(alphas.shape[0]):
                acc_c, acc_i, carry_y, carry_g, sc = step(
                    xg, bg, cg, alphas[c], left[c], right[c], prev, tg,
                    carry_y, carry_g, acc_c, acc_i,
                )
                prev = tf.constant(alphas[c, -1])
                scores.append(sc)
                if progress is not None:  # real path points only, not the padding
                    progress(int(pos.size * min(m, rule.n_points - c * m)))
            keep = slice(0, pos.size)
            parts.append(
                (
                    [a.numpy()[keep] for a in acc_c],
                    [a.numpy()[keep] for a in acc_i],
                    [a.numpy()[keep] for a in carry_y],
                    [a.numpy()[keep] for a in carry_g],
                    np.concatenate([s.numpy() for s in scores], axis=1)[keep, : rule.n_points],
                )
            )
        joined = [
            [np.concatenate([p[i][k] for p in parts]) for k in range(self.n_layers)]
            for i in range(4)
        ]
        scores = np.concatenate([p[4] for p in parts])
        return PathSums(*joined, path_scores=scores)
