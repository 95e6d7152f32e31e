"""What ``ConductanceCallback`` draws at a record for TensorBoard's Images tab.

The callback decides when a record is computed; this module computes the
record's pictures (a labelled heatmap of per-filter conductance per layer,
and over image probes the Eq. 2 maps of each shown example's top filters)
and ``_images`` renders them. The sinks only write what it returns.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_conductance.callbacks import _images
from keras_conductance.callbacks.record import Record
from keras_conductance.neuron import NeuronConductance

__all__ = ["RecordPictures", "MATPLOTLIB_MISSING"]

MATPLOTLIB_MISSING = (
    "ConductanceCallback draws its TensorBoard images (pixel-map overlays, "
    "labelled heatmaps) with matplotlib, which is not installed: it writes the "
    "bare filters x examples matrix instead. Install matplotlib with `pip "
    "install keras-conductance[tensorboard]` (or `pip install matplotlib`), or pass "
    "write_images=False."
)

Picture = Tuple[str, np.ndarray]  # (tag, (H, W, 3) uint8)


class RecordPictures:
    """The pictures of one callback's records, with its Eq. 2 explainers.

    Args: the callback's settings of the same names (already checked),
    taken once, when the callback first needs pictures, like its explainer
    and sinks; ``channel_axes`` is ``{layer: axis}``. One Eq. 2 explainer per
    layer is kept, so its compiled step is traced once, not per record.
    """

    def __init__(self, *, name: str, layers: Sequence[str], write_images, image_freq: int,
                 image_examples: int, image_filters: int, image_n_steps: int,
                 example_names: Optional[Sequence[str]], target, baselines, method: str,
                 output, start_layer: Optional[str], interpolate, jit_compile,
                 pre_softmax: bool, channel_axes: Dict[str, int]):
        self.name, self.layers = name, list(layers)
        self.write_images, self.image_freq = write_images, image_freq
        self.image_examples, self.image_filters = image_examples, image_filters
        self.image_n_steps, self.example_names = image_n_steps, example_names
        self.target, self.baselines, self.method = target, baselines, method
        self.output, self.start_layer, self.interpolate = output, start_layer, interpolate
        self.jit_compile, self.pre_softmax = jit_compile, pre_softmax
        self.channel_axes = channel_axes
        self.neuron: Dict[str, NeuronConductance] = {}  # layer -> Eq. 2 explainer
        self._neuron_model = None
        self._warned_matplotlib = False

    def kinds(self, inputs, wanted: bool) -> Tuple[str, ...]:
        """The pictures of this probe set: none, ``"heatmap"``, ``"overlay"``.

        ``wanted``: whether any sink writes images.
        """
        if self.write_images is False or not wanted:
            return ()
        # Pixel maps need a gradient to the pixels: one image input on the path.
        image = self.start_layer is None and _images.is_image(inputs)
        if self.write_images is True:
            return ("overlay",) if image else ("heatmap",)
        if self.write_images != "heatmap" and not image:
            raise ValueError(
                f"write_images={self.write_images!r} draws Eq. 2 pixel maps over "
                "image inputs (one array (B, H, W, 1 or 3), no start_layer); this "
                f"probe set is {_describe(inputs)}. Valid values for it: True, "
                "False, 'heatmap'."
            )
        return {"overlay": ("overlay",), "heatmap": ("heatmap",),
                "both": ("heatmap", "overlay")}[self.write_images]

    def check(self, model, inputs, wanted: bool):
        """Before any work (fit or evaluate): overlays asked of non-images fail here,
        and each layer's Eq. 2 explainer checks the layer and its axis."""
        if "overlay" in self.kinds(inputs, wanted) and self.can_draw():
            for n in self.layers:
                self.neuron_explainer(model, n)

    def can_draw(self) -> bool:
        if importlib.util.find_spec("matplotlib") is not None:
            return True
        if not self._warned_matplotlib:
            warnings.warn(MATPLOTLIB_MISSING, stacklevel=3)  # the callback's frame
            self._warned_matplotlib = True
        return False

    def draw(self, model, record: Record, per_filter: Dict[str, np.ndarray], inputs,
             targets: np.ndarray, wanted: bool) -> List[Picture]:
        """``(tag, (H, W, 3) uint8)`` images of this record, if it gets any.

        Args:
            per_filter: ``{layer: (B, C)}`` conductance per probe example.
            targets: ``(B,)`` the classes the record explained.
        """
        kinds = self.kinds(inputs, wanted)
        epoch = record.epoch
        if not kinds or (epoch >= 0 and (epoch + 1) % self.image_freq):
            return []
        if not self.can_draw():
            return [(f"{self.name}/{n}/heatmap", _images.plain_heatmap(per_filter[n]))
                    for n in self.layers]
        pictures = []
        for n in self.layers:
            if "heatmap" in kinds:
                heading = f"{n}: conductance per filter and probe example\n{record.when}"
                pictures.append((f"{self.name}/{n}/heatmap", _images.render_heatmap(
                    per_filter[n], heading, self.example_names)))
            if "overlay" in kinds:
                pictures += self._overlays(model, n, inputs, targets, per_filter[n],
                                           record.when)
        return pictures

    def _overlays(self, model, layer: str, inputs: np.ndarray, targets: np.ndarray,
                  per_filter: np.ndarray, when: str) -> List[Picture]:
        """One picture per shown example: its top filters' Eq. 2 maps."""
        shown = min(self.image_examples, len(inputs))
        k = min(self.image_filters, per_filter.shape[1])
        top = np.argsort(-np.abs(per_filter[:shown]), axis=1, kind="stable")[:, :k]
        maps = self._pixel_maps(model, layer, inputs, top, targets[:shown])
        digits = len(str(self.image_examples - 1))  # tags sort in example order
        pictures = []
        for b in range(shown):
            name = (f"probe example {b}" if self.example_names is None
                    else _images.short(self.example_names[b], 32))
            aim = "callable target" if callable(self.target) else f"class {targets[b]}"
            picture = _images.render_overlay(
                inputs[b], maps[b], top[b], per_filter[b, top[b]],
                f"{layer} \u00b7 {name} \u00b7 {aim}\n{when}")
            pictures.append((f"{self.name}/{layer}/pixel_maps/example_{b:0{digits}d}", picture))
        return pictures

    def _pixel_maps(self, model, layer: str, inputs: np.ndarray, top: np.ndarray,
                    targets: np.ndarray) -> np.ndarray:
        """``(shown, k, H, W)`` Eq. 2 maps of the first examples' ``top`` filters."""
        shown = len(top)
        # The record's explained classes (top class of that moment, labels
        # or an int); a callable target is passed on as it is.
        target = self.target if callable(self.target) else targets
        baselines = None if self.baselines is None else tf.nest.map_structure(
            lambda b: np.broadcast_to(np.asarray(b, np.float32), inputs.shape)[:shown],
            self.baselines)
        maps = self.neuron_explainer(model, layer)(
            inputs[:shown], top, target=target, baselines=baselines,
            n_steps=self.image_n_steps, method=self.method)
        return maps.sum(axis=-1)  # the paper's view: summed over colour

    def neuron_explainer(self, model, layer: str) -> NeuronConductance:
        """The layer's Eq. 2 explainer, built once per model."""
        if self._neuron_model is not model:
            self.neuron, self._neuron_model = {}, model
        if layer not in self.neuron:
            self.neuron[layer] = NeuronConductance(
                model, layer, output=self.output, interpolate=self.interpolate,
                jit_compile=self.jit_compile, pre_softmax=self.pre_softmax,
                channel_axis=self.channel_axes[layer])
        return self.neuron[layer]


def _describe(inputs) -> str:
    if isinstance(inputs, np.ndarray):
        return f"one array of shape {inputs.shape}"
    shapes = tf.nest.map_structure(lambda a: tuple(np.shape(a)), inputs)
    return f"several inputs {shapes}"
