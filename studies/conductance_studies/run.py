"""Runs the paper's studies on the staged real data and writes a report.

Plumbing only: loads data and models, calls the study functions, prints
progress, saves figures (PNG), ``results.json``, ``results.md`` and
``negation.html`` under the output folder.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from conductance_studies.table1 import (TABLE1_FULL, TABLE1_QUICK, Table1Settings,
                                        check_label_sets, run_table1)

__all__ = ["Settings", "FULL", "QUICK", "run_sentiment", "run_imagenet", "run_all"]

Say = Callable[..., None]


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much of each study to run (``FULL`` for the report, ``QUICK`` for CI)."""

    # Sentiment CNN on SST-2, trained on each corpus in turn (see
    # sentiment_cnn.CORPORA): sentences only, and phrases as Kim (2014).
    corpora: Tuple[str, ...] = ("sentences", "phrases")
    epochs: int = 5
    train_limit: Optional[int] = None
    corpus: int = 4000
    agreement_sentences: int = 100
    text_steps: int = 64
    text_tolerance: Optional[float] = 0.01
    text_flip_limit: int = 256
    negation_examples: int = 8
    # MobileNet v1 on the ImageNet photos.
    mobilenet: str = "0.75_224"
    images: Optional[int] = None
    layers: Tuple[str, ...] = ("conv_pw_3_relu", "conv_pw_7_relu", "conv_pw_11_relu",
                               "conv_pw_13_relu")
    image_steps: int = 64
    image_tolerance: Optional[float] = 0.05
    image_max_steps: int = 256
    image_flip_limit: int = 50
    folds: int = 5
    pixel_layer: str = "conv_pw_7_relu"
    pixel_images: int = 4
    pixel_filters: int = 3
    pixel_steps: int = 64
    diagnostic_images: int = 6
    diagnostic_steps: int = 512
    seed: int = 0
    # Table 1 on the ImageNet label sets (its own settings: studies/table1.py).
    table1: Table1Settings = TABLE1_FULL


FULL = Settings()
QUICK = Settings(epochs=1, train_limit=600, corpus=40, agreement_sentences=8, text_steps=8,
                 text_tolerance=None, text_flip_limit=32, negation_examples=3,
                 mobilenet="0.25_128", images=6, layers=("conv_pw_3_relu", "conv_pw_11_relu"),
                 image_steps=8, image_tolerance=None, image_flip_limit=8, folds=2,
                 pixel_layer="conv_pw_11_relu", pixel_images=2, pixel_filters=2, pixel_steps=4,
                 diagnostic_images=2, diagnostic_steps=16, table1=TABLE1_QUICK)


def _completeness(attr, layers) -> Dict[str, Dict[str, float]]:
    out = {}
    for layer in layers:
        rel = attr.relative_delta(list(layer) if isinstance(layer, tuple) else [layer])
        out[layer if isinstance(layer, str) else "+".join(layer)] = {
            "median": float(np.median(rel)), "p90": float(np.percentile(rel, 90)),
            "max": float(rel.max())}
    return out


def _steps(attr) -> Dict[str, int]:
    values, counts = np.unique(attr.n_steps, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts)}


# -- sentiment --------------------------------------------------------------


