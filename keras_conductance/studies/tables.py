"""The results table (Markdown), ours next to the paper's numbers."""

from __future__ import annotations

from typing import Dict, List

__all__ = ["PAPER", "write_markdown"]

METHOD_NAMES = {"conductance": "conductance", "internal_influence": "internal influence",
                "activation": "activation", "gradient_x_activation": "gradient×activation"}

# Numbers reported by Dhamdhere et al. (2018).
PAPER = {
    "image_agreement": {"conductance": "0.79", "internal_influence": "0.487 [0.38, 0.61]",
                        "activation": "0.07", "gradient_x_activation": "0.92"},
    "text_agreement": {"conductance": "0.88", "internal_influence": "-0.43",
                       "activation": "0.19", "gradient_x_activation": "0.99"},
    "image_flips": "mean 3.7, max 16, 3/100 need > 10; top-10 by internal influence flip 5/100",
    # Table 1, aggregate over 4 label sets, k = 5, 10, 15, 20.
    "table1_aggregate": {"activation": [46.52, 48.51, 55.81, 60.45],
                         "gradient_x_activation": [56.94, 76.01, 79.74, 84.39],
                         "internal_influence": [48.50, 62.23, 71.37, 72.50],
                         "conductance": [68.85, 81.58, 85.99, 87.79]},
}


def _cell(stats: Dict[str, float]) -> str:
    if not stats.get("n"):
        return "n/a"
    return f"{stats['mean']:.2f} [{stats['q25']:.2f}, {stats['q75']:.2f}]"


def _agreement_rows(label: str, summary: dict, paper: Dict[str, str]) -> List[str]:
    rows = []
    for value, by_method in summary.items():
        cells = " | ".join(_cell(by_method[m]) for m in METHOD_NAMES)
        rows.append(f"| {label}, {value}-ablation | {cells} |")
    rows.append(f"| paper | " + " | ".join(paper[m] for m in METHOD_NAMES) + " |")
    return rows


def _completeness(c: dict) -> str:
    return "; ".join(f"`{layer}` median {100 * v['median']:.2f}%, p90 {100 * v['p90']:.2f}%, "
                     f"max {100 * v['max']:.2f}%" for layer, v in c.items())


def _flip_row(label: str, value: str, f: dict) -> str:
    return (f"| {label} | {value} | {f['flipped']}/{f['examples']} | {f['mean']:.1f} | "
            f"{f['median']:.0f} | {f['max']} | {f['more_than_10']} | {f['limit']} | "
            f"{f['influence_top_k_flipped']}/{f['examples']} | "
            f"{f['random_k_flipped']}/{f['examples']} |")


FLIP_HEADER = ["| layer | ablation | flipped | mean | median | max | > 10 | limit | "
               "top-10 int. infl. flip | 10 random flip |", "|---|---|---|---|---|---|---|---|---|---|"]


def _selection_rows(label: str, sel: dict) -> List[str]:
    rows = []
    for method, by_k in sel["accuracy"].items():
        name = METHOD_NAMES.get(method, method + " (control)")
        rows.append(f"| {label} | {name} | " + " | ".join(f"{100 * a:.1f}" for a in by_k.values())
                    + f" | {100 * sel['all_filters']:.1f} |")
    return rows


