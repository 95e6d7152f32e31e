"""Result types: per-layer attributions with their completeness bookkeeping."""

from __future__ import annotations

import dataclasses
from typing import Dict, ItemsView, Iterator, KeysView, List, Mapping, Optional, Sequence, Union

import numpy as np

from keras_conductance.arguments import as_names, check, check_axis, message, received

__all__ = ["Attribution", "Measures", "relative_error"]


def relative_error(delta: np.ndarray, output_diff: np.ndarray) -> np.ndarray:
    """|delta| / |F(x) - F(x')|, elementwise.

    No absolute floor: completeness is scale-free (a ReLU network's scores
    may legitimately be 1e-11), so only an exactly zero change is guarded.
    """
    return np.abs(delta) / np.maximum(np.abs(output_diff), 1e-30)


def channel_axes(channel_axis: Union[int, Mapping[str, int]],
                 layers: Sequence[str]) -> Dict[str, int]:
    """The filter axis of each unit: one int for all, or a dict per unit.

    A dict lets one request mix kinds of units, e.g. FFN neurons
    ``(B, T, F)`` on axis -1 with attention heads ``(B, T, heads, d)`` on
    axis -2; units it leaves out use -1.

    Args:
        channel_axis: an int for every unit, or ``{unit: int}``.
        layers: the requested unit names, in order.

    Returns:
        ``{unit: axis}`` for every name in ``layers``, in that order.

    Raises:
        ValueError: a dict key that is not one of ``layers``.
        TypeError: anything but an int or a dict of ints.
    """
    if isinstance(channel_axis, Mapping):
        unknown = [k for k in channel_axis if k not in layers]
        if unknown:
            raise ValueError(
                f"`channel_axis` names units that are not requested: {unknown}. "
                f"Requested units: {list(layers)}."
            )
        axes = {n: channel_axis.get(n, -1) for n in layers}
    else:
        axes = {n: channel_axis for n in layers}
    for name, axis in axes.items():
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(message(
                "channel_axis", "an int or a dict {unit: int}", channel_axis,
                got=f"{received('channel_axis', channel_axis)} ({name!r}: {axis!r})"))
    return {n: int(a) for n, a in axes.items()}


def filters_along(shape: Sequence[int], channel_axis: int) -> int:
    """How many filters a unit of per-example ``shape`` (no batch axis) has
    along ``channel_axis`` (an axis of the batched output)."""
    return int(shape[channel_axis % (len(shape) + 1) - 1])


def check_channel_axes(axes: Mapping[str, int], layer_shapes: Sequence[tuple],
                       label: str = "channel_axis") -> None:
    """Checks that each unit's filter axis is a non-batch axis of its output.

    Args:
        axes: ``{unit: axis}`` as ``channel_axes`` returns it.
        layer_shapes: per-example output shapes (no batch axis), one per
            unit, in the order of ``axes``.
        label: the argument's name in messages (the CLI's flag).

    Raises:
        ValueError: an axis out of range, or the batch axis.
    """
    for (name, axis), shape in zip(axes.items(), layer_shapes):
        check_axis(label, axis, len(shape) + 1, name, tuple(shape))


