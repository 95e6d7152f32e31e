"""A self-contained HTML/JSON/PNG report of per-filter conductance.

Plumbing only: it receives computed ``Measures`` and decides how to show
them. Figures need matplotlib (imported lazily); without it the report keeps
its tables and says how to get the figures.
"""

from __future__ import annotations

import base64
import html
import io
import json
import pathlib
from typing import List, Optional, Sequence

import numpy as np

from keras_conductance.attribution import Measures

__all__ = ["write_report", "summary"]

# The image strip shows at most this many examples (the tables show all).
MAX_EXAMPLES_SHOWN = 12


def summary(measures: Measures, top_k: int = 5) -> dict:
    """JSON-ready per-example summary: top filters and completeness per layer."""
    cond = measures.conductance
    examples = []
    for i in range(len(cond.output_diff)):
        layers = {}
        for layer in cond.layers:
            per_filter = cond.per_filter(layer)[i]
            order = np.argsort(-per_filter)[:top_k]
            layers[layer] = {
                "top_filters": [int(f) for f in order],
                "top_conductance": [float(per_filter[f]) for f in order],
                "sum": float(per_filter.sum()),
                "delta": float(cond.delta[layer][i]),
                "is_cut": bool(cond.is_cut[layer]),
            }
        examples.append({
            "target": int(cond.target[i]),
            "score_at_input": float(cond.output_at_input[i]),
            "score_at_baseline": float(cond.output_at_baseline[i]),
            "n_steps": int(cond.n_steps[i]),
            "layers": layers,
        })
    return {"method": cond.method, "layers": cond.layers, "examples": examples}