def _sentiment(r: dict) -> List[str]:
    m = r["model"]
    out = ["## Sentiment CNN on SST-2 (paper Section 6)", "",
           f"- Model: 50-d embeddings, convolutions of widths 3-6 x 64 maps, 1-max pooled to 256 "
           f"(`pooled`), dense 10, one logit; test accuracy **{100 * m['test_accuracy']:.1f}%** on "
           f"{m['test_size']} SST-2 test sentences (dev {100 * m['dev_accuracy']:.1f}%).",
           f"- Baseline: {r['baseline']}, F(x') = {r['score_at_baseline']:.3f}. Explained score: "
           f"{r['score']}. Median |F(x) - F(x')| = {r['score_change_median_abs']:.2f}.",
           f"- Completeness error of `pooled` (a cut): corpus {_completeness(r['completeness_corpus'])}; "
           f"agreement sample {_completeness(r['completeness_sample'])}. Steps used: "
           f"{r['steps_corpus']}.", "",
           "### Ablation agreement (Section 6.1): mean Pearson r [25th, 75th percentile]", "",
           "| examples, filters | " + " | ".join(METHOD_NAMES.values()) + " |",
           "|---|---|---|---|---|"]
    for name, summary in r["agreement"].items():
        out += _agreement_rows(f"SST test, {name} filters", summary, PAPER["text_agreement"])[:-1]
    out.append("| paper (100 SST sentences) | " + " | ".join(
        PAPER["text_agreement"][k] for k in METHOD_NAMES) + " |")
    add = r["additivity"]
    out += ["", "Additivity, sum over all 256 filters of single-filter ablation / (F(x) - F(x')) "
                "(1 for an additive tail; conductance always sums to 1): "
                + "; ".join(f"{v}-ablation median {a['median']:.2f} [{a['q25']:.2f}, {a['q75']:.2f}]"
                            for v, a in add.items()) + "."]
    fc = r["filter_change"]
    out += ["", f"Per-filter change y(x) - y(x') is positive for {100 * fc['delta_y_positive']:.0f}% "
                f"of the (sentence, filter) pairs that conduct; conductance and internal influence "
                f"share their sign on {100 * fc['same_sign_conductance_influence']:.0f}% of them."]
    ratio = r["ablation_sign_ratio"]
    out += ["", f"|sum of ablation scores| / sum of |ablation scores| per sentence: mean "
                f"{ratio['mean']:.2f}, median {ratio['median']:.2f} (1 = all filters push one way).",
            "", "### Filters to flip the predicted sentiment (conductance order)", ""] + FLIP_HEADER
    out += [_flip_row("`pooled`", v, f) for v, f in r["flips"].items()]
    sel = r["selection"]
    out += ["", "### Feature selection: positive vs negative (Table 1 protocol), test accuracy %", "",
            "| task | method | k=5 | k=10 | k=15 | k=20 | all 256 |", "|---|---|---|---|---|---|---|"]
    out += _selection_rows("SST pos/neg", sel)
    out.append("| paper, aggregate of 4 ImageNet tasks | conductance | "
               + " | ".join(f"{a:.1f}" for a in PAPER["table1_aggregate"]["conductance"]) + " | |")
    lab = r["labour"]
    out += ["", "### Division of labour (Section 6.2)", "",
            f"Over {lab['examples']} sentences and {lab['filters']} filters with threshold "
            f"{lab['threshold']}: **{100 * lab['single_signed']:.1f}%** of filters are single-signed "
            f"(never both > +{lab['threshold']} and < -{lab['threshold']}), "
            f"{100 * lab['dominated']:.1f}% have >= 95% of their nonzero signs alike, "
            f"{100 * lab['silent']:.1f}% are always within the threshold; "
            f"{100 * lab['zero_entries']:.1f}% of all entries are within it.", "",
            "### Negation (Section 6.3)", "",
            "The logit F on the probes: " + ", ".join(
                f"\"{p}\" {f:+.2f}" for p, f in r["negation_probes"].items()) + ".", ""]
    for key, neg in r["negation"].items():
        filters = ", ".join(f"{f['index']} (cond. {f['conductance']:+.2f}, "
                            f"{100 * f['pattern_share']:.0f}% on the pattern)" for f in neg["filters"])
        way = "positive" if neg["direction"] > 0 else "negative"
        out += [f"**{key}** — \"{neg['phrase']}\": F = {neg['score']:+.2f}; filters conducting "
                f"towards {way} with >= 50% of their token attribution on the pattern and >= 25% "
                f"on its first word: {filters or 'none'}", ""]
        out += [f"{i + 1}. [{e['filter']}, {e['conductance']:+.2f}] {e['sentence']}"
                for i, e in enumerate(neg["examples"])]
        out.append("")
    return out


