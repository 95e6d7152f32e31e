"""Split a Keras model at named layers into a head and a tail sub-model."""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Union

import keras

from keras_conductance.adapter import as_names
from keras_conductance.graph import layer_graph, require_functional, sub_model

__all__ = ["Split", "split_model"]


@dataclasses.dataclass
class Split:
    """A model cut in two at ``layers``.

    Attributes:
        head: ``keras.Model`` from the model inputs to the layer output(s);
            one output per layer, in the order given.
        tail: ``keras.Model`` from the layer output(s) to the model outputs,
            so that ``tail(head(x))`` equals ``model(x)``.
        layers: the layer names, in the order of ``head.outputs``.
    """

    head: keras.Model
    tail: keras.Model
    layers: List[str]


def split_model(model: keras.Model, layers: Union[str, Sequence[str]]) -> Split:
    """Splits ``model`` at ``layers`` into ``head`` and ``tail`` sub-models.

    The layers must form a cut: every path from the inputs to the outputs
    must pass through one of them. A single layer inside a residual block is
    not a cut (the skip connection bypasses it); the four parallel
    convolutions of a text CNN are a cut only together.

    Args:
        model: a Functional or Sequential ``keras.Model``. Models nested in it
            (e.g. a ``keras.applications`` network inside a ``Sequential``)
            are looked into: name their layers plainly when the name is
            unique, or as ``"outer/inner"``.
        layers: a layer name or a list of names that together form a cut.

    Returns:
        A ``Split`` with ``head`` (inputs -> layer outputs) and ``tail``
        (layer outputs -> model outputs).

    Raises:
        TypeError: ``model`` is subclassed or not a Keras model.
        ValueError: an unknown layer (the message lists the existing ones), or
            layers that a path bypasses (the message names the bypass and the
            nearest layers that are cuts).
    """
    names = as_names(layers, "layers")
    require_functional(model)  # a subclassed model: "no graph to split"
    graph = layer_graph(model)
    tensors = graph.resolve(names)
    graph.check_cut(names)
    cut = tensors[0] if len(tensors) == 1 else tensors
    head = graph.model_to(cut, f"{model.name}_head")
    tail = sub_model(cut, graph.outputs, f"{model.name}_tail")
    return Split(head=head, tail=tail, layers=names)
