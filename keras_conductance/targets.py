"""What score F is explained: output index per example, or a callable."""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance.token_targets import TokenTarget

__all__ = ["resolve_target", "strip_softmax", "output_activation", "squashing_of", "logits_of"]

Target = Union[None, int, np.ndarray, Callable, TokenTarget]
"""None, an int, a per-example int array, a callable ``outputs -> (N,)``, or a
language-model ``TokenTarget`` (``kc.next_token(...)``)."""

_SQUASHING = ("softmax", "sigmoid")


def resolve_target(
    target: Target, outputs_at_input: np.ndarray, n_examples: int,
    sequence_logits: bool = False,
) -> Tuple[np.ndarray, Optional[Callable]]:
    """Returns ``(indices (B,) int32, callable or None)``.

    Args:
        target: None (top predicted class of each example), an int, a
            per-example int array ``(B,)``, or a callable mapping model
            outputs ``(N, ...)`` to scores ``(N,)``.
        outputs_at_input: model outputs at the inputs, ``(B, ...)``.
        n_examples: B.
        sequence_logits: the outputs are a language model's ``(B, T, V)``
            logits, where an int or array target is refused.
    """
    if isinstance(target, TokenTarget):
        # Reached only by the entry points that do not encode token targets.
        raise TypeError(
            f"`target={target!r}` is a language-model target: kc.conductance, "
            "kc.measures, kc.Conductance and kc.ablation_scores take it; this function "
            "does not yet. Pass a callable `logits (N, T, V) -> (N,)` instead, e.g. "
            "`lambda o: o[:, -1, token]`.")
    if callable(target):
        return np.full(n_examples, -1, np.int32), target
    n_classes = int(np.prod(outputs_at_input.shape[1:])) if outputs_at_input.ndim > 1 else 1
    if sequence_logits and target is not None and not callable(target):
        # An int would index the flattened (T * V) values: target 5 is
        # position 0, unit 5 -- never what a language-model user means.
        raise ValueError(
            f"The explained output has shape {outputs_at_input.shape}, a language model's "
            f"(batch, sequence, vocabulary) logits: `target={target!r}` would index its "
            "flattened values. Pass `target=kc.next_token(token_id)` (or "
            "`kc.logit_difference(a, b)`, `kc.continuation(ids)`), or a callable "
            "`outputs -> (N,)` scores.")
    if target is None:
        flat = outputs_at_input.reshape(n_examples, -1)
        return flat.argmax(axis=1).astype(np.int32), None
    arr = np.asarray(target)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            "`target` must be None, an int, a per-example int array, or a "
            f"callable. Received: target={target!r} (dtype {arr.dtype})."
        )
    if arr.ndim == 0:
        arr = np.full(n_examples, int(arr))
    elif arr.shape != (n_examples,):
        raise ValueError(
            f"A per-example `target` must have shape ({n_examples},) to match "
            f"the {n_examples} inputs. Received shape {arr.shape}."
        )
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        raise ValueError(
            f"`target` is out of range: the model has {n_classes} outputs "
            f"(valid indices 0..{n_classes - 1}). Received: "
            f"{sorted(set(arr[bad].tolist()))[:10]}."
        )
    return arr.astype(np.int32), None


def _activation_name(fn) -> Optional[str]:
    name = getattr(fn, "__name__", None)
    return name if name in _SQUASHING else None


def squashing_of(tensor) -> Optional[str]:
    """``"softmax"``/``"sigmoid"`` when the symbolic ``tensor`` is squashed."""
    from keras_conductance.graph import producer

    op, _ = producer(tensor)
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    return _activation_name(getattr(op, "activation", None))


def output_activation(model: keras.Model) -> Optional[str]:
    """``"softmax"``/``"sigmoid"`` when the model's (single) output is squashed."""
    if len(model.outputs) != 1:
        return None
    return squashing_of(model.outputs[0])


class _WithoutActivation(keras.layers.Layer):
    """Calls a layer with its activation switched to linear (weights shared)."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=f"{layer.name}_pre_activation", **kwargs)
        self.inner = layer

    def call(self, inputs):
        saved = self.inner.activation
        self.inner.activation = keras.activations.linear
        try:
            return self.inner.call(inputs)
        finally:
            self.inner.activation = saved

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


def logits_of(tensor, model_name: str = "model"):
    """The symbolic pre-softmax (or pre-sigmoid) scores behind ``tensor``.

    Raises:
        ValueError: the layer making ``tensor`` has no softmax/sigmoid.
    """
    from keras_conductance.graph import producer

    op, inner = producer(tensor)
    if isinstance(op, (keras.layers.Activation, keras.layers.Softmax)) and (
        isinstance(op, keras.layers.Softmax) or _activation_name(op.activation)
    ):
        return inner
    if _activation_name(getattr(op, "activation", None)):
        return _WithoutActivation(op)(inner)
    raise ValueError(
        f"The output layer '{op.name}' of model '{model_name}' has no "
        "softmax or sigmoid activation to remove: the model already "
        "outputs unsquashed scores."
    )


def strip_softmax(model: keras.Model) -> keras.Model:
    """The same network with its final softmax (or sigmoid) removed.

    The paper explains the *pre-softmax* score of the top label: a softmax
    output saturates near 1, and attributions of a saturated score say little.
    The returned model shares every weight with ``model`` (training one
    trains the other) and outputs the logits. (For a model with several
    outputs, pass ``pre_softmax=True, output=...`` to the explainers.)

    Args:
        model: a Functional or Sequential model whose output layer is an
            ``Activation("softmax")``/``Softmax`` layer, or a layer with
            ``activation="softmax"`` or ``"sigmoid"`` (e.g. ``Dense``).

    Returns:
        A Functional ``keras.Model`` from the same inputs to the logits.

    Raises:
        ValueError: the output layer has no softmax/sigmoid to remove.
    """
    from keras_conductance.graph import layer_graph

    graph = layer_graph(model)
    source = graph.model
    if len(source.outputs) != 1:
        raise ValueError(
            f"strip_softmax needs a single-output model; '{model.name}' has "
            f"{len(source.outputs)} outputs."
        )
    return graph.model_to(logits_of(source.outputs[0], model.name), f"{model.name}_logits")


def label_ids(labels: tf.Tensor, one_hot: bool) -> tf.Tensor:
    """``(b,)`` int32 class ids from ids, ``(b, 1)`` ids, 0./1. floats or
    one-hot rows: eager (the callback's probe labels) or traced (a dataset
    step), the same rule."""
    if one_hot:
        return tf.argmax(tf.reshape(labels, [tf.shape(labels)[0], -1]), axis=1,
                         output_type=tf.int32)
    labels = tf.reshape(labels, [-1])
    if labels.dtype.is_floating:
        labels = tf.round(labels)  # binary 0./1. labels (half to even, as np.rint)
    return tf.cast(labels, tf.int32)