def run_sentiment(out: pathlib.Path, *, data_dir=None, settings: Settings = FULL,
                  trained_on: str = "sentences", cache_dir=None, say: Say = print) -> dict:
    """The text studies (Sections 6.1-6.3 and feature selection) on SST-2,
    for the CNN trained on ``trained_on`` (figures ``sst_*`` for sentences,
    ``sst_phrases_*`` for phrases)."""
    import keras

    import keras_conductance as kc
    from conductance_studies.datasets import load_sst
    from conductance_studies import (ablation_agreement, division_of_labour,
                                     feature_selection, filters_to_flip, negation_study,
                                     per_filter_scores, predicted_sign)
    from keras_conductance.ablation import Ablator
    from conductance_studies.sentiment_cnn import EMBEDDING, POOLED

    s = settings
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    elapsed = lambda: f"{time.perf_counter() - start:.0f} s"
    tag = "sst" if trained_on == "sentences" else f"sst_{trained_on}"
    fig = lambda name: figures / f"{tag}_{name}.png"
    say(f"[sentiment 1/7] The sentiment CNN (Section 6), trained on {trained_on} ...")
    suffix = "" if trained_on == "sentences" else f"_{trained_on}"
    cache_dir = pathlib.Path(cache_dir) if cache_dir else out / f"sentiment_cnn{suffix}"
    cnn = _sentiment_model(cache_dir, data_dir, s, trained_on, say)
    model = cnn.model
    rng = np.random.default_rng(s.seed)
    train, test = load_sst("train", data_dir=data_dir), load_sst("test", data_dir=data_dir)
    corpus = train.subset(rng.permutation(len(train))[: s.corpus])
    sample = test.subset(rng.permutation(len(test))[: s.agreement_sentences])
    explainer = kc.Conductance(model, [POOLED], start_layer=EMBEDDING, n_steps=s.text_steps,
                               tolerance=s.text_tolerance, batch_size=1024, verbose=0)

    say(f"[sentiment 2/7] Conductance of the 256 pooled filters on {len(corpus)} training "
        f"sentences (zero-embedding baseline, logit F, tolerance {s.text_tolerance}) ...")
    x_corpus = cnn.encode(corpus.tokens)
    corpus_ms = explainer.explain(x_corpus, target=0)
    raw = corpus_ms.conductance.per_filter(POOLED)
    result = {"trained_on": trained_on,
              "model": {k: cnn.meta.get(k) for k in ("test_accuracy", "test_size", "dev_accuracy",
                                                     "epochs", "vocab_size", "train_size")},
              "baseline": "zero embedding (= the all-padding sentence)",
              "score": "the logit F (positive sentiment); oriented to the predicted label "
                       "(F or -F) for agreement, flips and feature selection",
              "completeness_corpus": _completeness(corpus_ms.conductance, [POOLED]),
              "steps_corpus": _steps(corpus_ms.conductance),
              "score_change_median_abs": float(np.median(np.abs(corpus_ms.conductance.output_diff))),
              "score_at_baseline": float(corpus_ms.conductance.output_at_baseline[0])}
    say(f"      completeness |delta|/|F(x)-F(x')|: {result['completeness_corpus'][POOLED]} "
        f"({elapsed()})")

    say(f"[sentiment 3/7] Ablation agreement and filters to flip on {len(sample)} test "
        "sentences (Section 6.1) ...")
    x_sample = cnn.encode(sample.tokens)
    sample_ms = explainer.explain(x_sample, target=0)
    sign = predicted_sign(sample_ms)
    ablator = Ablator(model, POOLED, start_layer=EMBEDDING)
    common = dict(start_layer=EMBEDDING, sign=sign, ablator=ablator)
    result["completeness_sample"] = _completeness(sample_ms.conductance, [POOLED])
    result["agreement"] = {}
    for k in (None, 10):
        agree = ablation_agreement(model, x_sample, POOLED, sample_ms, k=k, **common)
        name = "all" if k is None else f"top{k}"
        result["agreement"][name] = agree.summary()
        if k is None:
            result["additivity"] = agree.additivity()
        agree.plot(fig(f"agreement_{name}"),
                   title=f"SST sentiment CNN, pooled filters ({name}), {len(sample)} sentences")
    # Conductance ~ internal influence x (y(x) - y(x')) where dF/dy is
    # steady: how often is the per-filter change positive, and how often do
    # the two measures share a sign?
    dy = sample_ms.activation.per_filter(POOLED) - ablator.baseline_layer(None, x_sample)
    cond_s = sample_ms.conductance.per_filter(POOLED)
    infl_s = sample_ms.internal_influence.per_filter(POOLED)
    moved = np.abs(cond_s) > 1e-6
    result["filter_change"] = {"delta_y_positive": float(np.mean(dy[moved] > 0)),
                               "same_sign_conductance_influence":
                                   float(np.mean(np.sign(cond_s[moved]) == np.sign(infl_s[moved])))}
    result["ablation_sign_ratio"] = _sign_ratio(
        ablator.scores(x_sample, target=sample_ms.conductance.target) * sign[:, None])
    flips = filters_to_flip(model, x_sample, POOLED, sample_ms, max_filters=s.text_flip_limit,
                            **common)
    result["flips"] = flips.summary()
    flips.plot(fig("flips"), title=f"SST ({trained_on}): filters to flip the sentiment")
    say(f"      agreement (zero, all filters): "
        f"{ {m: round(v['mean'], 3) for m, v in result['agreement']['all']['zero'].items()} } "
        f"({elapsed()})")

    say("[sentiment 4/7] Feature selection: positive vs negative (Table 1 protocol) ...")
    features_model = keras.Model(model.inputs[0], model.get_layer(POOLED).output)
    x_test = cnn.encode(test.tokens)
    feats = np.concatenate([corpus_ms.activation.per_filter(POOLED),
                            np.asarray(features_model.predict(x_test, batch_size=512, verbose=0))])
    labels = np.concatenate([corpus.labels, test.labels])
    train_idx, test_idx = np.arange(len(corpus)), np.arange(len(corpus), len(labels))
    scores = per_filter_scores(corpus_ms, POOLED, predicted_sign(corpus_ms))
    importances = {m: np.concatenate([v, np.zeros((len(test), v.shape[1]), v.dtype)])
                   for m, v in scores.items()}
    selection = feature_selection(importances, feats, labels, [(train_idx, test_idx)],
                                  seed=s.seed)
    result["selection"] = dataclasses.asdict(selection)
    selection.plot(fig("selection"),
                   title=f"SST pos/neg: {len(corpus)} train sentences, {len(test)} test")
    say(f"      accuracy with k=10: { {m: round(v[10], 3) for m, v in selection.accuracy.items()} } "
        f"({elapsed()})")

    say(f"[sentiment 5/7] Division of labour over {len(corpus)} sentences (Section 6.2) ...")
    labour = division_of_labour(raw, threshold=0.01)
    result["labour"] = labour.summary()
    labour.plot(fig("division_of_labour"))
    say(f"      {result['labour']} ({elapsed()})")

    say("[sentiment 6/7] Negation (Section 6.3): the probes and the filters ...")
    result["negation"], pages = {}, []
    plain = ["this is good", "this is not good", "this is bad", "this is not bad"]
    logits = np.asarray(model.predict(cnn.encode([p.split() for p in plain]), verbose=0))[:, 0]
    result["negation_probes"] = {p: float(f) for p, f in zip(plain, logits)}
    probes = (("this is not good", "not good", -1), ("this is not bad", "not bad", +1))
    for phrase, pattern, reading in probes:
        # The paper's literal criterion (towards the predicted label), and
        # towards the phrase's true reading: they differ when the network
        # gets the negation wrong.
        for direction in ("predicted", reading):
            neg = negation_study(model, cnn.encode, phrase.split(), pattern.split(),
                                 corpus.tokens, raw, layer=POOLED, start_layer=EMBEDDING,
                                 window_of=cnn.filter_window, direction=direction,
                                 n_examples=s.negation_examples, n_steps=s.text_steps)
            key = f"{pattern}, {'predicted' if direction == 'predicted' else 'true'} direction"
            result["negation"][key] = neg.summary()
            pages.append(neg.html())
            if neg.filters:
                neg.plot(fig(f"negation_{pattern.replace(' ', '_')}_"
                             f"{'predicted' if direction == 'predicted' else 'true'}"))
            say(neg.terminal(color=sys.stdout.isatty()))
    (out / f"negation{suffix}.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Negation filters</title>\n"
        + "\n".join(pages), encoding="utf-8")
    say("[sentiment 7/7] Held-out phrases with 'not'/'n't' from the test trees ...")
    from conductance_studies.datasets import load_sst_phrases
    from conductance_studies.negated_phrases import negated_phrases

    # Only test phrases that no training tree holds: short ones ("not", "is
    # n't") also occur there, and the phrase-trained model learned them.
    seen = {" ".join(t) for t in load_sst_phrases("train", data_dir=data_dir).tokens}
    check = negated_phrases(model, cnn.encode, load_sst_phrases("test", data_dir=data_dir),
                            exclude=seen)
    result["negated_phrases"] = check.summary()
    say(f"      {check.excluded} test phrases also in the training trees left out; "
        f"accuracy: negated {check.negated}, short negated {check.short_negated}, "
        f"without a negator {check.plain} ({elapsed()})")
    result["seconds"] = round(time.perf_counter() - start, 1)
    say(f"      sentiment studies done ({elapsed()})")
    return result


