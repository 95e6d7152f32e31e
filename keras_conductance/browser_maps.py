"""The unit browser's pictures: examples as 8-bit thumbnails, and each kept
entry's Eq. 2 map as a transparent overlay of the same size."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import numpy as np

from keras_conductance.progress import Progress

__all__ = ["THUMB", "display", "pixel_overlays", "shown_slots", "write_png"]

THUMB = 160  # longest side of a picture on the page, px
_ROWS = 64  # maps per neuron_conductance call (memory: rows x H x W x channels)
_BLUE, _RED = (33, 102, 172), (178, 24, 43)
_OPACITY = 190  # of 255, at the map's 99th percentile: the picture stays visible


def shown_slots(top, unit: int, sign: str) -> np.ndarray:
    """The slots of a unit's list that the page shows: filled, and of the
    list's sign (a unit that never conducts against the score has no
    "against" entries, rather than its weakest positive ones)."""
    values, examples = top.values[sign][unit], top.examples[sign][unit]
    right_way = values > 0 if sign == "positive" else values < 0
    return np.flatnonzero(right_way & (examples >= 0))


def _step(shape) -> int:
    """The stride that brings a picture's longest side to ``THUMB`` or less."""
    return max(1, int(np.ceil(max(shape[:2]) / THUMB)))


def display(image: np.ndarray) -> np.ndarray:
    """A model input as 8-bit pixels: its 1st-99th percentile stretched to
    0..255 (the preprocessing is unknown here), at most ``THUMB`` px."""
    image = np.asarray(image, np.float32)
    if image.shape[-1] not in (1, 3, 4):  # not a picture's channels: their mean, in grey
        image = image.mean(axis=-1, keepdims=True)
    step = _step(image.shape)
    image = image[::step, ::step]
    low, high = np.percentile(image, [1, 99])
    scaled = (image - low) / max(high - low, 1e-12)
    pixels = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    return pixels[..., :3] if pixels.shape[-1] == 4 else pixels


def write_png(path: str, pixels: np.ndarray) -> None:
    import tensorflow as tf  # PNG encoding without another dependency

    with open(path, "wb") as f:
        f.write(tf.io.encode_png(tf.constant(pixels)).numpy())


def _overlay(attribution: np.ndarray) -> np.ndarray:
    """``(H, W)`` attribution -> RGBA at the thumbnails' size: blue where it
    raises the score, red where it lowers it, opacity by magnitude (scaled
    to the map's 99th percentile of |value|, so one bright pixel does not
    wash out the rest)."""
    step = _step(attribution.shape)
    # Each thumbnail pixel shows the sum of the pixels it stands for.
    h, w = attribution.shape
    pooled = np.add.reduceat(np.add.reduceat(attribution, np.arange(0, h, step), axis=0),
                             np.arange(0, w, step), axis=1)
    scale = np.percentile(np.abs(pooled), 99) or np.abs(pooled).max() or 1.0
    alpha = np.clip(np.abs(pooled) / scale, 0, 1)
    rgba = np.zeros(pooled.shape + (4,), np.uint8)
    rgba[..., :3] = np.where((pooled >= 0)[..., None], _BLUE, _RED)
    rgba[..., 3] = np.round(alpha * _OPACITY).astype(np.uint8)
    return rgba


def pixel_overlays(model, layer: str, top, rows_of, inputs: np.ndarray, folder: str, *,
                   output, baselines, pre_softmax: bool, n_steps: int,
                   batch_size: Optional[int], channel_axis: int,
                   channels_first: bool) -> Dict[Tuple[int, str, int], str]:
    """Eq. 2 maps of every shown entry of one image layer, as overlay PNGs.

    Entry ``(unit, sign, j)`` gets the map of its unit for its example and
    its explained class: ``kc.neuron_conductance`` with that one filter,
    summed over colour. Entries explained by a callable target (-1) get
    none (the callable is not stored with the result).

    Args:
        model: the dataset run's model.
        layer: the layer's name; top: its ``TopExamples``.
        rows_of: dataset indices -> rows of ``inputs``.
        inputs: ``(N, H, W, C)`` the kept examples' inputs.
        folder: where the PNGs go (created).
        output, baselines, pre_softmax, n_steps, batch_size, channel_axis:
            as ``neuron_conductance``.
        channels_first: the inputs are ``(N, C, H, W)``.

    Returns:
        ``(unit, sign, j) -> path`` relative to the browser's folder.
    """
    from keras_conductance.neuron import neuron_conductance

    slots = [(c, s, int(j)) for c in range(top.n_units) for s in ("positive", "negative")
             for j in shown_slots(top, c, s) if top.targets[s][c, j] >= 0]
    os.makedirs(folder, exist_ok=True)
    relative = os.path.join(*folder.replace(os.sep, "/").split("/")[-2:])
    written = {}
    # Shown once the maps have taken a few seconds (a layer of many units).
    progress = Progress(len(slots), "maps", "auto", f"Eq. 2 maps of {layer}")
    for start in range(0, len(slots), _ROWS):
        block = slots[start:start + _ROWS]
        rows = rows_of(np.array([top.examples[s][c, j] for c, s, j in block]))
        maps = neuron_conductance(
            model, inputs[rows], layer, np.array([[c] for c, _, _ in block]),
            target=np.array([top.targets[s][c, j] for c, s, j in block]), output=output,
            baselines=baselines, pre_softmax=pre_softmax, n_steps=n_steps,
            batch_size=batch_size, channel_axis=channel_axis)
        colour = 1 if channels_first else -1  # (rows, 1, ...): the picture's channel axis
        per_pixel = np.asarray(maps)[:, 0].sum(axis=colour)
        for (c, s, j), attribution in zip(block, per_pixel):
            name = f"{c}_{s[0]}{j}.png"
            write_png(os.path.join(folder, name), _overlay(attribution))
            written[c, s, j] = f"{relative}/{name}"
        progress.update(len(block))
    progress.close()
    return written
