"""The report's matplotlib figures: per-filter heatmaps and top-filter bars.

Sized to stay legible at 1280 px (at most 10.5 inches wide, 110 dpi) and
coloured by the package's convention: blue positive, red negative.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from keras_conductance.plotting import pyplot

__all__ = ["figures", "MAX_EXAMPLES_SHOWN", "MAX_HEATMAP_ROWS"]

MAX_EXAMPLES_SHOWN = 12  # images with their top filters (the tables show all)
MAX_HEATMAP_ROWS = 50  # past this a row label is too small to read
COLUMNS = 6  # images per row of the top-filter figure
BLUE, RED = "#2166ac", "#b2182b"  # the ends of matplotlib's RdBu


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def heatmap(per_filter: np.ndarray, layer: str, names: Sequence[str], unit: str):
    """Examples x filters, RdBu symmetric about zero, rows named by example."""
    plt = pyplot()
    rows = min(len(per_filter), MAX_HEATMAP_ROWS)
    values = per_filter[:rows]
    fig, ax = plt.subplots(figsize=(10.5, 1.4 + 0.26 * rows))
    limit = float(np.abs(values).max()) or 1.0
    im = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto",
                   interpolation="nearest")
    ax.set_yticks(range(rows), [_short(str(n), 32) for n in names[:rows]],
                  fontsize=8 if rows <= 20 else 6)
    # Filters are whole numbers: no 0.25 ticks when a unit has two (heads).
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"filter (channel) of {layer}")
    more = f" (first {rows} of {len(per_filter)} examples)" if rows < len(per_filter) else ""
    ax.set_title(f"Per-filter conductance at {layer}{more}", fontsize=10)
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(f"conductance ({unit}); blue +, red −")
    fig.tight_layout()
    return fig


def top_filters(per_filter: np.ndarray, layer: str, images: np.ndarray,
                captions: Sequence[str], unit: str, k: int = 5):
    """Each image above a bar chart of its top-``k`` filters' conductance."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    n = min(len(per_filter), MAX_EXAMPLES_SHOWN)
    k = min(k, per_filter.shape[1])
    cols = min(n, COLUMNS)
    grid = -(-n // cols)
    # Rows sized to the square pictures, so a picture sits right above its bars.
    fig, axes = plt.subplots(2 * grid, cols, figsize=(1.75 * cols, 0.4 + 3.0 * grid),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": [1.5, 1.2] * grid})
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        picture, bars = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        image = np.squeeze(images[i])
        picture.imshow(image, cmap="gray" if image.ndim == 2 else None)
        picture.set_title(captions[i], fontsize=7)
        top = np.argsort(-per_filter[i])[:k][::-1]  # largest at the top of the chart
        values = per_filter[i][top]
        bars.axis("on")
        bars.barh(range(k), values, color=[BLUE if v >= 0 else RED for v in values])
        bars.axvline(0, color="#444", linewidth=0.6)
        bars.set_yticks(range(k), [str(f) for f in top], fontsize=7)
        bars.tick_params(axis="x", labelsize=6)
        bars.xaxis.set_major_locator(MaxNLocator(3))  # small panels: few, readable ticks
        bars.set_xlabel(f"conductance ({unit})", fontsize=7)
        if i % cols == 0:
            bars.set_ylabel("filter", fontsize=7)
    shown = f" (first {n} of {len(per_filter)} examples)" if n < len(per_filter) else ""
    fig.suptitle(f"Top-{k} filters of {layer} by conductance{shown}", fontsize=10)
    return fig


def figures(cond, names: Sequence[str], images: Optional[np.ndarray],
            captions: Sequence[str], unit: str,
            channel_axes: Optional[Dict[str, int]] = None) -> Iterator[Tuple[str, object, str]]:
    """Yields ``(file name, figure, section title)`` for a report
    (``channel_axes``: each unit's filter axis, default -1)."""
    axes = channel_axes or {}
    for layer in cond.layers:
        yield (f"{layer}_heatmap",
               heatmap(cond.per_filter(layer, axes.get(layer, -1)), layer, names, unit),
               f"Per-filter conductance at {layer}, every example")
    if images is not None:
        layer = cond.layers[-1]
        yield (f"{layer}_top_filters",
               top_filters(cond.per_filter(layer, axes.get(layer, -1)), layer, images,
                           captions, unit),
               f"Each image and the filters of {layer} that conduct most")