def _sentiment_model(cache_dir, data_dir, s: Settings, corpus: str, say: Say):
    from conductance_studies.sentiment_cnn import load_or_train_sentiment_cnn

    if s.train_limit is None:
        return load_or_train_sentiment_cnn(cache_dir, data_dir=data_dir, epochs=s.epochs,
                                           seed=s.seed, corpus=corpus, say=say)
    # Quick runs train a throw-away model on a slice of the training corpus.
    from conductance_studies.datasets import load_sst
    from conductance_studies.sentiment_cnn import (SentimentCNN, train_sentiment_cnn,
                                                   training_corpus)
    from conductance_studies.training import accuracy

    train = training_corpus(corpus, data_dir)
    train = train.subset(np.random.default_rng(s.seed).permutation(len(train))[: s.train_limit])
    dev = load_sst("dev", data_dir=data_dir)
    model, vocab, meta = train_sentiment_cnn(train, dev, epochs=s.epochs, seed=s.seed, say=say)
    test = load_sst("test", data_dir=data_dir)
    meta["test_accuracy"] = accuracy(model, vocab.encode(test.tokens, 56), test.labels,
                                     batch_size=512)
    meta["test_size"] = len(test)
    return SentimentCNN(model, vocab, meta)


def _sign_ratio(drops: np.ndarray) -> Dict[str, float]:
    """|sum of ablation scores| / sum of |ablation scores| per example (the
    paper's supplementary Figure 1): 1 when all filters push one way."""
    ratio = np.abs(drops.sum(axis=1)) / np.maximum(np.abs(drops).sum(axis=1), 1e-12)
    return {"mean": float(ratio.mean()), "median": float(np.median(ratio))}


