"""The numeric core: streamed path gradients for many layers in one pass.

Inputs are tensors and a *probe* model that maps a point on the path to the
outputs of every requested layer plus the model output. For each chunk of
path points the compiled step runs one forward and one backward pass, takes
dF/dy for every requested layer from the same tape, and folds the chunk into
float32 running sums. Nothing here knows about layer names or Keras
callbacks; ``explainer.py`` decides what to compute.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance.quadrature import Rule

__all__ = ["PathSums", "PathEngine", "budget_batch_size", "check_batch_size", "chunked_rule", "points_per_chunk", "resolve_jit", "select_score"]

TargetFn = Callable[[tf.Tensor], tf.Tensor]


def resolve_jit(jit_compile: Union[bool, str]) -> bool:
    """Turns ``jit_compile="auto"`` into True/False for this machine.

    The rule: XLA when a GPU or TPU is visible, plain TensorFlow on CPU. On
    CPU, TensorFlow's oneDNN kernels beat XLA for convolutions (XLA measured
    several times slower on MobileNet's depthwise convolutions), while on
    accelerators XLA's fusion usually wins.
    """
    if isinstance(jit_compile, bool):
        return jit_compile
    if jit_compile != "auto":
        raise ValueError(
            "`jit_compile` must be True, False or 'auto'. Received: "
            f"jit_compile={jit_compile!r}."
        )
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


def select_score(outputs: tf.Tensor, target: tf.Tensor, target_fn: Optional[TargetFn]):
    """The explained score per row, float32 ``(N,)``."""
    outputs = tf.cast(outputs, tf.float32)
    if target_fn is not None:
        scores = tf.convert_to_tensor(target_fn(outputs))
        return tf.reshape(tf.cast(scores, tf.float32), [-1])
    if outputs.shape.rank == 1:
        return outputs
    flat = tf.reshape(outputs, [tf.shape(outputs)[0], -1])
    # A one-hot product selects each row's own class; it compiles under XLA
    # for any number of classes without a batched gather.
    return tf.reduce_sum(flat * tf.one_hot(target, tf.shape(flat)[1]), axis=1)


def check_batch_size(batch_size, unit: str, default: int) -> int:
    """Validates a ``batch_size`` argument; None gives ``default``.

    Args:
        batch_size: the user's value.
        unit: what one call holds, for the message (e.g. "path rows").
        default: the value for None.
    """
    if batch_size is None:
        return int(default)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int (most {unit} per compiled call). "
            f"Received: batch_size={batch_size!r}."
        )
    return int(batch_size)


def budget_batch_size(row_shape, budget: int, low: int, high: int) -> int:
    """Rows per call that keep ``rows x prod(row_shape)`` floats near ``budget``."""
    size = int(np.prod(row_shape))
    return int(np.clip(budget // max(size, 1), low, high))


def points_per_chunk(n_points: int, most: int) -> int:
    """Points per chunk: as few chunks as ``most`` allows, split evenly.

    51 points with room for 64 rows of 4 examples (16 points) make 4 chunks
    of 13 points (52 computed), not 4 of 16 (64 computed): padding is at most
    one point per chunk.
    """
    n_chunks = -(-n_points // max(1, min(most, n_points)))
    return -(-n_points // n_chunks)


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


class PathEngine:
    """Compiled chunk steps over a probe model.

    Args:
        probe: ``keras.Model`` mapping a path point (N, *S) to
            ``[y_1, ..., y_K, outputs]``.
        jit_compile: whether to compile the step with XLA.
    """

    def __init__(self, probe: keras.Model, jit_compile: bool):
        self.probe = probe
        self.jit_compile = jit_compile
        self.n_layers = len(probe.outputs) - 1
        self._steps = {}
        self._forwards = {}

    # -- compiled functions -------------------------------------------------

    def _layer_shapes(self, n_rows: int, input_shape) -> List[tuple]:
        shapes = self.probe.compute_output_shape((n_rows,) + tuple(input_shape))
        if self.n_layers == 0:
            return []
        return [tuple(s) for s in shapes[: self.n_layers]]

    @staticmethod
    def _path(x, xb, alphas):
        """Path rows ``(B * m, *S)``, example-major: row = b * m + k."""
        a = tf.reshape(alphas, [1, -1] + [1] * (x.shape.rank - 1))
        rows = xb[:, None] + a * (x - xb)[:, None]
        return tf.reshape(rows, tf.concat([[-1], tf.shape(x)[1:]], 0))

    def _gradients(self, rows, target, target_fn, tangents=None):
        """One forward and one backward pass over ``rows`` for all layers."""
        input_dtype = self.probe.inputs[0].dtype
        rows_in = tf.cast(rows, input_dtype)
        with tf.GradientTape() as tape:
            tape.watch(rows_in)
            if tangents is None:
                outs = self.probe(rows_in, training=False)
                ydots = None
            else:
                with tf.autodiff.ForwardAccumulator(
                    rows_in, tf.cast(tangents, input_dtype)
                ) as acc:
                    outs = self.probe(rows_in, training=False)
                ydots = [acc.jvp(y) for y in outs[:-1]]
            ys = list(outs[:-1])
            scores = select_score(outs[-1], target, target_fn)
            # Rows are independent (inference mode), so the gradient of the
            # sum gives every row's own dF/dy in one backward pass. The sum
            # must be taken under the tape, or graph mode loses the chain.
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, ys)
        grads = [tf.zeros_like(y) if g is None else g for g, y in zip(grads, ys)]
        return ys, grads, ydots, scores

    def _step_body(self, target_fn, derivative):
        def step(x, xb, alphas, left, right, prev_alpha, target, carry_y, carry_g,
                 acc_c, acc_i):
            batch, m = tf.shape(x)[0], tf.shape(alphas)[0]
            rows = self._path(x, xb, alphas)
            tangents = tf.repeat(x - xb, m, axis=0) if derivative else None
            ys, gs, ydots, scores = self._gradients(
                rows, tf.repeat(target, m), target_fn, tangents
            )

            def per_point(t):
                t = tf.cast(t, tf.float32)  # mixed precision: sums in float32
                return tf.reshape(t, tf.concat([[batch, m], tf.shape(t)[1:]], 0))

            def along(w, rank):
                return tf.reshape(w, [1, -1] + [1] * (rank - 2))

            d_alpha = tf.concat(
                [alphas[:1] - prev_alpha, alphas[1:] - alphas[:-1]], axis=0
            )
            new_c, new_i, last_y, last_g = [], [], [], []
            for k in range(len(ys)):
                y, g = per_point(ys[k]), per_point(gs[k])
                rank = y.shape.rank
                if derivative:
                    w = along(right, rank) * g
                    dy = per_point(ydots[k])
                    da = 1.0
                else:
                    # Stieltjes sum over the intervals ending at this chunk's
                    # points; the first starts at the previous chunk's last.
                    y_all = tf.concat([carry_y[k][:, None], y], axis=1)
                    g_all = tf.concat([carry_g[k][:, None], g], axis=1)
                    w = along(left, rank) * g_all[:, :-1] + along(right, rank) * g_all[:, 1:]
                    dy = y_all[:, 1:] - y_all[:, :-1]
                    da = along(d_alpha, rank)
                new_c.append(acc_c[k] + tf.reduce_sum(w * dy, axis=1))
                new_i.append(acc_i[k] + tf.reduce_sum(w * da, axis=1))
                last_y.append(y[:, -1])
                last_g.append(g[:, -1])
            return new_c, new_i, last_y, last_g, tf.reshape(scores, [batch, m])

        return step

    def step_function(self, input_shape, dtype, target_fn, derivative):
        """The compiled chunk step for inputs of shape ``(None, *input_shape)``."""
        key = (tuple(input_shape), str(dtype), target_fn, derivative)
        fn = self._steps.get(key)
        if fn is None:
            layers = self._layer_shapes(1, input_shape)
            lspec = [tf.TensorSpec((None,) + s[1:], tf.float32) for s in layers]
            xspec = tf.TensorSpec((None,) + tuple(input_shape), tf.float32)
            vspec = tf.TensorSpec((None,), tf.float32)
            signature = [
                xspec, xspec, vspec, vspec, vspec, tf.TensorSpec((), tf.float32),
                tf.TensorSpec((None,), tf.int32), lspec, lspec, lspec, lspec,
            ]
            fn = tf.function(
                self._step_body(target_fn, derivative),
                input_signature=signature,
                jit_compile=self.jit_compile,
                reduce_retracing=False,
            )
            self._steps[key] = fn
        return fn

    def forward_function(self, input_shape):
        """Compiled plain forward pass: model outputs at ``x`` (float32)."""
        key = tuple(input_shape)
        fn = self._forwards.get(key)
        if fn is None:
            dtype = self.probe.inputs[0].dtype

            def forward(x):
                outs = self.probe(tf.cast(x, dtype), training=False)
                return tf.cast(outs[-1], tf.float32)

            fn = tf.function(
                forward,
                input_signature=[tf.TensorSpec((None,) + tuple(input_shape), tf.float32)],
                jit_compile=self.jit_compile,
            )
            self._forwards[key] = fn
        return fn

    @property
    def tracing_count(self) -> int:
        """Total traces of the compiled steps (for retracing checks)."""
        fns = list(self._steps.values()) + list(self._forwards.values())
        return sum(f.experimental_get_tracing_count() for f in fns)

    # -- streaming driver ----------------------------------------------------

    def run(
        self,
        x: np.ndarray,
        baselines: np.ndarray,
        rule: Rule,
        target: np.ndarray,
        target_fn: Optional[TargetFn],
        batch_size: int,
        progress: Optional[Callable[[int], None]] = None,
    ) -> PathSums:
        """Streams the path points of ``rule`` in chunks of <= batch_size rows.

        Args:
            x: float32 ``(B, *S)`` inputs (path ends at alpha = 1).
            baselines: float32 ``(B, *S)`` (path starts at alpha = 0).
            rule: the integration rule.
            target: int32 ``(B,)`` output index per example (ignored when
                ``target_fn`` is given).
            target_fn: optional callable ``outputs (N, ...) -> (N,)``.
            batch_size: most rows (examples x path points) per compiled call.
            progress: called with the number of rows done after each chunk.

        Returns:
            ``PathSums`` for the B examples.
        """
        n = x.shape[0]
        group = min(n, batch_size)
        m = points_per_chunk(rule.n_points, max(1, batch_size // group))
        alphas, left, right = chunked_rule(rule, m)
        n_chunks = alphas.shape[0]
        step = self.step_function(x.shape[1:], x.dtype, target_fn, rule.derivative)
        shapes = self._layer_shapes(group, x.shape[1:])

        parts = []
        for start in range(0, n, group):
            idx = np.arange(start, min(start + group, n))
            # The last group is padded by repeating its last example.
            idx = np.concatenate([idx, np.full(group - idx.size, idx[-1])])
            xg = tf.constant(x[idx])
            bg = tf.constant(baselines[idx])
            tg = tf.constant(target[idx].astype(np.int32))
            zeros = [tf.zeros(s, tf.float32) for s in shapes]
            carry_y, carry_g, acc_c, acc_i = zeros, zeros, zeros, zeros
            prev = tf.constant(0.0)
            scores = []
            for c in range(n_chunks):
                acc_c, acc_i, carry_y, carry_g, sc = step(
                    xg, bg, alphas[c], left[c], right[c], prev, tg,
                    carry_y, carry_g, acc_c, acc_i,
                )
                prev = tf.constant(alphas[c, -1])
                scores.append(sc)
                if progress is not None:
                    progress(int(min(group, n - start) * m))
            keep = slice(0, min(group, n - start))
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
