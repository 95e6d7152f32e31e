"""``Conductance``: a reusable explainer that caches its compiled steps."""

from __future__ import annotations

import os
import sys
import warnings
from typing import List, Optional, Sequence, Union

import keras
import numpy as np

from keras_conductance import adaptive, quadrature
from keras_conductance.adapter import ModelAdapter, Prepared, as_names
from keras_conductance.arguments import check
from keras_conductance.attribution import Attribution, Measures, relative_error
from keras_conductance.engine import PathEngine, PathSums, check_target_callable, resolve_jit
from keras_conductance.progress import Progress
from keras_conductance.targets import Target, resolve_target
from keras_conductance.token_targets import TokenTarget

__all__ = ["Conductance", "DEFAULT_BATCH_SIZE", "CONVERGENCE_WARNING_THRESHOLD", "path_rule"]

DEFAULT_BATCH_SIZE = 128
# Relative completeness error of a cut layer above which we warn.
CONVERGENCE_WARNING_THRESHOLD = 0.05
# Endpoint-only rule: F(x'), F(x), y(x) and dF/dy(x) without integration.
_ENDPOINTS = quadrature.Rule(
    "endpoints", 1, np.array([0.0, 1.0]), np.zeros(2), np.zeros(2), derivative=False
)


def path_rule(method: str, n_steps: int, tolerance: Optional[float], max_steps: int):
    """The integration rule of these settings, each checked against the
    vocabulary: the fixed ``quadrature.Rule``, or with ``tolerance`` the
    ``adaptive.AdaptiveRule`` (which also checks ``max_steps``)."""
    if tolerance is None:
        check("max_steps", max_steps)  # unused without tolerance, but still an error
        return quadrature.make_rule(method, n_steps)
    return adaptive.make_adaptive_rule(method, tolerance, n_steps, max_steps)


