"""A self-contained HTML/JSON/PNG report of per-filter conductance.

Plumbing only: it receives computed ``Measures`` and decides how to show
them (the page in ``report_html``, the figures in ``report_figures``).
Figures need matplotlib (imported lazily); without it the report keeps its
tables and says how to get the figures.
"""

from __future__ import annotations

import io
import json
import pathlib
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_conductance import report_figures, report_html
from keras_conductance.attribution import Measures
from keras_conductance.class_names import label_of

__all__ = ["write_report", "summary"]

# A drop or conductance under this share of |F(x) - F(x')| counts as zero when
# signs are compared: float noise on a dead filter is no disagreement.
SIGN_FLOOR = 1e-3


def _relative(delta: float, change: float) -> Optional[float]:
    """|delta| / |F(x) - F(x')|; None when the score did not change."""
    return None if change == 0 else abs(delta) / abs(change)


def summary(measures: Measures, top_k: int = 5, *, names: Optional[Sequence[str]] = None,
            class_names: Optional[Sequence[str]] = None,
            labels: Optional[Sequence[int]] = None,
            channel_axes: Optional[Dict[str, int]] = None) -> dict:
    """JSON-ready per-example summary: top filters and completeness per layer.

    Args:
        measures: result of ``kc.measures`` / ``Conductance.explain``.
        top_k: filters listed per example and layer.
        names: example names (default ``"example 0"``, ...).
        class_names: names of the output's classes, index order.
        labels: true classes, stored beside the explained one.
        channel_axes: each unit's filter axis (default -1), e.g. -2 for
            attention heads ``(B, T, heads, head_dim)``.

    Returns:
        ``{"method", "layers", "examples": [...]}``.
    """
    cond = measures.conductance
    axes = channel_axes or {}
    examples = []
    for i in range(len(cond.output_diff)):
        change = float(cond.output_diff[i])
        layers = {}
        for layer in cond.layers:
            per_filter = cond.per_filter(layer, axes.get(layer, -1))[i]
            order = np.argsort(-per_filter)[:top_k]
            delta = float(cond.delta[layer][i])
            layers[layer] = {
                "top_filters": [int(f) for f in order],
                "top_conductance": [float(per_filter[f]) for f in order],
                "sum": float(per_filter.sum()),
                "delta": delta,
                "relative_delta": _relative(delta, change),
                # None: a unit inside a layer, whose cut status is unknown.
                "is_cut": None if cond.is_cut[layer] is None else bool(cond.is_cut[layer]),
            }
        target = int(cond.target[i])
        example = {"name": str(names[i]) if names is not None else f"example {i}",
                   "target": target, "class_name": label_of(target, class_names),
                   "score_at_input": float(cond.output_at_input[i]),
                   "score_at_baseline": float(cond.output_at_baseline[i]),
                   "n_steps": int(cond.n_steps[i]), "layers": layers}
        if labels is not None:
            example["label"] = int(labels[i])
            example["label_name"] = label_of(int(labels[i]), class_names)
        examples.append(example)
    return {"method": cond.method, "layers": cond.layers, "examples": examples}


def _disagrees(conductance: float, drop: float, change: float) -> bool:
    floor = SIGN_FLOOR * abs(change)
    return conductance * drop < 0 and min(abs(conductance), abs(drop)) > floor


def _add_ablation(info: dict, cond, ablation: dict, channel_axes: Dict[str, int]) -> None:
    """Stores each example's ablation check, with sign disagreements flagged."""
    per_filter = cond.per_filter(ablation["layer"], channel_axes.get(ablation["layer"], -1))
    extra = ablation.get("baseline_drops")
    for i, ex in enumerate(info["examples"]):
        change = ex["score_at_input"] - ex["score_at_baseline"]
        checks = []
        for j, (f, drop) in enumerate(zip(ablation["filters"][i], ablation["drops"][i])):
            c = float(per_filter[i, int(f)])
            check = {"filter": int(f), "conductance": c, "ablation_drop": float(drop),
                     "ablation_drop_disagrees": _disagrees(c, float(drop), change)}
            if extra is not None:
                other = float(extra[i][j])
                check["baseline_ablation_drop"] = other
                check["baseline_ablation_drop_disagrees"] = _disagrees(c, other, change)
            checks.append(check)
        ex["ablation_check"] = checks