def _imagenet(r: dict) -> List[str]:
    out = [f"## {r['model']} on {r['photos']} ImageNet photos (paper Section 5)", "",
           f"- Top-1 on the photos: {100 * r['top1_on_photos']:.0f}% (they are ImageNet training "
           "images: not a validation accuracy).",
           f"- Baseline: {r['baseline']}. Explained score: {r['score']}; median F(x) = "
           f"{r['score_at_input_median']:.1f}, median F(x') = {r['score_at_baseline_median']:.2f}.",
           f"- Completeness error: {_completeness(r['completeness'])}. Steps used: {r['steps']}.",
           "- Mean activation, photos vs black baseline: " + "; ".join(
               f"`{l}` {v['photos']:.2f} vs {v['black']:.2f}" for l, v in r["mean_activation"].items()),
           "- Share of filters whose summed activation is larger at the photo than at the black "
           "image: " + "; ".join(f"`{l}` {100 * v:.0f}%" for l, v in r["delta_y_positive"].items()),
           "", "### Ablation agreement, top-10 filters by conductance (Section 5.1): mean Pearson r "
           "[25th, 75th percentile]", "",
           "| layer, ablation | " + " | ".join(METHOD_NAMES.values()) + " |", "|---|---|---|---|---|"]
    for layer, summary in r["agreement"].items():
        out += _agreement_rows(f"`{layer}`", summary, PAPER["image_agreement"])[:-1]
    out.append("| paper (Inception `mixed*`, 100 validation images) | " + " | ".join(
        PAPER["image_agreement"][k] for k in METHOD_NAMES) + " |")
    d = r["diagnostics"]
    out += ["", f"Diagnostics on {d['photos']} photos (per-filter convergence against "
                f"{d['steps']} fixed steps; additivity = sum over all filters of single-filter "
                "ablation / (F(x) - F(x')); agreement over all filters, mean Pearson r):", "",
            "| layer | top-10 r vs fine grid (median) | max rel. diff | additivity zero (median) "
            "| additivity baseline (median) | all filters: cond. vs zero-abl. | cond. vs "
            "baseline-abl. | grad×act vs zero-abl. |", "|---|---|---|---|---|---|---|---|"]
    for layer in r["agreement"]:
        v = d[layer]
        out.append(f"| `{layer}` | {v['top10_pearson_vs_fine']['median']:.3f} | "
                   f"{100 * v['top10_max_rel_diff_vs_fine']:.1f}% | "
                   f"{v['additivity']['zero']['median']:.2f} | "
                   f"{v['additivity']['baseline']['median']:.2f} | "
                   f"{v['all_filters']['zero']['conductance']:.2f} | "
                   f"{v['all_filters']['baseline']['conductance']:.2f} | "
                   f"{v['all_filters']['zero']['gradient_x_activation']:.2f} |")
    out += ["", "### Filters to flip the top class (conductance order)", ""] + FLIP_HEADER
    for layer, by_value in r["flips"].items():
        out += [_flip_row(f"`{layer}`", v, f) for v, f in by_value.items()]
    out += [f"| paper | zero (bias -inf) | | 3.7 | | 16 | 3 | | 5/100 | |", "",
            f"### Feature selection: animal (classes 0-397) vs not, {r['folds']}-fold, held-out "
            "accuracy %", "",
            "| layer | method | k=5 | k=10 | k=15 | k=20 | all filters |", "|---|---|---|---|---|---|---|"]
    for layer, sel in r["selection"].items():
        out += _selection_rows(f"`{layer}`", sel)
    for method, accs in PAPER["table1_aggregate"].items():
        out.append(f"| paper, aggregate of 4 tasks | {METHOD_NAMES[method]} | "
                   + " | ".join(f"{a:.1f}" for a in accs) + " | |")
    p = r["pixels"]
    out += ["", f"### Pixel-level view (Section 5): `{p['layer']}`, {p['steps']} steps", "",
            f"Images {p['images']}, top filters {p['filters']}; sum of each Eq. 2 map vs the "
            f"filter's conductance: median relative difference "
            f"{100 * p['map_sum_vs_conductance_rel_error']['median']:.1f}%, max "
            f"{100 * p['map_sum_vs_conductance_rel_error']['max']:.1f}%.", ""]
    return out


def write_markdown(results: dict) -> str:
    """The whole results table as Markdown."""
    lines = ["# Conductance studies: results", "",
             f"Generated by `python -m keras_conductance.studies` in {results['seconds']:.0f} s.", ""]
    if "sentiment" in results:
        lines += _sentiment(results["sentiment"])
    if "imagenet" in results:
        lines += _imagenet(results["imagenet"])
    return "\n".join(lines) + "\n"
