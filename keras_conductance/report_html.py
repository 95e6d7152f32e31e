"""The report's HTML: the explanation at the top, the tables, the figures.

Built for a 1280 px window: figures shrink to the page width, wide tables
scroll inside their own box, long names wrap. Signed numbers follow the
package's colour convention (blue positive, red negative).
"""

from __future__ import annotations

import base64
import html
import re
from typing import List, Optional, Sequence

__all__ = ["page", "results_table", "ablation_section", "figure_block"]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;color:#222;
 max-width:1180px;margin:1.5em auto;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.3em} h2{font-size:1.2em;margin-top:1.8em}
p,li{max-width:62em;overflow-wrap:anywhere}
.lead{font-size:1.05em;background:#f5f7fa;border-left:4px solid #2166ac;padding:.6em .9em}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #ccc;padding:3px 7px;font-size:13px;vertical-align:top;text-align:left}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{max-width:20em;overflow-wrap:break-word}
.pos{color:#2166ac}.neg{color:#b2182b}
td.disagree{background:#fff1b8;font-weight:bold}
small{color:#555}
"""

# What conductance and delta are, in two sentences, for a reader who has
# not read the paper; and the colour convention, said once.
INTRO = (
    "Conductance (Dhamdhere et al., 2018, \u201cHow Important Is a Neuron?\u201d) is how "
    "much of the change of the explained score, from the baseline input x\u2032 to the "
    "input x, flows through one hidden unit (here a filter): Integrated Gradients "
    "along the straight path from x\u2032 to x, credited to the units of a layer "
    "instead of to the input. A layer's conductances add up to F(x) \u2212 F(x\u2032), "
    "and delta, the completeness error, is how far their sum misses it, shown here "
    "in % of |F(x) \u2212 F(x\u2032)| (small is good: the integral has converged)."
)
COLOURS = ("Colours: <span class='pos'>blue = positive</span> (the unit raises the "
           "score), <span class='neg'>red = negative</span> (it lowers it), white = zero.")


def num(value: float, digits: int = 3) -> str:
    """A signed number in the sign's colour (a true minus sign)."""
    text = f"{value:+.{digits}g}".replace("-", "\u2212")
    return f"<span class='{'neg' if value < 0 else 'pos'}'>{text}</span>"


def _name(text: str) -> str:
    """An example's name, escaped, breakable after ``_ . / -`` so that a long
    file name wraps in its column instead of widening the table."""
    if len(text) <= 24:  # fits a column as it is
        return html.escape(text)
    return re.sub(r"([_./-])", r"\1<wbr>", html.escape(text))


def _cell(content: str, kind: str = "") -> str:
    return f"<td class='{kind}'>{content}</td>" if kind else f"<td>{content}</td>"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    return (f"<div class='scroll'><table><thead><tr>{header}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def _percent(entry: dict) -> str:
    # Only a cut's conductances must add up to F(x) - F(x'); for other units
    # the gap is the flow that bypasses them, not an error.
    if entry.get("is_cut") is False:
        return "not a cut (part of the flow)"
    if "is_cut" in entry and entry["is_cut"] is None:
        return "unknown (unit inside a layer)"
    share = entry.get("relative_delta")
    if share is None:
        return "n/a (F(x) = F(x\u2032))"
    percent = 100 * share
    if 0 < percent < 1e-3:
        return "&lt; 0.001 %"
    return f"{percent:.2g} %"


def results_table(info: dict, unit: str) -> str:
    """One row per example: class, scores, and each layer's top filters."""
    has_labels = any("label" in ex for ex in info["examples"])
    head = (["Example", "Explained class"] + (["True class"] if has_labels else [])
            + [f"F(x) ({unit})", f"F(x) \u2212 F(x\u2032) ({unit})", "Steps"])
    for layer in info["layers"]:
        head += [f"{html.escape(layer)}: top filters, conductance ({unit})",
                 f"{html.escape(layer)}: delta"]
    rows = []
    for ex in info["examples"]:
        change = ex["score_at_input"] - ex["score_at_baseline"]
        cells = [_cell(_name(ex["name"]), "name"), _cell(html.escape(ex["class_name"]))]
        if has_labels:
            cells.append(_cell(html.escape(ex.get("label_name", ""))))
        cells += [_cell(f"{ex['score_at_input']:.4g}", "num"), _cell(num(change, 4), "num"),
                  _cell(str(ex["n_steps"]), "num")]
        for layer in info["layers"]:
            entry = ex["layers"][layer]
            tops = ", ".join(f"{f}&nbsp;({num(c)})"
                             for f, c in zip(entry["top_filters"], entry["top_conductance"]))
            cells += [_cell(tops), _cell(_percent(entry), "num")]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<h2>Top filters of each example</h2><p>The five filters of each layer with "
            "the largest conductance, and the layer's completeness error delta.</p>"
            + _table(head, rows))


def _ablation_rows(ex: dict, with_baseline: bool) -> List[str]:
    checks, rows = ex["ablation_check"], []
    for rank, check in enumerate(checks):
        first = (f"<td class='name' rowspan='{len(checks)}'>{_name(ex['name'])}</td>"
                 f"<td rowspan='{len(checks)}'>{html.escape(ex['class_name'])}</td>"
                 if rank == 0 else "")
        cells = [_cell(str(rank + 1), "num"), _cell(str(check["filter"]), "num"),
                 _cell(num(check["conductance"]), "num"), _marked(check, "ablation_drop")]
        if with_baseline:
            cells.append(_marked(check, "baseline_ablation_drop"))
        rows.append("<tr>" + first + "".join(cells) + "</tr>")
    return rows


def _marked(check: dict, key: str) -> str:
    """The drop, marked when its sign contradicts the conductance."""
    if check[f"{key}_disagrees"]:
        return _cell("\u26a0 " + num(check[key]), "num disagree")
    return _cell(num(check[key]), "num")


def _disagreements(info: dict, key: str) -> str:
    checks = [c for ex in info["examples"] for c in ex.get("ablation_check", [])]
    count = sum(c[f"{key}_disagrees"] for c in checks)
    return f"{count} of {len(checks)}"


def ablation_section(info: dict, layer: str, unit: str) -> str:
    """The ablation check: a table with each example's top filters and why
    ablation and conductance can disagree."""
    examples = [ex for ex in info["examples"] if "ablation_check" in ex]
    with_baseline = "baseline_ablation_drop" in examples[0]["ablation_check"][0]
    head = ["Example", "Explained class", "Rank", "Filter", f"Conductance ({unit})",
            f"Drop of F when the filter is set to 0 ({unit})"]
    if with_baseline:
        head.append(f"Drop when set to its baseline activation y(x\u2032) ({unit})")
    rows = [row for ex in examples for row in _ablation_rows(ex, with_baseline)]
    counts = f"Sign disagreements with conductance: {_disagreements(info, 'ablation_drop')} " \
             "checks when set to 0"
    if with_baseline:
        counts += f", {_disagreements(info, 'baseline_ablation_drop')} when set to y(x\u2032)"
    return (
        f"<h2>Ablation check at {html.escape(layer)}: does switching a top filter off "
        "lower the score as its conductance says?</h2>"
        "<p>For each example's top filters by conductance: the drop F(x) \u2212 F(x with "
        "the filter ablated), the paper's check. \u26a0 marks a <b>sign disagreement</b> "
        "(conductance and the drop have opposite signs; values under 0.1 % of "
        f"|F(x) \u2212 F(x\u2032)| count as zero). {counts}.</p>"
        "<p>Why they can disagree: the main measured cause is that ablation sets the "
        "filter to <b>zero</b>, while conductance integrates from the filter's activation "
        "<b>at the baseline</b>, y(x\u2032), to its activation at x. They agree only when the "
        "baseline's activation is about zero and the network is close to additive over "
        "these filters (switching one off does not change the others' effect). A baseline "
        "such as a black image often still activates many filters (on MobileNet's middle "
        "layers about as much as a photo does), so zero-ablation measures a different "
        "change."
        + (" The last column ablates to y(x\u2032) instead, which removes that cause; "
           "disagreements left there come from interactions between filters."
           if with_baseline else "") + "</p>"
        + _table(head, rows))


def figure_block(title: str, png: bytes, caption: str = "") -> str:
    """A section with one embedded PNG (shrunk to the page width)."""
    data = base64.b64encode(png).decode()
    return (f"<h2>{html.escape(title)}</h2>"
            + (f"<p>{html.escape(caption)}</p>" if caption else "")
            + f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")


def page(title: str, notes: Sequence[str], method: str, sections: Sequence[str],
         missing_figures: Optional[str] = None) -> str:
    """The whole self-contained page."""
    note_list = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='lead'>{INTRO}</p><p>{COLOURS}</p>"
        f"<ul>{note_list}<li>Integration rule: {html.escape(method)}.</li></ul>"
        + "".join(sections)
        + (f"<p>{missing_figures}</p>" if missing_figures else "")
        + "</body></html>"
    )
