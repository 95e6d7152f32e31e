"""Pictures for ``ConductanceCallback``'s TensorBoard Images tab.

Two kinds, both drawn with matplotlib into ``(H, W, 3)`` uint8 arrays that
``tf.summary.image`` stores as PNG:

* an **overlay** per image probe example: the input, then for each of its top
  filters the Eq. 2 pixel map over the input in grey (blue where the pixel
  raises the explained score through that filter, red where it lowers it,
  opaque in proportion to the value), with a colour bar;
* a labelled **heatmap** of the per-filter conductance, filters x probe
  examples, with a colour bar, for any model.

Without matplotlib, ``plain_heatmap`` draws the bare matrix in numpy.

Layouts use fixed sizes in inches (no ``tight_layout``), so where each panel
lies in the picture depends only on the shapes, not on the numbers or
the text: ``overlay_layout`` and ``heatmap_layout`` say where, for tests.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

DPI = 100
# TensorBoard's Images tab shows a picture in a card about 360 px wide
# (wider ones are shrunk to fit), so pictures are kept near 400-550 px and
# their text no smaller than 8 pt (11 px). PANEL_PIXELS: the longest side of
# an overlay panel, about.
PANEL_PIXELS = 160
TITLE_PT, TEXT_PT, SMALL_PT = 10, 9, 8
# Least distance between heatmap tick labels, in pixels.
TICK_SPACING = {"rows": 13, "names": 13, "numbers": 22}
# Overlay: opacity of a value at the colour bar's end; the grey under it
# spans [BASE_LOW, 1] so that dark pixels still show the colour.
OVERLAY_ALPHA = 0.85
BASE_LOW = 0.3
# Overlay colours: one blue and one red of matplotlib's RdBu (the package's
# convention), not its dark ends, which vanish over dark pixels.
POSITIVE, NEGATIVE = 0.9, 0.1
# The overlay's scale ignores the largest 0.5% of |map| (a few saturated
# pixels): otherwise one hot pixel leaves the rest of the map invisible.
OVERLAY_PERCENTILE = 99.5
# The bare fallback matrix is enlarged to about this many pixels wide.
PLAIN_PIXELS = 256


Rect = Tuple[float, float, float, float]  # matplotlib's (left, bottom, width, height)


@dataclasses.dataclass
class Layout:
    """Figure size in inches and axes rectangles in figure fractions."""

    size: Tuple[float, float]
    panels: List[Rect]
    colorbar: Rect

    def pixels(self, rect: Rect) -> Tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` rows/columns of ``rect`` in the picture."""
        w, h = self.size[0] * DPI, self.size[1] * DPI
        left, bottom, width, height = rect
        return (round((1 - bottom - height) * h), round((1 - bottom) * h),
                round(left * w), round((left + width) * w))


def is_image(inputs) -> bool:
    """A single array of images: ``(N, H, W, 1 or 3)`` numbers."""
    return (isinstance(inputs, np.ndarray) and inputs.ndim == 4
            and inputs.shape[-1] in (1, 3) and inputs.dtype.kind in "fiu")


def display_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W, 1|3)`` input of any scale -> ``(H, W, 3)`` floats in [0, 1].

    Min-max scaled per image: the model's input scale (0..255, -1..1,
    standardized) is unknown here.
    """
    image = np.asarray(image, np.float64)
    low, high = image.min(), image.max()
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.repeat(scaled, 3, axis=-1) if scaled.shape[-1] == 1 else scaled


def grey_base(rgb: np.ndarray) -> np.ndarray:
    """``(H, W)`` luminance lifted into [BASE_LOW, 1], under the overlay."""
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    return BASE_LOW + (1 - BASE_LOW) * luminance


def _sign_colours() -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["RdBu"]
    return np.array([cmap(NEGATIVE)[:3], cmap(POSITIVE)[:3]])


def overlay(base: np.ndarray, pixel_map: np.ndarray, limit: float) -> np.ndarray:
    """``(H, W, 3)`` floats: ``pixel_map`` over the grey ``base``.

    Blue where the map is positive, red where negative; the opacity is
    ``OVERLAY_ALPHA * |map| / limit`` (clipped at 1), so a pixel whose map
    is 0 keeps the base exactly.
    """
    v = np.clip(np.asarray(pixel_map, np.float64) / limit, -1.0, 1.0)
    colour = _sign_colours()[(v > 0).astype(int)]
    alpha = OVERLAY_ALPHA * np.abs(v)[..., None]
    return base[..., None] * (1 - alpha) + colour * alpha


def overlay_limit(maps: np.ndarray) -> float:
    """Shared symmetric scale of one example's maps (positive)."""
    magnitude = np.abs(maps)
    limit = float(np.percentile(magnitude, OVERLAY_PERCENTILE))
    return limit if limit > 0 else (float(magnitude.max()) or 1.0)