def _figures(measures: Measures, images: Optional[np.ndarray]):
    """Yields (name, matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cond = measures.conductance
    for layer in cond.layers:
        per_filter = cond.per_filter(layer)
        fig, ax = plt.subplots(figsize=(min(2 + 0.35 * per_filter.shape[1], 14), 1 + 0.35 * len(per_filter)))
        limit = float(np.abs(per_filter).max()) or 1.0
        im = ax.imshow(per_filter, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xlabel("filter")
        ax.set_ylabel("example")
        ax.set_title(f"{layer}: per-filter conductance (blue +, red -)")
        fig.colorbar(im, ax=ax, fraction=0.03)
        fig.tight_layout()
        yield f"{layer}_heatmap", fig
    if images is not None:
        layer = cond.layers[-1]
        per_filter = cond.per_filter(layer)
        n = min(len(per_filter), MAX_EXAMPLES_SHOWN)
        k = min(5, per_filter.shape[1])
        fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
        for i in range(n):
            axes[0, i].imshow(np.squeeze(images[i]), cmap="gray")
            axes[0, i].set_title(f"target {cond.target[i]}", fontsize=8)
            axes[0, i].axis("off")
            top = np.argsort(-per_filter[i])[:k]
            axes[1, i].barh(range(k), per_filter[i][top][::-1], color="tab:blue")
            axes[1, i].set_yticks(range(k), [str(f) for f in top[::-1]], fontsize=7)
            axes[1, i].tick_params(axis="x", labelsize=6)
        fig.suptitle(f"Top-{k} filters of {layer} by conductance"
                     + (f" (first {n} examples)" if n < len(per_filter) else ""), fontsize=10)
        fig.tight_layout()
        yield f"{layer}_top_filters", fig


def _table(info: dict) -> str:
    rows = []
    for i, ex in enumerate(info["examples"]):
        change = ex["score_at_input"] - ex["score_at_baseline"]
        cells = [html.escape(ex.get("name", str(i))), str(ex["target"]), f"{ex['score_at_input']:.3f}", f"{change:.3f}",
                 str(ex["n_steps"])]
        for layer in info["layers"]:
            entry = ex["layers"][layer]
            tops = ", ".join(f"{f} ({c:+.2f})" for f, c in zip(entry["top_filters"], entry["top_conductance"]))
            cells.append(f"{html.escape(tops)}<br><small>delta {entry['delta']:+.2e}</small>")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["#", "target", "F(x)", "F(x)-F(x')", "steps"] + [
        f"{html.escape(layer)}: top filters (conductance)" for layer in info["layers"]]
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(rows) + "</table>")


def write_report(out_dir, measures: Measures, *, images: Optional[np.ndarray] = None,
                 labels: Optional[Sequence[int]] = None, names: Optional[Sequence[str]] = None,
                 title: str = "Conductance report",
                 notes: Sequence[str] = (), ablation: Optional[dict] = None,
                 extra_figures: Sequence = ()) -> List[pathlib.Path]:
    """Writes ``report.json``, ``report.html`` and one PNG per figure.

    Args:
        out_dir: folder to write into (created).
        measures: result of ``kc.measures`` / ``Conductance.explain``.
        images: optional ``(B, H, W)`` or ``(B, H, W, 3)`` images to show.
        labels: optional true labels, stored in the JSON.
        names: optional example names (file names), shown and stored.
        title: page title.
        notes: lines shown under the title (baseline, explained score, ...).
        ablation: optional ``{"layer", "filters" (B, k), "drops" (B, k)}``:
            the score's drop when each top filter is ablated, shown beside
            its conductance and stored in the JSON.
        extra_figures: ``(name, matplotlib figure)`` pairs, e.g. Eq. 2 maps.

    Returns:
        The paths written.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = summary(measures)
    if labels is not None:
        for ex, label in zip(info["examples"], labels):
            ex["label"] = int(label)
    if names is not None:
        for ex, name in zip(info["examples"], names):
            ex["name"] = str(name)
    cond = measures.conductance
    ablation_html = ""
    if ablation is not None:
        layer, rows = ablation["layer"], []
        for i, ex in enumerate(info["examples"]):
            pairs = [(int(f), float(cond.per_filter(layer)[i, f]), float(d))
                     for f, d in zip(ablation["filters"][i], ablation["drops"][i])]
            ex["ablation_check"] = [{"filter": f, "conductance": c, "ablation_drop": d}
                                    for f, c, d in pairs]
            cells = "".join(f"<td>{f}: {c:+.3f} / {d:+.3f}</td>" for f, c, d in pairs)
            rows.append(f"<tr><td>{html.escape(ex.get('name', str(i)))}</td>{cells}</tr>")
        ablation_html = (
            f"<h2>Ablation check, {html.escape(layer)}</h2><p>Each example's top filters: "
            "conductance / drop of the score when the filter alone is set to zero "
            "(the paper's ablation). They agree in sign and rough size when the "
            "network is close to additive over these filters.</p><table>"
            + "".join(rows) + "</table>")
    written = [out / "report.json"]
    written[0].write_text(json.dumps(info, indent=1))
    blocks = []
    try:
        import matplotlib.pyplot as plt

        for name, fig in list(_figures(measures, images)) + list(extra_figures):
            png = out / f"{name}.png"
            fig.savefig(png, dpi=110)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=110)
            plt.close(fig)
            written.append(png)
            data = base64.b64encode(buffer.getvalue()).decode()
            blocks.append(f'<h2>{html.escape(name)}</h2><img src="data:image/png;base64,{data}">')
    except ImportError:
        blocks.append("<p>Figures need matplotlib: <code>pip install matplotlib</code>.</p>")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px;"
        "font-size:13px;vertical-align:top}table{border-collapse:collapse}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + "".join(f"<p>{html.escape(n)}</p>" for n in notes)
        + f"<p>Method: {html.escape(info['method'])}. delta = sum of a layer's conductance "
        "minus (F(x) - F(x')): the completeness error (exactly zero in the limit for a "
        "layer that cuts the network).</p>"
        + _table(info) + ablation_html + "".join(blocks) + "</body></html>"
    )
    written.append(out / "report.html")
    written[-1].write_text(page)
    return written
