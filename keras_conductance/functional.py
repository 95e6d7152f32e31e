"""One-call shortcuts that share compiled explainers through a small cache.

``kc.conductance(model, x, "conv2")`` builds a ``Conductance`` explainer the
first time and reuses it (and its compiled steps) on later calls with the
same model and compile-relevant options, so a loop over batches traces once.
"""

from __future__ import annotations

import collections
import weakref
from typing import Optional, Sequence, Union

import keras
import numpy as np

from keras_conductance.attribution import Attribution, Measures
from keras_conductance.explainer import Conductance
from keras_conductance.split import _as_names
from keras_conductance.targets import Target

__all__ = [
    "conductance",
    "internal_influence",
    "gradient_x_activation",
    "activation",
    "measures",
    "clear_cache",
]

# Explainers per model (weakly keyed: dropping the model frees them), and at
# most this many option sets per model, least recently used evicted first.
CACHE_SIZE = 8
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

Layers = Union[str, Sequence[str]]


def clear_cache() -> None:
    """Drops every cached explainer (and its compiled functions)."""
    _CACHE.clear()


def _explainer(model, layers, start_layer, batch_size, jit_compile, pre_softmax,
               verbose) -> Conductance:
    """The cached explainer for these compile-relevant options."""
    key = (tuple(_as_names(layers, "layers")), start_layer, batch_size,
           str(jit_compile), bool(pre_softmax))
    try:
        per_model = _CACHE.setdefault(model, collections.OrderedDict())
    except TypeError:  # not weak-referenceable: no caching
        per_model = collections.OrderedDict()
    explainer = per_model.get(key)
    if explainer is None:
        explainer = Conductance(
            model, layers, start_layer=start_layer, batch_size=batch_size,
            jit_compile=jit_compile, pre_softmax=pre_softmax, verbose=verbose,
        )
        per_model[key] = explainer
        while len(per_model) > CACHE_SIZE:
            per_model.popitem(last=False)
    else:
        per_model.move_to_end(key)
    explainer.verbose = verbose
    return explainer


def measures(
    model: keras.Model,
    inputs: np.ndarray,
    layers: Layers,
    *,
    target: Target = None,
    baselines: Optional[np.ndarray] = None,
    n_steps: int = 50,
    method: str = "trapezoid",
    start_layer: Optional[str] = None,
    batch_size: Optional[int] = None,
    jit_compile: Union[bool, str] = "auto",
    pre_softmax: bool = False,
    tolerance: Optional[float] = None,
    verbose: Union[int, str] = "auto",
) -> Measures:
    """Conductance, internal influence, gradient x activation and activation
    from one pass over the path.

    Args:
        model: Functional or Sequential ``keras.Model``.
        inputs: ``(B, *input_shape)`` examples.
        layers: a layer name or list of names.
        target: None (top predicted class), int, ``(B,)`` ints, or a callable
            ``outputs (N, ...) -> scores (N,)``.
        baselines: None (zeros) or an array broadcastable to ``inputs``.
        n_steps: steps of the integration rule.
        method: ``"trapezoid"``, ``"left"``, ``"right"`` or
            ``"gauss_legendre"``.
        start_layer: start the path at this layer's output (text models).
        batch_size: most rows (examples x path points) per compiled call.
        jit_compile: True, False or ``"auto"``.
        pre_softmax: explain the logits of a softmax/sigmoid model.
        tolerance: refine n_steps per example until the completeness error
            of every cut layer is below ``tolerance * |F(x) - F(x')|``.
        verbose: 0, 1 or ``"auto"``.

    Returns:
        ``Measures``; each field is an ``Attribution``.
    """
    explainer = _explainer(model, layers, start_layer, batch_size, jit_compile,
                           pre_softmax, verbose)
    return explainer.explain(inputs, target, baselines, n_steps=n_steps,
                             method=method, tolerance=tolerance)


def conductance(model: keras.Model, inputs: np.ndarray, layers: Layers, **kwargs) -> Attribution:
    """Conductance (Eq. 3) of every unit of ``layers``.

    Takes the same keyword arguments as ``measures``. A second call with the
    same model and compile options reuses the compiled step.

    Returns:
        ``Attribution``: ``attr[layer]`` is ``(B, *layer_shape)``;
        ``attr.per_filter(layer)`` is ``(B, C)``; ``attr.delta[layer]`` is the
        completeness error ``(B,)``; ``attr.output_diff`` is F(x) - F(x').
    """
    return measures(model, inputs, layers, **kwargs).conductance


def internal_influence(model: keras.Model, inputs: np.ndarray, layers: Layers,
                       **kwargs) -> Attribution:
    """Internal influence (Eq. 4): the path integral of dF/dy, same rule as
    ``conductance``. Takes the keyword arguments of ``measures``."""
    return measures(model, inputs, layers, **kwargs).internal_influence


def _endpoint_kwargs(kwargs):
    allowed = {"target", "baselines", "start_layer", "batch_size", "jit_compile",
               "pre_softmax", "verbose"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(
            f"Unexpected keyword arguments {sorted(unknown)}; this measure takes "
            f"{sorted(allowed)} (it needs no integration)."
        )
    return kwargs


def _endpoints(model, inputs, layers, kwargs) -> Measures:
    kwargs = _endpoint_kwargs(dict(kwargs))
    explainer = _explainer(
        model, layers, kwargs.get("start_layer"), kwargs.get("batch_size"),
        kwargs.get("jit_compile", "auto"), kwargs.get("pre_softmax", False),
        kwargs.get("verbose", "auto"),
    )
    return explainer.endpoints(inputs, kwargs.get("target"), kwargs.get("baselines"))


def gradient_x_activation(model: keras.Model, inputs: np.ndarray, layers: Layers,
                          **kwargs) -> Attribution:
    """y * dF/dy at the input (alpha = 1). Costs two path points, not n_steps.

    Keyword arguments: target, baselines, start_layer, batch_size,
    jit_compile, pre_softmax, verbose.
    """
    return _endpoints(model, inputs, layers, kwargs).gradient_x_activation


def activation(model: keras.Model, inputs: np.ndarray, layers: Layers, **kwargs) -> Attribution:
    """The layer output y at the input. Keyword arguments as
    ``gradient_x_activation``."""
    return _endpoints(model, inputs, layers, kwargs).activation