def _colorbar_cmap():
    """The overlay's colours as they look over white (the lightest base)."""
    from matplotlib.colors import ListedColormap

    v = np.linspace(-1, 1, 256)
    return ListedColormap(overlay(np.ones(1), v[None], 1.0)[0])


# -- layouts ----------------------------------------------------------------


def panel_scale(height: int, width: int) -> Tuple[int, int]:
    """``(repeat, stride)``: how an input is resized to about PANEL_PIXELS.

    Small inputs are enlarged by repeating pixels (a 28 x 28 digit shows
    its pixels, not a blur), large ones thinned by a stride.
    """
    side = max(height, width)
    return max(1, PANEL_PIXELS // side), max(1, math.ceil(side / (2 * PANEL_PIXELS)))


def overlay_layout(n_panels: int, height: int, width: int) -> Layout:
    """Panels in a near-square grid (input first), a colour bar below.

    ``height`` and ``width`` are the panels' sizes in pixels; every
    position is a whole pixel, so panels are copied into the picture as
    they are.
    """
    cols = math.ceil(math.sqrt(n_panels))
    rows = math.ceil(n_panels / cols)
    margin, gap, head, label, foot = 16, 16, 50, 24, 86  # pixels; label: a panel title
    fw = 2 * margin + cols * width + (cols - 1) * gap
    fh = head + rows * (label + height) + (rows - 1) * 8 + foot
    panels = []
    for i in range(n_panels):
        r, c = divmod(i, cols)
        left = margin + c * (width + gap)
        top = head + r * (label + height + 8) + label
        panels.append((left / fw, 1 - (top + height) / fh, width / fw, height / fh))
    bar_w = min(fw - 2 * margin - 20, 400)  # 10 px each side for the end arrows
    colorbar = ((fw - bar_w) // 2 / fw, 54 / fh, bar_w / fw, 12 / fh)
    return Layout((fw / DPI, fh / DPI), panels, colorbar)


def heatmap_layout(n_filters: int, n_examples: int, long_labels: bool) -> Layout:
    """The matrix (rows: filters, columns: examples) and a colour bar right."""
    mw = float(np.clip(0.2 * n_examples, 2.4, 4.2))
    # At least 2.2 in high: the colour bar's label must fit beside it.
    mh = float(np.clip(0.16 * n_filters, 2.2, 4.8))
    left, top, right = 0.75, 0.6, 1.05
    bottom = 1.25 if long_labels else 0.55  # room for slanted example names
    fw, fh = left + mw + right, top + mh + bottom
    matrix = (left / fw, bottom / fh, mw / fw, mh / fh)
    colorbar = ((left + mw + 0.15) / fw, bottom / fh, 0.15 / fw, mh / fh)
    return Layout((fw, fh), [matrix], colorbar)


# -- figures -----------------------------------------------------------------


def _figure(layout: Layout):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure with its own Agg canvas, not pyplot: the user's backend (a
    # notebook's inline one) and pyplot's list of open figures stay as they are.
    fig = Figure(figsize=layout.size, dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _heading(fig, text: str, x: float, y: float, ha: str):
    """The title, in a smaller font (down to SMALL_PT) if it would not fit."""
    title = fig.text(x, y, text, fontsize=TITLE_PT, ha=ha, va="top")
    room = fig.bbox.width - 2 * 8
    width = title.get_window_extent(fig.canvas.get_renderer()).width
    if width > room:
        title.set_fontsize(max(SMALL_PT, TITLE_PT * room / width))


def _ticks(n: int, inches: float, kind: str) -> np.ndarray:
    """Every k-th index, k as small as keeps labels apart."""
    most = max(2, int(inches * DPI / TICK_SPACING[kind]))
    return np.arange(0, n, max(1, math.ceil(n / most)))


def to_panel(picture: np.ndarray, repeat: int, stride: int) -> np.ndarray:
    """``(H, W, 3)`` floats in [0, 1] -> the panel's uint8 pixels."""
    thinned = picture[::stride, ::stride]
    enlarged = np.repeat(np.repeat(thinned, repeat, axis=0), repeat, axis=1)
    return np.round(255 * np.clip(enlarged, 0, 1)).astype(np.uint8)


def render_overlay(image: np.ndarray, maps: np.ndarray, filters: Sequence[int],
                   conductance: Sequence[float], heading: str) -> np.ndarray:
    """One probe example: its input, then each filter's Eq. 2 map over it.

    Args:
        image: ``(H, W, 1|3)`` the probe input.
        maps: ``(k, H, W)`` Eq. 2 pixel maps (summed over colour).
        filters: the k filter indices.
        conductance: the k filters' conductance for this example.
        heading: the figure's title (layer, example, target, epoch).

    Returns:
        ``(H', W', 3)`` uint8 picture.
    """
    rgb = display_rgb(image)
    base = grey_base(rgb)
    limit = overlay_limit(maps)
    scale = panel_scale(*rgb.shape[:2])
    panels = [to_panel(p, *scale) for p in [rgb] + [overlay(base, m, limit) for m in maps]]
    layout = overlay_layout(len(panels), *panels[0].shape[:2])
    fig = _figure(layout)
    height = round(layout.size[1] * DPI)
    _heading(fig, heading, 0.5, 1 - 8 / height, ha="center")
    titles = ["input"] + [f"filter {f}: C = {c:+.3g}" for f, c in zip(filters, conductance)]
    for rect, panel, title in zip(layout.panels, panels, titles):
        top, bottom, left, right = layout.pixels(rect)
        # Pixels copied as they are, no axes: exact, and several times
        # faster than an imshow per panel (this runs every record).
        fig.figimage(panel, xo=left, yo=height - bottom, origin="upper")
        fig.text((left + right) / 2 / (layout.size[0] * DPI), 1 - (top - 5) / height, title,
                 fontsize=TEXT_PT, ha="center", va="bottom")
    _overlay_colorbar(fig, layout, limit, np.abs(maps).max() > limit)
    return _pixels(fig)


def _overlay_colorbar(fig, layout: Layout, limit: float, clipped: bool):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(-limit, limit), _colorbar_cmap())
    bar = fig.colorbar(mappable, cax=fig.add_axes(layout.colorbar), orientation="horizontal",
                       extend="both" if clipped else "neither")
    # Five ticks, short numbers: small maps (1e-3) otherwise print overlapping labels.
    ticks = np.linspace(-limit, limit, 5)
    bar.set_ticks(ticks, labels=["0" if t == 0 else f"{t:+.2g}" for t in ticks])
    bar.ax.tick_params(labelsize=SMALL_PT)
    bar.set_label("per-pixel conductance (Eq. 2, summed over colour)\n"
                  "blue raises the explained score, red lowers it", fontsize=SMALL_PT)


def render_heatmap(per_filter: np.ndarray, heading: str,
                   names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Filters (rows) x probe examples (columns), with axes and a colour bar.

    Args:
        per_filter: ``(B, C)`` conductance per example and filter.
        heading: the figure's title (layer and epoch).
        names: B example names for the column labels (default: indices).

    Returns:
        ``(H, W, 3)`` uint8 picture.
    """
    values = np.asarray(per_filter, np.float64).T  # (C, B)
    n_filters, n_examples = values.shape
    limit = float(np.abs(values).max()) or 1.0
    layout = heatmap_layout(n_filters, n_examples, names is not None)
    fig = _figure(layout)
    ax = fig.add_axes(layout.panels[0])
    shown = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto",
                      interpolation="nearest")
    width, height = layout.size[0] * layout.panels[0][2], layout.size[1] * layout.panels[0][3]
    rows = _ticks(n_filters, height, "rows")
    cols = _ticks(n_examples, width, "numbers" if names is None else "names")
    ax.set_yticks(rows, [str(c) for c in rows], fontsize=SMALL_PT)
    labels = [str(b) if names is None else short(str(names[b])) for b in cols]
    ax.set_xticks(cols, labels, fontsize=SMALL_PT, rotation=0 if names is None else 45,
                  ha="center" if names is None else "right", rotation_mode="anchor")
    ax.set_ylabel("filter (channel index)", fontsize=TEXT_PT)
    ax.set_xlabel("probe example", fontsize=TEXT_PT)
    # From the picture's left edge, not the matrix's: a long layer name fits.
    _heading(fig, heading, 8 / (layout.size[0] * DPI), 1 - 8 / (layout.size[1] * DPI),
             ha="left")
    bar = fig.colorbar(shown, cax=fig.add_axes(layout.colorbar))
    bar.ax.tick_params(labelsize=SMALL_PT)
    # The heading names the quantity; the label says what the colours mean.
    bar.set_label("blue raises the score, red lowers it", fontsize=SMALL_PT)
    return _pixels(fig)


def short(name: str, most: int = 16) -> str:
    # Longer names, slanted, would run off the picture's left edge.
    return name if len(name) <= most else name[: most - 1] + "\u2026"


def plain_heatmap(per_filter: np.ndarray) -> np.ndarray:
    """``(B, C)`` -> ``(H, W, 3)`` uint8, the bare matrix without matplotlib.

    Row ``c`` is filter ``c``, column ``b`` is probe example ``b``; white is 0,
    blue positive, red negative, scaled by the largest |score|; cells are
    enlarged to about ``PLAIN_PIXELS`` wide.
    """
    values = np.asarray(per_filter, np.float32).T  # (C, B)
    scale = float(np.abs(values).max()) or 1.0
    v = np.clip(values / scale, -1.0, 1.0)
    fade = (255 * (1 - np.abs(v))).astype(np.uint8)
    full = np.full_like(fade, 255)
    red = np.where(v >= 0, fade, full)
    blue = np.where(v >= 0, full, fade)
    image = np.stack([red, fade, blue], axis=-1)
    cell = max(1, PLAIN_PIXELS // max(values.shape))
    return np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)