class Conductance:
    """Conductance of hidden units (Dhamdhere et al., Eq. 2-3), reusable.

    Build it once per model and set of layers; every call reuses the compiled
    step (one trace per input shape). All requested layers come out of the
    same forward and backward pass over the path points.

    Args:
        model: a Functional or Sequential ``keras.Model`` with any inputs and
            outputs (models nested in it are looked into).
        layers: a layer name or a list of names (``"outer/inner"`` for a
            layer of a nested model).
        output: the explained output of a model with several (its name or
            index); ``target`` then indexes within it.
        start_layer: start the path at this layer's output instead of the
            model inputs, e.g. the ``Embedding`` of a text model (token ids
            cannot be interpolated). The default baseline is then zero, or
            the pad token's embedding where the embedding feeds a
            normalization directly (RMSNorm decoders: Llama, Gemma, ...).
        interpolate: the model inputs (names or indices) that move along
            the path; the others are held constant at every path point.
            Default: the float inputs (none with ``start_layer``).
        n_steps: steps of the integration rule (default 50).
        method: ``"trapezoid"`` (default, second order), ``"left"``,
            ``"right"``, or ``"gauss_legendre"`` (exact integrand via
            forward-mode autodiff; smooth networks).
        tolerance: if set, integrate adaptively (``adaptive.py``): starting
            from ``n_steps`` uniform steps, split the path intervals whose
            error estimate is largest, per example, until the estimated L1
            error of every unit set's per-filter conductances is within
            ``tolerance`` of their L1 norm (or of |F(x) - F(x')| if larger)
            and completeness holds within ``tolerance`` on cut layers, up to
            ``max_steps``. ``attr.error_estimate`` reports the estimate.
        batch_size: most rows (examples x path points) per compiled call;
            memory does not grow with ``n_steps``. Default 128.
        jit_compile: True, False, or ``"auto"`` (XLA when a GPU or TPU is
            visible, plain TensorFlow on CPU).
        pre_softmax: explain the logits of an output that ends in a softmax
            or sigmoid (see ``strip_softmax``), as the paper does.
        max_steps: most steps per example that ``tolerance`` may reach.
        verbose: 0 silent, 1 progress bar, ``"auto"`` a bar for long jobs.

    Example:
        >>> explainer = kc.Conductance(model, ["conv1", "conv2"])
        >>> attr = explainer(images)                # top predicted class
        >>> attr.per_filter("conv2").shape          # (B, C)
        >>> attr.delta["conv2"]                     # completeness error (B,)
    """

    def __init__(
        self,
        model: keras.Model,
        layers: Union[str, Sequence[str]],
        *,
        output: Union[None, int, str] = None,
        start_layer: Optional[str] = None,
        interpolate: Optional[Sequence[Union[str, int]]] = None,
        n_steps: int = 50,
        method: str = "trapezoid",
        tolerance: Optional[float] = None,
        batch_size: Optional[int] = None,
        jit_compile: Union[bool, str] = "auto",
        pre_softmax: bool = False,
        max_steps: int = 1024,
        verbose: Union[int, str] = "auto",
    ):
        self._rule = path_rule(method, n_steps, tolerance, max_steps)
        self.model = model
        self.n_steps = self._rule.n_steps
        self.method = self._rule.method
        self.tolerance = None if tolerance is None else self._rule.tolerance
        self.max_steps = int(max_steps)
        self.batch_size = check("batch_size", batch_size) or DEFAULT_BATCH_SIZE
        self.jit_compile = resolve_jit(jit_compile)
        self.pre_softmax = check("pre_softmax", pre_softmax)
        self.verbose = check("verbose", verbose)
        self._warned = set()
        self.adapter = ModelAdapter(model, as_names(layers, "layers"), start_layer=start_layer,
                                    output=output, interpolate=interpolate,
                                    pre_softmax=pre_softmax)
        self.layers = self.adapter.layers
        self.start_layer = start_layer
        self._engine = PathEngine(self.adapter.probe, len(self.adapter.path_tensors),
                                  self.jit_compile, self.adapter.taps, self.adapter.unit_order)
        self.is_cut = dict(self.adapter.is_cut)
        # Graph layers that are cuts only together (a text CNN's widths);
        # units inside layers (is_cut None) never count.
        rest = [n for n in self.layers if self.is_cut[n] is False]
        self._rest_is_cut = bool(rest) and self.adapter.cut(rest)
        self._squash = self.adapter.squash

    def unit_shapes(self, prepared: Prepared) -> List[tuple]:
        """Per-example output shape of each unit (``self.layers`` order) for
        inputs shaped like ``prepared``; traced once per input shape."""
        return self._engine.layer_shapes([x.shape[1:] for x in prepared.xs],
                                         [c.shape[1:] for c in prepared.consts])

    @property
    def checks_completeness(self) -> bool:
        """Whether some requested layers form a cut, whose conductances must
        add up to F(x) - F(x'): what ``tolerance`` refines against. Units
        inside layers (``is_cut`` None) never count."""
        return bool(self._convergence_groups())

    @property
    def unjudged(self) -> List[str]:
        """Requested units whose completeness cannot be checked: units inside
        layers, and layers that are not cuts (alone or with the others)."""
        judged = {n for group in self._convergence_groups() for n in group}
        return [n for n in self.layers if n not in judged]

    @property
    def tracing_count(self) -> int:
        """How many times the compiled functions were traced (for tests)."""
        return self._engine.tracing_count

    # -- running -------------------------------------------------------------

    def _run(self, prep: Prepared, rule, target, target_fn, batch_size, verbose,
             desc: str = "conductance") -> PathSums:
        progress = Progress(prep.n * rule.n_points, "path rows", verbose, desc)
        try:
            return self._engine.run(prep, rule, target, target_fn, batch_size, progress.update)
        finally:
            progress.close()

    def _convergence_groups(self) -> List[List[str]]:
        """Layer groups whose conductances must add up to F(x) - F(x')."""
        groups = [[n] for n in self.layers if self.is_cut[n]]
        # Layers that are cuts only together, e.g. a text CNN's conv widths.
        rest = [n for n in self.layers if self.is_cut[n] is False]
        if rest and self._rest_is_cut:
            groups.append(rest)
        return groups

    def _relative_errors(self, sums: PathSums, groups) -> np.ndarray:
        """``(B,)`` worst relative completeness error over the cut groups."""
        diff = _at_input(sums.path_scores) - sums.path_scores[:, 0]
        return self._completeness(sums.conductance, diff, groups)

    def _completeness(self, conductance, diff, groups) -> np.ndarray:
        """``(B,)`` worst relative completeness error of ``conductance`` (per
        unit set, ``self.layers`` order) over the cut ``groups``."""
        index = {n: i for i, n in enumerate(self.layers)}
        worst = np.zeros(diff.shape[0])
        for group in groups:
            total = sum(conductance[index[n]].reshape(diff.shape[0], -1).sum(1) for n in group)
            worst = np.maximum(worst, relative_error(total - diff, diff))
        return worst

    def _adaptive(self, prep: Prepared, target, target_fn, rule, batch_size, verbose):
        """The adaptive rule (``tolerance=``), see ``adaptive.py``."""
        axes = [self.adapter.channel_axes.get(n, -1) for n in self.layers]
        groups = self._convergence_groups()
        panels = adaptive.ConductancePanels(self._engine, prep, target, target_fn, axes)
        result = adaptive.integrate(
            panels, rule, batch_size,
            lambda conductance, diff: self._completeness(conductance, diff, groups), verbose)
        return panels.sums(result.path_scores), result

    def explain(
        self,
        inputs,
        target: Target = None,
        baselines=None,
        *,
        n_steps: Optional[int] = None,
        method: Optional[str] = None,
        tolerance: Optional[float] = None,
        max_steps: Optional[int] = None,
        batch_size: Optional[int] = None,
        verbose: Union[None, int, str] = None,
    ) -> Measures:
        """All four measures from one pass over the path.

        Args:
            inputs: ``(B, *input_shape)`` array or tensor, or for a model with
                several inputs a list (``model.inputs`` order) or a dict keyed
                by input name (token ids when ``start_layer`` is set).
            target: None (each example's top predicted class), an int, a
                ``(B,)`` int array, a callable ``outputs (N, ...) -> (N,)``
                applied to the explained output, or for a language model's
                ``(B, T, V)`` logits ``kc.next_token(id)``,
                ``kc.logit_difference(a, b)`` or ``kc.continuation(ids)``.
            baselines: None (zeros; with ``start_layer`` the zero embedding,
                or the pad token's for RMSNorm decoders),
                an array broadcastable to the interpolated input (with
                ``start_layer``: token ids, or vectors broadcastable to the
                start layer's output), or the inputs' structure.
            n_steps, method, tolerance, max_steps, batch_size, verbose:
                override the explainer's settings for this call.

        Returns:
            ``Measures`` with conductance, internal influence,
            gradient x activation and activation.
        """
        # Each override is checked once, here; None keeps the explainer's.
        rule = self._rule
        if (n_steps, method, tolerance, max_steps) != (None,) * 4:
            rule = path_rule(self.method if method is None else method,
                             self.n_steps if n_steps is None else n_steps,
                             self.tolerance if tolerance is None else tolerance,
                             self.max_steps if max_steps is None else max_steps)
        return self.explain_with(rule, inputs, target, baselines, batch_size=batch_size,
                                 verbose=verbose)

    def explain_with(self, rule, inputs, target: Target = None, baselines=None, *,
                     batch_size: Optional[int] = None,
                     verbose: Union[None, int, str] = None) -> Measures:
        """``explain`` with a rule already built and checked (``path_rule``):
        what the one-call functions use, so each setting is checked once."""
        method, n_steps = rule.method, rule.n_steps
        tolerance = getattr(rule, "tolerance", None)
        batch_size = check("batch_size", batch_size) or self.batch_size
        verbose = self.verbose if verbose is None else check("verbose", verbose)
        prep = self.adapter.prepare(inputs, baselines)
        target_idx, target_fn = self.resolve_target(target, prep, inputs, batch_size)
        if tolerance is None:
            sums = self._run(prep, rule, target_idx, target_fn, batch_size, verbose)
            extra = dict(n_steps=np.full(prep.n, n_steps), alphas=rule.alphas,
                         n_points=np.full(prep.n, rule.n_points))
        else:
            sums, result = self._adaptive(prep, target_idx, target_fn, rule, batch_size, verbose)
            extra = dict(n_steps=result.n_steps, alphas=result.alphas, n_points=result.n_points,
                         error_estimate=dict(zip(self.layers, result.error_estimate)))
        self._warn(sums, method, n_steps, tolerance, self.adapter.starts_at_singular_norm(prep))
        return self._measures(sums, target_idx, method, **extra)

    @property
    def engine(self) -> PathEngine:
        """The compiled path engine (forward passes, integration), shared with
        the dataset path so that it compiles once per explainer."""
        return self._engine

    def resolve_target(self, target, prep: Prepared, inputs=None,
                       batch_size: Optional[int] = None):
        """``(target_idx (B,) int32, target_fn)`` for prepared examples: the
        class each explains (-1 where a callable or token target scores),
        checked against the outputs' range.

        Args:
            target: as ``explain``.
            prep: ``adapter.prepare(inputs, baselines)``.
            inputs: the raw inputs (token targets read their positions).
            batch_size: rows per forward pass (None: the explainer's).
        """
        if isinstance(target, TokenTarget):
            return self.adapter.token_pairs(target, self.adapter.structure(inputs)), target.scorer
        if callable(target):  # no forward pass needed to choose the class
            check_target_callable(target, self.adapter.explained.shape)
            return np.full(prep.n, -1, np.int32), target
        outputs = self._engine.forward(prep.xs, prep.consts, batch_size or self.batch_size)
        return resolve_target(target, outputs, prep.n, self.adapter.sequence_logits)

    def __call__(self, inputs, target: Target = None, baselines=None, *,
                 n_steps: Optional[int] = None, method: Optional[str] = None,
                 tolerance: Optional[float] = None, max_steps: Optional[int] = None,
                 batch_size: Optional[int] = None,
                 verbose: Union[None, int, str] = None) -> Attribution:
        """Conductance (Eq. 3) per unit; see ``explain`` for the arguments."""
        return self.explain(inputs, target, baselines, n_steps=n_steps, method=method,
                            tolerance=tolerance, max_steps=max_steps, batch_size=batch_size,
                            verbose=verbose).conductance

    def endpoints(self, inputs, target: Target = None, baselines=None, *,
                  batch_size: Optional[int] = None) -> Measures:
        """Activation and gradient x activation only (no integration).

        Costs two path points (x' and x) instead of n_steps + 1; the
        conductance and internal influence fields of the result are zero.
        """
        batch_size = check("batch_size", batch_size) or self.batch_size
        prep = self.adapter.prepare(inputs, baselines)
        target_idx, target_fn = self.resolve_target(target, prep, inputs, batch_size)
        sums = self._run(prep, _ENDPOINTS, target_idx, target_fn, batch_size, 0)
        warn_if_unchanged(_at_input(sums.path_scores), sums.path_scores[:, 0])
        return self._measures(sums, target_idx, "endpoints", n_steps=np.zeros(prep.n, int),
                              alphas=_ENDPOINTS.alphas, n_points=np.full(prep.n, 2))

    # -- results -------------------------------------------------------------

    def _measures(self, sums: PathSums, target, method, n_steps, alphas, n_points,
                  error_estimate=None) -> Measures:
        f0 = sums.path_scores[:, 0].astype(np.float32)
        f1 = _at_input(sums.path_scores).astype(np.float32)
        common = dict(
            output_diff=(f1 - f0).astype(np.float32),
            output_at_input=f1,
            output_at_baseline=f0,
            # -1: a callable or token target (it is not one output index)
            target=target if np.ndim(target) == 1 else np.full(len(f0), -1, np.int32),
            n_steps=np.asarray(n_steps),
            n_points=np.asarray(n_points),
            error_estimate={} if error_estimate is None else error_estimate,
            method=method,
            is_cut=dict(self.is_cut),
            path_scores=sums.path_scores,
            alphas=np.asarray(alphas, np.float32),
            channel_axes=dict(self.adapter.channel_axes),
            unjudged=self.unjudged,
        )

        def make(measure, arrays):
            values = {n: np.asarray(a, np.float32) for n, a in zip(self.layers, arrays)}
            return Attribution(measure, values, **common)

        gxa = [a * g for a, g in zip(sums.activation, sums.gradient)]
        return Measures(
            conductance=make("conductance", sums.conductance),
            internal_influence=make("internal_influence", sums.internal_influence),
            gradient_x_activation=make("gradient_x_activation", gxa),
            activation=make("activation", sums.activation),
        )

    def _warn_once(self, key, message):
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(message, stacklevel=_user_stacklevel())

    def _warn(self, sums: PathSums, method, n_steps, tolerance, singular: bool = False):
        warn_if_unchanged(_at_input(sums.path_scores), sums.path_scores[:, 0])
        if self._squash is not None:
            f1 = _at_input(sums.path_scores)
            # Saturated means near 1; a small probability (a near-uniform
            # softmax over many classes) is not saturated.
            if np.any(f1 > 0.99):
                self._warn_once(
                    "saturated",
                    f"The explained score is a {self._squash} output and is "
                    f"saturated (F(x) = {float(f1.max()):.4f} for some examples): "
                    "its attributions say little. The paper explains the "
                    "pre-softmax logit: pass `pre_softmax=True` (or explain "
                    "`kc.strip_softmax(model)`).",
                )
        if tolerance is not None:
            return
        groups = self._convergence_groups()
        if not groups:
            return
        worst = self._relative_errors(sums, groups)
        if singular and worst.max() > CONVERGENCE_WARNING_THRESHOLD:
            self._warn_once("singular-norm", singular_norm_message(
                self.adapter, 100 * worst.max(), method, n_steps))
        elif worst.max() > 1e3:
            diff = _at_input(sums.path_scores) - sums.path_scores[:, 0]
            self._warn_once(
                "no-change",
                "The explained score barely changes along the path "
                f"(|F(x) - F(x')| as small as {np.abs(diff).min():.3g}), so "
                "completeness cannot be judged against it. Check the target "
                "and the baseline: an untrained model's softmax output, or a "
                "baseline equal to the input, gives F(x) ~ F(x').",
            )
        elif worst.max() > CONVERGENCE_WARNING_THRESHOLD:
            self._warn_once(
                "convergence",
                f"Completeness error |delta| reaches {100 * worst.max():.1f}% of "
                f"|F(x) - F(x')| (median {100 * np.median(worst):.1f}%) with "
                f"method={method!r}, n_steps={n_steps}: the gradient changes faster "
                "along the path than the steps resolve (ReLU kinks, or steep "
                "tanh/GELU/softmax regions). Pass a larger `n_steps` (e.g. 200-400), or "
                "`tolerance=0.01` to refine each example until converged.",
            )


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside
    this package (the user's call), whichever entry point led here."""
    frame, level = sys._getframe(2), 2  # the frame that calls warnings.warn is 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _at_input(path_scores: np.ndarray) -> np.ndarray:
    """``(B,)`` F(x): each row's last point (rows of the adaptive rule are
    NaN-padded after it)."""
    last = np.isfinite(path_scores).sum(axis=1) - 1
    return path_scores[np.arange(path_scores.shape[0]), np.maximum(last, 0)]


def singular_norm_message(adapter, percent: float, method: str, n_steps: int) -> str:
    """Why a path from the zero embedding of an RMSNorm decoder converges so
    badly, and what to do instead."""
    return (
        f"Completeness error |delta| reaches {percent:.1f}% of |F(x) - F(x')| with "
        f"method={method!r}, n_steps={n_steps} because the path starts at (or near) the "
        f"zero embedding: the first normalization in '{adapter.singular_norm}' then "
        "receives an (almost) all-zero residual stream and divides by its norm, so along "
        "the path it is nearly a step at alpha ~ 0, which no practical number of steps "
        "resolves. Start from a token whose embedding is as large as the input's: the "
        f"default baseline (`baselines=None`) is {adapter.default_baseline}; or pass "
        "token ids (`baselines=<id>`) or an embedding vector.")


def unchanged_message(count: int, total: int) -> str:
    """The warning for examples whose explained score is the same at the
    baseline and the input (usually a baseline equal to the input)."""
    return (f"F(x) = F(x') for {count} of {total} examples: the explained score does not "
            "change between the baseline and the input, so there is nothing to attribute "
            "and their attributions are zero. Is the baseline equal to the input?")


def warn_if_unchanged(f1: np.ndarray, f0: np.ndarray):
    """Warns when F(x) = F(x') exactly for some examples (at the user's call)."""
    same = np.asarray(f1) == np.asarray(f0)
    if same.any():
        warnings.warn(unchanged_message(int(same.sum()), same.size),
                      stacklevel=_user_stacklevel())
