"""Pixel-level view (paper Section 5): Eq. 2 maps of a filter, summed over
the colour channels and shown over the image by scaling its pixels."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import keras
import numpy as np

from keras_conductance.neuron import NeuronConductance
from keras_conductance.studies.common import pyplot, finish

__all__ = ["PixelMaps", "pixel_maps"]


@dataclasses.dataclass
class PixelMaps:
    """Per-pixel conductance of chosen filters.

    Attributes:
        layer: the layer of the filters.
        filters: ``(B, F)`` the filters shown per image.
        maps: ``(B, F, H, W)`` Eq. 2 summed over colour channels.
        conductance: ``(B, F)`` the filters' conductance (Eq. 3), to compare
            with ``maps.sum((2, 3))`` (equal up to quadrature error).
        pixels: ``(B, H, W, 3)`` uint8 images for display.
        titles: one caption per image.
    """

    layer: str
    filters: np.ndarray
    maps: np.ndarray
    conductance: np.ndarray
    pixels: np.ndarray
    titles: Sequence[str]

    def map_sum_error(self) -> np.ndarray:
        """``(B, F)`` |sum of the map - conductance| / |conductance|."""
        total = self.maps.sum(axis=(2, 3))
        return np.abs(total - self.conductance) / np.maximum(np.abs(self.conductance), 1e-12)

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
    images: np.ndarray,
    layer: str,
    filters: np.ndarray,
    conductance: np.ndarray,
    *,
    pixels: Optional[np.ndarray] = None,
    titles: Optional[Sequence[str]] = None,
    target=None,
    baselines=None,
    output=None,
    pre_softmax: bool = False,
    n_steps: int = 64,
    method: str = "trapezoid",
    batch_size: Optional[int] = None,
    channel_axis: int = -1,
) -> PixelMaps:
    """Eq. 2 maps of each image's chosen filters, summed over channels.

    Args:
        model: an image model.
        images: ``(B, H, W, 3)`` model inputs.
        layer: the layer of the filters.
        filters: ``(B, F)`` filter indices per image (e.g. top by conductance).
        conductance: ``(B, F)`` those filters' conductance, for the check.
        pixels: ``(B, H, W, 3)`` uint8 images to display (default: rescaled
            inputs).
        titles: captions.
        target, baselines, output, pre_softmax: as ``neuron_conductance``.
        n_steps, method, batch_size, channel_axis: as ``neuron_conductance``.

    Returns:
        ``PixelMaps``.
    """
    explainer = NeuronConductance(model, layer, output=output, pre_softmax=pre_softmax,
                                  channel_axis=channel_axis)
    filters = np.asarray(filters)
    target = None if target is None else np.broadcast_to(np.asarray(target), (len(images),))
    maps = []
    for i in range(len(images)):
        b = None if baselines is None else np.broadcast_to(baselines, images.shape)[i:i + 1]
        t = None if target is None else target[i:i + 1]
        m = explainer(images[i:i + 1], filters[i], target=t, baselines=b, n_steps=n_steps,
                      method=method, batch_size=batch_size)
        maps.append(m[0].sum(axis=-1))
    if pixels is None:
        lo, hi = images.min(), images.max()
        pixels = ((images - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    titles = titles or [f"image {i}" for i in range(len(images))]
    return PixelMaps(layer, filters, np.stack(maps), np.asarray(conductance), pixels, titles)