@dataclasses.dataclass(eq=False)
class Attribution:
    """Per-unit scores of one measure for several layers.

    Index it by layer name: ``attr["conv2"]`` is a float32 numpy array of
    shape ``(B, *layer_output_shape[1:])``.

    Attributes:
        measure: ``"conductance"``, ``"internal_influence"``,
            ``"gradient_x_activation"`` or ``"activation"``.
        by_layer: layer name -> ``(B, *Y)`` float32 scores.
        output_diff: ``(B,)`` F(x) - F(x'), the explained score's change
            along the path.
        output_at_input: ``(B,)`` F(x).
        output_at_baseline: ``(B,)`` F(x').
        target: ``(B,)`` int output index explained per example (-1 when a
            callable target was given).
        n_steps: ``(B,)`` steps of each example's final grid (they differ
            between examples only with ``tolerance``).
        n_points: ``(B,)`` path points evaluated per example: the cost (with
            ``tolerance`` it counts every refinement round).
        method: the integration rule's name.
        is_cut: layer name -> whether the layer alone cuts the network (only
            then must its conductances add up to ``output_diff``); None for
            a unit inside a layer, where the package cannot tell.
        path_scores: ``(B, P)`` the score F at each path point of the final
            rule (useful to see where along the path F changes).
        alphas: ``(P,)`` the path points of ``path_scores``; with
            ``tolerance`` ``(B, P)``, each example's own points in order,
            NaN-padded (``path_scores`` too).
        channel_axes: unit -> its filter axis when ``per_filter`` is given
            none: -2 for attention heads by meaning (``"block:heads"``),
            else -1.
        unjudged: the units whose completeness could not be checked (units
            inside layers, layers that are not cuts): the convergence warning
            and the completeness half of ``tolerance`` speak only for the
            others (the error estimate covers every unit).
        error_estimate: unit -> ``(B,)`` estimated relative L1 error of its
            per-filter conductances (with ``tolerance``; empty otherwise).
    """

    measure: str
    by_layer: Dict[str, np.ndarray]
    output_diff: np.ndarray
    output_at_input: np.ndarray
    output_at_baseline: np.ndarray
    target: np.ndarray
    n_steps: np.ndarray
    method: str
    is_cut: Dict[str, Optional[bool]]
    path_scores: Optional[np.ndarray] = None
    alphas: Optional[np.ndarray] = None
    channel_axes: Dict[str, int] = dataclasses.field(default_factory=dict)
    unjudged: List[str] = dataclasses.field(default_factory=list)
    n_points: Optional[np.ndarray] = None
    error_estimate: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    # Read-only mapping: layer name -> scores.
    def __getitem__(self, layer: str) -> np.ndarray:
        if not isinstance(layer, str):
            raise TypeError(message("layer", "a layer name (str)", layer))
        try:
            return self.by_layer[layer]
        except KeyError:
            raise KeyError(
                f"No such layer: {layer!r}: no attribution for it. This result holds the "
                f"layers: {list(self.by_layer)}."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_layer)

    def __len__(self) -> int:
        return len(self.by_layer)

    def __contains__(self, layer) -> bool:
        return layer in self.by_layer

    def keys(self) -> KeysView:
        return self.by_layer.keys()

    def items(self) -> ItemsView:
        return self.by_layer.items()

    @property
    def layers(self) -> List[str]:
        return list(self.by_layer)

    @property
    def delta(self) -> Dict[str, np.ndarray]:
        """Layer name -> ``(B,)``: sum of the layer's scores minus F(x) - F(x').

        For conductance of a cut layer this is the quadrature's completeness
        error; for the other measures it shows how far they are from adding
        up to the output change (they are not meant to).
        """
        return {name: self.delta_of([name]) for name in self.by_layer}

    def delta_of(self, layers: Sequence[str]) -> np.ndarray:
        """``(B,)`` completeness error of several layers taken together.

        Use it for layers that only together form a cut, such as the parallel
        convolution widths of a text CNN.
        """
        total = sum(self[name].reshape(len(self.output_diff), -1).sum(axis=1)
                    for name in as_names(layers))
        return (total - self.output_diff).astype(np.float32)

    def relative_delta(self, layers: Optional[Sequence[str]] = None) -> np.ndarray:
        """``(B,)`` |delta| / |F(x) - F(x')| for one layer or a group."""
        layers = self.layers[:1] if layers is None else as_names(layers)
        return relative_error(self.delta_of(layers), self.output_diff)

    def per_filter(self, layer: str, channel_axis: Optional[int] = None) -> np.ndarray:
        """``(B, C)``: scores summed over every axis but batch and channel.

        Args:
            layer: layer name.
            channel_axis: axis of the layer output holding the channels
                (filters); -1 for channels-last, 1 for channels-first.
                Default: the unit's own (-2, the head axis, for
                ``"block:heads"``; else -1).
        """
        values = self[layer]
        if channel_axis is None:
            channel_axis = self.channel_axes.get(layer, -1)
        if values.ndim < 2:
            raise ValueError(
                f"Layer {layer!r} has output shape {values.shape[1:]}: there "
                "is no channel axis to keep."
            )
        axis = check_axis("channel_axis", channel_axis, values.ndim, layer, values.shape[1:])
        moved = np.moveaxis(values, axis, -1)
        return moved.reshape(moved.shape[0], -1, moved.shape[-1]).sum(axis=1)

    def top_filters(self, layer: str, k: int = 10,
                    channel_axis: Optional[int] = None) -> np.ndarray:
        """``(B, k)`` int indices of the k filters with the largest score
        (ties: the lower index first); ``k`` within 1..the filters."""
        scores = self.per_filter(layer, channel_axis)
        k = check("k", k, high=scores.shape[1])
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.by_layer.items()}
        return (
            f"Attribution(measure={self.measure!r}, method={self.method!r}, "
            f"layers={shapes})"
        )


@dataclasses.dataclass(eq=False)
class Measures:
    """The paper's four measures from one pass over the path.

    Attributes:
        conductance: Eq. 3 per unit.
        internal_influence: Eq. 4 per unit (same path and quadrature).
        gradient_x_activation: y * dF/dy at the input.
        activation: y at the input.
    """

    conductance: Attribution
    internal_influence: Attribution
    gradient_x_activation: Attribution
    activation: Attribution

    def as_dict(self) -> Dict[str, Attribution]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __iter__(self):
        return iter(self.as_dict().items())
