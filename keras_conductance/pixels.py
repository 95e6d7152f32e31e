"""Pixel-level view (paper Section 5): Eq. 2 maps of a filter, summed over
the colour channels and shown over the image by scaling its pixels."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import keras
import numpy as np

from keras_conductance.arguments import check_indices, check_names, message
from keras_conductance.neuron import NeuronConductance
from keras_conductance.plotting import finish, pyplot

__all__ = ["PixelMaps", "pixel_maps"]


@dataclasses.dataclass
class PixelMaps:
    """Per-pixel conductance of chosen filters.

    Attributes:
        layer: the layer of the filters.
        filters: ``(B, F)`` the filters shown per image.
        maps: ``(B, F, H, W)`` Eq. 2 summed over colour channels.
        conductance: ``(B, F)`` each map's sum: the filter's conductance
            (Eq. 3) up to quadrature error.
        pixels: ``(B, H, W, 3)`` uint8 images for display.
        titles: one caption per image.
    """

    layer: str
    filters: np.ndarray
    maps: np.ndarray
    conductance: np.ndarray
    pixels: np.ndarray
    titles: Sequence[str]

    def plot(self, path=None, show_photo: bool = True, dpi: int = 100):
        """The paper's view: the image, then the image scaled by each
        filter's positive map. With ``show_photo=False`` only the maps, as
        heatmaps (blue raises the score, red lowers it), no image pixels."""
        plt = pyplot()
        n, f = self.filters.shape
        first = 1 if show_photo else 0
        fig, axes = plt.subplots(n, f + first, figsize=(2.1 * (f + first), 2.2 * n), squeeze=False)
        for i in range(n):
            if show_photo:
                axes[i, 0].imshow(self.pixels[i])
                axes[i, 0].set_title(self.titles[i], fontsize=7)
            for j in range(f):
                ax, m = axes[i, j + first], self.maps[i, j]
                if show_photo:
                    m = np.clip(m, 0, None)
                    m = m / (np.percentile(m, 99.5) or m.max() or 1.0)
                    ax.imshow((self.pixels[i] * np.clip(m, 0, 1)[..., None]).astype(np.uint8))
                else:
                    limit = np.percentile(np.abs(m), 99.5) or 1.0
                    ax.imshow(m, cmap="RdBu", vmin=-limit, vmax=limit)
                label = f"filter {self.filters[i, j]} ({self.conductance[i, j]:+.2f})"
                ax.set_title(label if show_photo else f"{self.titles[i]}: {label}", fontsize=7)
        for ax in axes.ravel():
            ax.axis("off")
        view = "pixels scaled by" if show_photo else "per-pixel (summed over colour)"
        fig.suptitle(f"{self.layer}: {view} Eq. 2 conductance", fontsize=9)
        return finish(fig, path, dpi=dpi)


def pixel_maps(
    model: keras.Model,
    inputs: np.ndarray,
    layer: str,
    filters,
    *,
    pixels: Optional[np.ndarray] = None,
    example_names: Optional[Sequence[str]] = None,
    target=None,
    baselines=None,
    output=None,
    pre_softmax: bool = False,
    n_steps: int = 64,
    method: str = "trapezoid",
    batch_size: Optional[int] = None,
    channel_axis: int = -1,
) -> PixelMaps:
    """Eq. 2 maps of each image's chosen filters, summed over colour.

    Args:
        model: an image model.
        inputs: ``(B, H, W, C)`` model inputs.
        layer: the layer of the filters.
        filters: ``(B, F)`` filter indices per image (e.g. its top filters by
            conductance), or ``(F,)`` for every image.
        pixels: ``(B, H, W, 3)`` uint8 images to show (default: ``inputs``
            rescaled to 0..255).
        example_names: one caption per image (default: "image i").
        target, baselines, output, pre_softmax: as ``neuron_conductance``.
        n_steps, method, batch_size, channel_axis: as ``neuron_conductance``.

    Returns:
        ``PixelMaps``; its ``conductance`` is each map's sum, which is the
        filter's conductance (Eq. 3) up to quadrature error.
    """
    explainer = NeuronConductance(model, layer, output=output, pre_softmax=pre_softmax,
                                  channel_axis=channel_axis)
    n = len(inputs) if isinstance(inputs, np.ndarray) else None
    # The pictures' arguments are checked before the (long) integration.
    names = check_names("example_names", example_names, n)
    pixels = _check_pixels(pixels, inputs) if n is not None else pixels
    maps = explainer(inputs, filters, target=target, baselines=baselines, n_steps=n_steps,
                     method=method, batch_size=batch_size)
    inputs = np.asarray(inputs)
    filters = check_indices("filters", filters, len(inputs), explainer.n_filters, layer)
    maps = maps.sum(axis=-1)  # (B, F, H, W): summed over colour
    if pixels is None:
        lo, hi = inputs.min(), inputs.max()
        pixels = ((inputs - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    names = names or [f"image {i}" for i in range(len(inputs))]
    return PixelMaps(layer, filters, maps, maps.sum(axis=(2, 3)), pixels, names)


def _check_pixels(pixels, inputs: np.ndarray) -> Optional[np.ndarray]:
    """``(B, H, W, 3)`` uint8 pictures of the inputs, or None."""
    if pixels is None:
        return None
    shape = np.shape(pixels)
    valid = f"None or (B={inputs.shape[0]}, H={inputs.shape[1]}, W={inputs.shape[2]}, 3) " \
        "images with values in 0..255"
    if len(shape) != 4 or shape[:3] != inputs.shape[:3] or shape[3] != 3:
        raise ValueError(message("pixels", valid, got=f"pixels of shape {shape}"))
    pixels = np.asarray(pixels)
    if pixels.dtype.kind not in "uif":
        raise TypeError(message("pixels", valid, got=f"pixels of dtype {pixels.dtype}"))
    return np.clip(pixels, 0, 255).astype(np.uint8)
