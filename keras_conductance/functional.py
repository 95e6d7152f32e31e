"""One-call shortcuts that share compiled explainers through the cache.

``kc.conductance(model, x, "conv2")`` builds a ``Conductance`` explainer the
first time and reuses it (and its compiled steps) on later calls with the
same model and compile-relevant options, so a loop over batches traces once.
Per-call options (``n_steps``, ``method``, ``tolerance``, ``batch_size``,
``verbose``) are passed to each call, never written onto the cached object.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import keras

from keras_conductance.adapter import as_names, options_key
from keras_conductance.attribution import Attribution, Measures
from keras_conductance.cache import CACHE_SIZE, cached, clear_cache
from keras_conductance.arguments import check
from keras_conductance.explainer import Conductance, path_rule
from keras_conductance.targets import Target

__all__ = [
    "conductance",
    "internal_influence",
    "gradient_x_activation",
    "activation",
    "measures",
    "clear_cache",
    "explainer_for",
    "CACHE_SIZE",
]

Layers = Union[str, Sequence[str]]
Output = Union[None, int, str]
Interpolate = Optional[Sequence[Union[str, int]]]


def explainer_for(model: keras.Model, layers: Layers, *, output: Output = None,
                  start_layer: Optional[str] = None, interpolate: Interpolate = None,
                  jit_compile: Union[bool, str] = "auto",
                  pre_softmax: bool = False) -> Conductance:
    """The cached explainer for these compile-relevant options (checked
    before they become a cache key: "yes" must not find the explainer of True)."""
    key = options_key(as_names(layers, "layers"), output, start_layer, interpolate,
                      check("jit_compile", jit_compile), check("pre_softmax", pre_softmax))
    return cached(model, "explainer", key, lambda: Conductance(
        model, layers, output=output, start_layer=start_layer, interpolate=interpolate,
        jit_compile=jit_compile, pre_softmax=pre_softmax))


def measures(
    model: keras.Model,
    inputs,
    layers: Layers,
    *,
    target: Target = None,
    baselines=None,
    output: Output = None,
    start_layer: Optional[str] = None,
    interpolate: Interpolate = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    tolerance: Optional[float] = None,
    max_steps: int = 1024,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    verbose: Union[int, str] = "auto",
) -> Measures:
    """Conductance, internal influence, gradient x activation and activation
    from one pass over the path.

    Args:
        model: Functional or Sequential ``keras.Model``, any inputs/outputs.
        inputs: ``(B, *input_shape)`` examples; for several inputs a list in
            ``model.inputs`` order or a dict keyed by input name.
        layers: a layer name or list of names.
        target: None (top predicted class), int, ``(B,)`` ints, a callable
            ``outputs (N, ...) -> scores (N,)`` of the explained output, or a
            language-model target (``kc.next_token``, ``kc.logit_difference``,
            ``kc.continuation``).
        baselines: None (zeros), an array broadcastable to the interpolated
            input, or the inputs' structure.
        output: the explained output (name or index) of a multi-output model.
        start_layer: start the path at this layer's output (text models).
        interpolate: model inputs (names or indices) that move along the
            path; the rest are held constant. Default: the float inputs.
        n_steps: steps of the integration rule.
        method: ``"trapezoid"``, ``"left"``, ``"right"`` or
            ``"gauss_legendre"``.
        tolerance: integrate adaptively until, per example, the estimated
            L1 error of every layer's per-filter conductances is within
            ``tolerance`` of their L1 norm (or of |F(x) - F(x')| if larger),
            and completeness holds within ``tolerance`` on cut layers;
            ``n_steps`` is then the first grid (see ``docs/concepts.md``).
        max_steps: most steps per example that ``tolerance`` may reach.
        batch_size: most rows (examples x path points) per compiled call.
        jit_compile: True, False or ``"auto"``.
        pre_softmax: explain the logits of a softmax/sigmoid output.
        verbose: 0, 1 or ``"auto"``.

    Returns:
        ``Measures``; each field is an ``Attribution``.
    """
    explainer = explainer_for(model, layers, output=output, start_layer=start_layer,
                              interpolate=interpolate, jit_compile=jit_compile,
                              pre_softmax=pre_softmax)
    rule = path_rule(method, n_steps, tolerance, max_steps)  # checks all four, once
    return explainer.explain_with(rule, inputs, target, baselines, batch_size=batch_size,
                                  verbose=verbose)


def conductance(
    model: keras.Model,
    inputs,
    layers: Layers,
    *,
    target: Target = None,
    baselines=None,
    output: Output = None,
    start_layer: Optional[str] = None,
    interpolate: Interpolate = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    tolerance: Optional[float] = None,
    max_steps: int = 1024,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    verbose: Union[int, str] = "auto",
) -> Attribution:
    """Conductance (Eq. 3) of every unit of ``layers``.

    Arguments as ``measures``. A second call with the same model and compile
    options reuses the compiled step.

    Returns:
        ``Attribution``, where ``attr[layer]`` is ``(B, *layer_shape)``,
        ``attr.per_filter(layer)`` is ``(B, C)``, ``attr.delta[layer]`` is
        the completeness error ``(B,)`` and ``attr.output_diff`` is
        F(x) - F(x').
    """
    return measures(model, inputs, layers, target=target, baselines=baselines, output=output,
                    start_layer=start_layer, interpolate=interpolate, n_steps=n_steps,
                    method=method, tolerance=tolerance, max_steps=max_steps,
                    batch_size=batch_size, jit_compile=jit_compile, pre_softmax=pre_softmax,
                    verbose=verbose).conductance


def internal_influence(
    model: keras.Model,
    inputs,
    layers: Layers,
    *,
    target: Target = None,
    baselines=None,
    output: Output = None,
    start_layer: Optional[str] = None,
    interpolate: Interpolate = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    tolerance: Optional[float] = None,
    max_steps: int = 1024,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    verbose: Union[int, str] = "auto",
) -> Attribution:
    """Internal influence (Eq. 4): the path integral of dF/dy, same rule as
    ``conductance``. Arguments as ``measures``."""
    return measures(model, inputs, layers, target=target, baselines=baselines, output=output,
                    start_layer=start_layer, interpolate=interpolate, n_steps=n_steps,
                    method=method, tolerance=tolerance, max_steps=max_steps,
                    batch_size=batch_size, jit_compile=jit_compile, pre_softmax=pre_softmax,
                    verbose=verbose).internal_influence


def _endpoints(model, inputs, layers, target, baselines, output, start_layer, interpolate,
               batch_size, jit_compile, pre_softmax) -> Measures:
    explainer = explainer_for(model, layers, output=output, start_layer=start_layer,
                              interpolate=interpolate, jit_compile=jit_compile,
                              pre_softmax=pre_softmax)
    return explainer.endpoints(inputs, target, baselines, batch_size=batch_size)


def gradient_x_activation(
    model: keras.Model,
    inputs,
    layers: Layers,
    *,
    target: Target = None,
    baselines=None,
    output: Output = None,
    start_layer: Optional[str] = None,
    interpolate: Interpolate = None,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
) -> Attribution:
    """y * dF/dy at the input (alpha = 1). Costs two path points, not n_steps.

    Arguments as ``measures`` (there is no integration, so no ``n_steps``,
    ``method`` or ``tolerance``).
    """
    return _endpoints(model, inputs, layers, target, baselines, output, start_layer,
                      interpolate, batch_size, jit_compile,
                      pre_softmax).gradient_x_activation


def activation(
    model: keras.Model,
    inputs,
    layers: Layers,
    *,
    target: Target = None,
    baselines=None,
    output: Output = None,
    start_layer: Optional[str] = None,
    interpolate: Interpolate = None,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
) -> Attribution:
    """The layer output y at the input. Arguments as ``gradient_x_activation``."""
    return _endpoints(model, inputs, layers, target, baselines, output, start_layer,
                      interpolate, batch_size, jit_compile, pre_softmax).activation