def _captions(info: dict) -> List[str]:
    """Two short lines per image: its name and the explained class."""
    def short(text, width=24):
        return text if len(text) <= width else text[:width - 1] + "\u2026"
    return [f"{short(ex['name'])}\n{short(ex['class_name'])}" for ex in info["examples"]]


def _file_name(name: str) -> str:
    """A unit's name as a file name: "block/ffn:input" -> "block_ffn_input"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _figure_blocks(out: pathlib.Path, cond, info, images, unit, extra_figures, written, axes):
    """Saves each figure as a PNG and returns its HTML blocks."""
    import matplotlib.pyplot as plt

    names = [ex["name"] for ex in info["examples"]]
    made = report_figures.figures(cond, names, images, _captions(info), unit, axes)
    blocks = []
    for item in list(made) + list(extra_figures):
        name, fig = item[0], item[1]
        title = item[2] if len(item) > 2 else name.replace("_", " ")
        caption = item[3] if len(item) > 3 else ""
        stem = _file_name(name)
        png, n = out / f"{stem}.png", 2
        while png in written:  # "a/b" and "a:b" both read "a_b"
            png, n = out / f"{stem}_{n}.png", n + 1
        fig.savefig(png, dpi=110)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        written.append(png)
        blocks.append(report_html.figure_block(title, buffer.getvalue(), caption))
    return blocks


def write_report(out_dir, measures: Measures, *, images: Optional[np.ndarray] = None,
                 labels: Optional[Sequence[int]] = None, names: Optional[Sequence[str]] = None,
                 class_names: Optional[Sequence[str]] = None, score_unit: str = "score",
                 title: str = "Conductance report",
                 notes: Sequence[str] = (), ablation: Optional[dict] = None,
                 extra_figures: Sequence = (),
                 channel_axes: Optional[Dict[str, int]] = None) -> List[pathlib.Path]:
    """Writes ``report.json``, ``report.html`` and one PNG per figure.

    Args:
        out_dir: folder to write into (created).
        measures: result of ``kc.measures`` / ``Conductance.explain``.
        images: optional ``(B, H, W)`` or ``(B, H, W, 3)`` images (0..1) to show.
        labels: optional true labels, stored in the JSON.
        names: optional example names (file names), shown and stored.
        class_names: optional names of the output's classes, shown beside
            every class index.
        score_unit: what F is, for axis labels and headers ("logit",
            "probability", "score").
        title: page title.
        notes: lines shown under the title (baseline, explained score, ...).
        ablation: optional ``{"layer", "filters" (B, k), "drops" (B, k)}``
            and optionally ``"baseline_drops"`` (B, k): the score's drop when
            each top filter is set to zero (and to its baseline activation),
            shown beside its conductance and stored in the JSON.
        extra_figures: ``(file name, matplotlib figure[, section title[,
            caption]])`` tuples, e.g. Eq. 2 maps.
        channel_axes: each unit's filter axis (default -1), e.g. -2 for
            attention heads.

    Returns:
        The paths written.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    axes = dict(channel_axes or {})
    info = summary(measures, names=names, class_names=class_names, labels=labels,
                   channel_axes=axes)
    cond = measures.conductance
    sections = [report_html.results_table(info, score_unit)]
    if ablation is not None:
        _add_ablation(info, cond, ablation, axes)
        sections.append(report_html.ablation_section(info, ablation["layer"], score_unit))
    written = [out / "report.json"]
    written[0].write_text(json.dumps(info, indent=1))
    missing = None
    try:
        sections += _figure_blocks(out, cond, info, images, score_unit, extra_figures, written,
                                   axes)
    except ImportError:
        missing = "Figures need matplotlib: <code>pip install matplotlib</code>."
    page = report_html.page(title, notes, info["method"], sections, missing)
    written.append(out / "report.html")
    written[-1].write_text(page, encoding="utf-8")
    return written