# -- ImageNet ---------------------------------------------------------------


def run_imagenet(out: pathlib.Path, *, data_dir=None, settings: Settings = FULL,
                 say: Say = print) -> dict:
    """The image studies (Sections 5, 5.1, 5.2) with MobileNet v1 on the photos."""
    import keras_conductance as kc
    from keras_conductance.ablation import Ablator
    from keras_conductance.pixels import pixel_maps
    from conductance_studies.datasets import load_imagenet_samples
    from conductance_studies import (ablation_agreement, feature_selection, filters_to_flip,
                                     per_filter_scores, stratified_splits)
    from conductance_studies.mobilenet import load_mobilenet

    s = settings
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    elapsed = lambda: f"{time.perf_counter() - start:.0f} s"
    model, size = load_mobilenet(s.mobilenet, data_dir)
    photos = load_imagenet_samples(size=size, data_dir=data_dir)
    if s.images is not None:  # spread a subset over the classes (files sort by wnid)
        keep = np.unique(np.linspace(0, len(photos) - 1, s.images).round().astype(int))
        photos = dataclasses.replace(
            photos, images=photos.images[keep], pixels=photos.pixels[keep],
            labels=photos.labels[keep], names=[photos.names[i] for i in keep],
            files=[photos.files[i] for i in keep])
    x, black = photos.images, -1.0  # the black image after preprocess_input
    layers = list(s.layers)
    explainer = kc.Conductance(model, layers, pre_softmax=True, n_steps=s.image_steps,
                               tolerance=s.image_tolerance, max_steps=s.image_max_steps,
                               batch_size=64, verbose=0)
    say(f"[imagenet 1/6] MobileNet v1 {s.mobilenet}: conductance of {layers} on "
        f"{len(x)} photos (black baseline, top-class logit, tolerance {s.image_tolerance}) ...")
    parts = []
    for i in range(0, len(x), 10):
        parts.append(explainer.explain(x[i:i + 10], baselines=black))
        say(f"      {min(i + 10, len(x))}/{len(x)} photos ({elapsed()})")
    ms = _concat_measures(parts)
    cond = ms.conductance
    top1 = float(np.mean(cond.target == photos.labels))
    ends = kc.Conductance(model, layers, pre_softmax=True, verbose=0).endpoints(
        np.concatenate([x[:20], np.full_like(x[:1], black)]))
    result = {"model": f"MobileNet v1 {s.mobilenet}", "photos": len(x), "top1_on_photos": top1,
              "baseline": "black image (-1 after preprocess_input)",
              "score": "pre-softmax logit of the top predicted class",
              "completeness": _completeness(cond, layers), "steps": _steps(cond),
              "score_at_input_median": float(np.median(cond.output_at_input)),
              "score_at_baseline_median": float(np.median(cond.output_at_baseline)),
              "mean_activation": {l: {"photos": float(ends.activation[l][:-1].mean()),
                                      "black": float(ends.activation[l][-1].mean())}
                                  for l in layers},
              # Per-filter change y(x) - y(x') over 20 photos: positive how often?
              "delta_y_positive": {l: float(np.mean(ends.activation.per_filter(l)[:-1]
                                                    > ends.activation.per_filter(l)[-1:]))
                                   for l in layers}}
    say(f"      top-1 {top1:.2f}; completeness {result['completeness']}; steps {result['steps']}")

    say("[imagenet 2/6] Ablation agreement, top-10 filters by conductance (Section 5.1) ...")
    result["agreement"], result["flips"], ablators = {}, {}, {}
    for layer in layers:
        ablator = ablators[layer] = Ablator(model, layer, pre_softmax=True)
        agree = ablation_agreement(model, x, layer, ms, k=10, baselines=black, pre_softmax=True,
                                   ablator=ablator)
        result["agreement"][layer] = agree.summary()
        agree.plot(figures / f"imagenet_agreement_{layer}.png",
                   title=f"MobileNet {s.mobilenet} {layer}: top-10 filters, {len(x)} photos")
        say(f"      {layer}: zero { {m: round(v['mean'], 2) for m, v in agree.summary()['zero'].items()} } "
            f"({elapsed()})")
        flips = filters_to_flip(model, x, layer, ms, max_filters=s.image_flip_limit,
                                baselines=black, pre_softmax=True, ablator=ablator)
        result["flips"][layer] = flips.summary()
        flips.plot(figures / f"imagenet_flips_{layer}.png",
                   title=f"MobileNet {layer}: filters to flip the top class")
        say(f"      {layer}: flips {result['flips'][layer]} ({elapsed()})")

    say(f"[imagenet 3/6] Diagnostics on {min(s.diagnostic_images, len(x))} photos: per-filter "
        f"convergence ({s.diagnostic_steps} steps), additivity of single-filter ablations, "
        "agreement over all filters ...")
    result["diagnostics"] = _diagnostics(model, x, ms, explainer, ablators, s, black)
    say(f"      {result['diagnostics']} ({elapsed()})")

    say("[imagenet 4/6] Feature selection: animal (classes 0-397) vs not, "
        f"{s.folds}-fold (Section 5.2) ...")
    labels = (photos.labels < 398).astype(int)
    splits = stratified_splits(labels, s.folds, s.seed)
    result["selection"], result["folds"] = {}, s.folds
    for layer in layers:
        scores = per_filter_scores(ms, layer)
        sel = feature_selection(scores, scores["activation"], labels, splits, seed=s.seed)
        result["selection"][layer] = dataclasses.asdict(sel)
        sel.plot(figures / f"imagenet_selection_{layer}.png",
                 title=f"{layer}: animal vs not ({len(x)} photos, {s.folds}-fold)")
    say(f"      done ({elapsed()})")

    say(f"[imagenet 5/6] Pixel-level Eq. 2 maps at {s.pixel_layer} (Section 5) ...")
    correct = np.flatnonzero(cond.target == photos.labels)
    pick = (correct if correct.size >= s.pixel_images else np.arange(len(x)))[: s.pixel_images]
    per_filter = cond.per_filter(s.pixel_layer)[pick]
    top = np.argsort(-per_filter, axis=1)[:, : s.pixel_filters]
    maps = pixel_maps(model, x[pick], s.pixel_layer, top, pixels=photos.pixels[pick],
                      example_names=[photos.names[i] for i in pick],
                      target=cond.target[pick], baselines=black, pre_softmax=True,
                      n_steps=s.pixel_steps)
    maps.plot(figures / "imagenet_pixels.png")
    # The same maps without the photos' pixels (shareable without the photos).
    maps.plot(figures / "imagenet_pixel_maps.png", show_photo=False, dpi=60)
    # Completeness of Eq. 2: each map sums to its filter's Eq. 3 conductance.
    eq3 = np.take_along_axis(per_filter, top, 1)
    err = np.abs(maps.conductance - eq3) / np.maximum(np.abs(eq3), 1e-12)
    result["pixels"] = {"layer": s.pixel_layer, "images": [photos.names[i] for i in pick],
                        "filters": top.tolist(), "steps": s.pixel_steps,
                        "map_sum_vs_conductance_rel_error": {"median": float(np.median(err)),
                                                             "max": float(err.max())}}
    say(f"      map sums vs conductance: {result['pixels']['map_sum_vs_conductance_rel_error']} "
        f"({elapsed()})")
    say("[imagenet 6/6] done")
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _diagnostics(model, x, ms, explainer, ablators, s: "Settings", black) -> dict:
    """Why do ablation and conductance agree or not? On a subset of photos:
    is per-filter conductance converged (vs a finer fixed grid), how far is
    the sum of single-filter ablations from F(x) - F(x') (additivity), and
    how well do they agree over every filter rather than the top 10."""
    import keras_conductance as kc
    from conductance_studies import ablation_agreement
    from conductance_studies.common import describe, pearson_rows

    pick = np.unique(np.linspace(0, len(x) - 1, min(s.diagnostic_images, len(x))).round().astype(int))
    sub = _subset_measures(ms, pick)
    # The reference is a fixed fine grid. Its own explainer, because an
    # override of None keeps the main explainer's tolerance (adaptive, whose
    # first grid of diagnostic_steps would exceed its max_steps).
    fixed = kc.Conductance(model, explainer.layers, pre_softmax=True, n_steps=s.diagnostic_steps,
                           batch_size=explainer.batch_size, verbose=0)
    fine = fixed.explain(x[pick], target=sub.conductance.target, baselines=black).conductance
    out = {"photos": int(pick.size), "steps": s.diagnostic_steps}
    for layer, ablator in ablators.items():
        ref = fine.per_filter(layer)
        top = np.argsort(-ref, axis=1)[:, :10]
        main = np.take_along_axis(sub.conductance.per_filter(layer), top, 1)
        ref_top = np.take_along_axis(ref, top, 1)
        agree = ablation_agreement(model, x[pick], layer, sub, k=None, baselines=black,
                                   pre_softmax=True, ablator=ablator)
        out[layer] = {
            "top10_pearson_vs_fine": describe(pearson_rows(main, ref_top)),
            "top10_max_rel_diff_vs_fine": float((np.abs(main - ref_top).max(1)
                                                 / np.abs(ref_top).max(1)).max()),
            "additivity": agree.additivity(),
            "all_filters": {v: {m: agree.summary()[v][m]["mean"] for m in ("conductance",
                                "gradient_x_activation")} for v in agree.correlations},
        }
    return out


