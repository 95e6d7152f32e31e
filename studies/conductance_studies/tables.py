"""The results table (Markdown), ours next to the paper's numbers."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

__all__ = ["PAPER", "table1_markdown", "write_markdown"]

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
    rows.append("| paper | " + " | ".join(paper[m] for m in METHOD_NAMES) + " |")
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
    m, trained_on = r["model"], r.get("trained_on", "sentences")
    size = f"{m['train_size']:,} " if m.get("train_size") else ""
    out = [f"## Sentiment CNN on SST-2 (paper Section 6), trained on {trained_on}", "",
           f"- Model: 50-d embeddings, convolutions of widths 3-6 x 64 maps, 1-max pooled to 256 "
           f"(`pooled`), dense 10, one logit; trained on {size}SST-2 training {trained_on}; "
           f"test accuracy **{100 * m['test_accuracy']:.1f}%** on "
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
    if "negated_phrases" in r:
        n = r["negated_phrases"]
        out += ["Phrases of the SST test trees that no training tree holds "
                f"({n['excluded']:,} that also occur there left out), accuracy of the "
                f"score's sign: with 'not'/'n't' **{_acc(n['negated'])}**; of those with at most "
                f"{n['short']} tokens {_acc(n['short_negated'])}; negated and labelled "
                f"negative {_acc(n['negated_by_label']['negative'])}, labelled positive "
                f"{_acc(n['negated_by_label']['positive'])}; without a negator "
                f"{_acc(n['plain'])}.", ""]
    return out


def _acc(a: dict) -> str:
    return f"{100 * a['accuracy']:.1f}% of {a['count']:,}"


def _versus(sentences: dict, phrases: dict) -> List[str]:
    """The two sentiment models side by side: key numbers, probe scores,
    short negated test phrases and the figures."""
    pair = (sentences, phrases)
    row = lambda name, cell: f"| {name} | " + " | ".join(cell(r) for r in pair) + " |"
    out = ["## The two sentiment models side by side", "",
           "| | trained on sentences | trained on phrases |", "|---|---|---|",
           row(f"test accuracy ({sentences['model']['test_size']:,} sentences)",
               lambda r: f"{100 * r['model']['test_accuracy']:.1f}%"),
           row("negated test phrases", lambda r: _acc(r["negated_phrases"]["negated"])),
           row("short negated test phrases", lambda r: _acc(r["negated_phrases"]["short_negated"])),
           row("negated test phrases labelled negative",
               lambda r: _acc(r["negated_phrases"]["negated_by_label"]["negative"])),
           row("negated test phrases labelled positive (\"not bad\")",
               lambda r: _acc(r["negated_phrases"]["negated_by_label"]["positive"])),
           row("test phrases without a negator", lambda r: _acc(r["negated_phrases"]["plain"]))]
    out += [row(f"F(\"{p}\")", lambda r, p=p: f"{r['negation_probes'][p]:+.2f}")
            for p in sentences["negation_probes"]]
    out += [row("agreement with zero-ablation, all filters (conductance r)",
                lambda r: f"{r['agreement']['all']['zero']['conductance']['mean']:.2f}"),
            row("single-signed filters (division of labour)",
                lambda r: f"{100 * r['labour']['single_signed']:.1f}%"),
            row("filters to flip, zero-ablation (mean)", lambda r: f"{r['flips']['zero']['mean']:.1f}")]
    for key in sentences["negation"]:
        out.append(row(f"negation filters: {key}", lambda r, key=key: ", ".join(
            str(f["index"]) for f in r["negation"][key]["filters"]) or "none"))
    examples = zip(sentences["negated_phrases"]["examples"], phrases["negated_phrases"]["examples"])
    out += ["", "Short negated phrases of the test trees, none in a training tree (label: + "
                "positive, − negative; score F of each model):", "", "| phrase | label | sentences | phrases |",
            "|---|---|---|---|"]
    out += [f"| {a['phrase']} | {'+' if a['label'] else '−'} | {a['score']:+.2f} | "
            f"{b['score']:+.2f} |" for a, b in examples]
    out += ["", "| trained on sentences | trained on phrases |", "|---|---|"]
    for name in ("flips", "division_of_labour", "agreement_top10"):
        out.append(f"| ![](figures/sst_{name}.png) | ![](figures/sst_phrases_{name}.png) |")
    for pattern in ("not good", "not bad"):
        # A negation figure exists only where some filter passed the criteria.
        key, name = f"{pattern}, true direction", f"negation_{pattern.replace(' ', '_')}_true"
        cells = [f"![](figures/{tag}_{name}.png)" if r["negation"][key]["filters"]
                 else f'"{pattern}", true direction: no filter passed the criteria'
                 for tag, r in (("sst", sentences), ("sst_phrases", phrases))]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


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
    out += ["| paper | zero (bias -inf) | | 3.7 | | 16 | 3 | | 5/100 | |", "",
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
             f"Generated by `python -m conductance_studies` in {results['seconds']:.0f} s.", ""]
    if "sentiment" in results:
        lines += _sentiment(results["sentiment"])
    if "sentiment_phrases" in results:
        lines += _sentiment(results["sentiment_phrases"])
    if "sentiment" in results and "sentiment_phrases" in results:
        lines += _versus(results["sentiment"], results["sentiment_phrases"])
    if "imagenet" in results:
        lines += _imagenet(results["imagenet"])
    if "table1" in results:
        lines += table1_markdown(results["table1"])
    return "\n".join(lines) + "\n"


def _pm(v: dict) -> str:
    return f"{100 * v['mean']:.1f} ± {100 * v['sd']:.1f}"


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method + " (control)")


def table1_markdown(r: dict) -> List[str]:
    """Table 1 (paper Section 5.2) on the ImageNet label sets, as Markdown lines."""
    s, ks = r["settings"], r["settings"]["ks"]
    first_sets = next(iter(r["sets"].values()))
    head = "| method | " + " | ".join(f"k={k}" for k in ks) + " |"
    rule = "|---" * (len(ks) + 1) + "|"
    out = ["## Feature selection on ImageNet label sets (paper Section 5.2, Table 1)", "",
           f"Settings, fixed before any result was seen: MobileNet v1 {s['mobilenet']} "
           f"(top-1 {100 * r['top1']:.1f}% on these {r['photos']} photos); layers "
           + ", ".join(f"`{l}`" for l in s["layers"]) + f"; {len(s['sets'])} label sets of five labels "
           f"({', '.join(s['sets'])}); per label {s['n_train']} training photos, the rest "
           f"evaluate; {s['splits']} random splits; importance toward the pre-softmax logit of "
           f"each photo's own label from the black image, {s['n_steps']} path points "
           f"(completeness error |Σ conductance − (F(x) − F(x′))| / |F(x) − F(x′)|: "
           + "; ".join(f"`{l}` median {100 * c['median']:.2f}%, p90 {100 * c['p90']:.2f}%"
                       for l, c in r["completeness"].items())
           + "); per-label mean over the training photos; "
           "the k filters with the highest mean for any label; a standardised L2 logistic "
           "regression on the selected filters' **activations** summed over positions (the "
           "same features for every "
           f"method); the random control averages {s['random_draws']} random k-filter sets per "
           "split. Cells: evaluation accuracy %, mean ± standard deviation over splits "
           f"(chance {100 * np.mean([sel['chance'] for sel in first_sets.values()]):.0f}%).", ""]
    for layer, agg in r["aggregate"].items():
        out += [f"### `{layer}`, aggregate over the {len(s['sets'])} label sets", "", head, rule]
        out += [f"| {_name(m)} | " + " | ".join(_pm(by_k[k]) for k in ks) + " |"
                for m, by_k in _keyed(agg).items()]
        paper = {m: dict(zip((5, 10, 15, 20), v)) for m, v in PAPER["table1_aggregate"].items()}
        out += [f"| paper, {METHOD_NAMES[m]} (Inception) | "
                + " | ".join(f"{paper[m][k]:.1f}" if k in paper[m] else "–" for k in ks) + " |"
                for m in METHOD_NAMES]
        out += ["", f"Per label set (`{layer}`):", "",
                "| label set | method | " + " | ".join(f"k={k}" for k in ks) + " | all filters |",
                "|---" * (len(ks) + 3) + "|"]
        for set_name, sel in r["sets"][layer].items():
            for m, runs in _keyed(sel["per_split"]).items():
                cells = " | ".join(_pm({"mean": np.mean(runs[k]), "sd": np.std(runs[k])})
                                   for k in ks)
                out.append(f"| {set_name} | {_name(m)} | {cells} | {100 * sel['all_filters']:.1f} |")
        out.append("")
    out += ["### Exemplars (the paper's Figure 2 idea)", "",
            f"For a label, the filter of `{s['layers'][-1]}` with the highest mean conductance "
            "over its training photos (split 0); then the photos of any label of the sets, "
            "outside those training photos, where that filter is most active (at a layer "
            "with a linear tail, the order of its conductance toward the label's logit; "
            "activation does not depend on a photo's own label). The montage "
            "(`figures/table1_exemplars.png`) is written to the output folder only: the photos' "
            "terms keep them out of the repository.", "",
            "| filter (selected for) | top other photos: label (activation) | "
            "of the top 20: same label, same set |", "|---|---|---|"]
    for e in r["exemplars"]:
        photos = "; ".join(f"{t['label']} ({t['activation']:.1f})" for t in e["top"])
        out.append(f"| {e['filter']} ({e['label']}) | {photos} | {e['top20_same_label']}, "
                   f"{e['top20_same_set']} |")
    return out + [""]


def _keyed(by_method: dict) -> dict:
    """JSON turns int keys into strings; give them back as ints."""
    return {m: {int(k): v for k, v in by_k.items()} for m, by_k in by_method.items()}