def _subset_measures(ms, index):
    from keras_conductance.attribution import Attribution, Measures

    def take(a):
        return Attribution(a.measure, {l: a[l][index] for l in a}, output_diff=a.output_diff[index],
                           output_at_input=a.output_at_input[index],
                           output_at_baseline=a.output_at_baseline[index], target=a.target[index],
                           n_steps=a.n_steps[index], method=a.method, is_cut=a.is_cut)

    return Measures(*[take(getattr(ms, f)) for f in
                      ("conductance", "internal_influence", "gradient_x_activation", "activation")])


def _concat_measures(parts):
    """Joins ``Measures`` of consecutive batches (same layers)."""
    from keras_conductance.attribution import Attribution, Measures

    def join(attrs):
        first = attrs[0]
        cat = lambda name: np.concatenate([getattr(a, name) for a in attrs])
        return Attribution(first.measure, {l: np.concatenate([a[l] for a in attrs]) for l in first},
                           output_diff=cat("output_diff"), output_at_input=cat("output_at_input"),
                           output_at_baseline=cat("output_at_baseline"), target=cat("target"),
                           n_steps=cat("n_steps"), method=first.method, is_cut=first.is_cut)

    return Measures(*[join([getattr(p, f) for p in parts]) for f in
                      ("conductance", "internal_influence", "gradient_x_activation", "activation")])


# -- everything ---------------------------------------------------------------


def run_all(out, *, data_dir=None, settings: Settings = FULL,
            which=("sentiment", "imagenet", "table1"), say: Say = print) -> dict:
    """Runs the chosen study groups and writes ``results.json``/``results.md``."""
    from conductance_studies.tables import write_markdown

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if "table1" in which:  # fail now, not after the other studies' half hour
        check_label_sets(settings.table1, data_dir)
    start = time.perf_counter()
    results = {}
    if "sentiment" in which:
        for corpus in settings.corpora:
            key = "sentiment" if corpus == "sentences" else f"sentiment_{corpus}"
            results[key] = run_sentiment(out, data_dir=data_dir, settings=settings,
                                         trained_on=corpus, say=say)
    if "imagenet" in which:
        results["imagenet"] = run_imagenet(out, data_dir=data_dir, settings=settings, say=say)
    if "table1" in which:
        results["table1"] = run_table1(out, data_dir=data_dir, settings=settings.table1, say=say)
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["settings"] = dataclasses.asdict(settings)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=_json_default))
    (out / "results.md").write_text(write_markdown(results))
    say(f"Wrote {out / 'results.md'}, {out / 'results.json'} and figures in "
        f"{out / 'figures'} ({results['seconds']:.0f} s in all).")
    return results


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
