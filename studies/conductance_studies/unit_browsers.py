"""Unit browsers of the studies' models, on the staged data.

``negation_browser``: the negation filters (paper Section 6.3) found again
in the unit browser.

The negation study (``negation.py``) picks the filters that read "not good"
on a probe phrase and lists, from the pooled per-filter conductance of a
corpus, the sentences each filter conducts most on, with the window its
1-max pooling picked. Here the same corpus streams through
``kc.conductance_over_dataset(..., top_k=K)`` on the convolution layers, the
unit browser is written, and each negation filter's browser entries (its
conv layer and channel; the side of its direction) are compared with the
study's sentences and windows: they must be the same.

``imagenet_browser``: pretrained MobileNet v1 over ImageNet validation
photos, each kept picture with its unit's Eq. 2 map.
"""

from __future__ import annotations

import pathlib
import time
from typing import Callable, Optional

import numpy as np

__all__ = ["compare_negation_filters", "imagenet_browser", "negation_browser"]

PROBE, PATTERN, READING = "this is not good", "not good", -1


def negation_browser(out, *, data_dir=None, cache_dir=None, corpus_size: int = 4000,
                     n_steps: int = 64, top_k: int = 8, trained_on: str = "phrases",
                     epochs: int = 5, seed: int = 0, say: Callable = print) -> dict:
    """The SST case: the phrase-trained sentiment CNN (as the study trains
    it) over the study's corpus, "this is not good" read the true way.

    Args:
        out: output folder (``negation.npz``, ``negation_browser/``).
        data_dir: the staged data folder (``sst/``).
        cache_dir: the trained model's cache (default ``out/sentiment_cnn_<corpus>``).
        corpus_size: training sentences streamed (the study's corpus: the
            same seed, the same sentences).
        n_steps: integration steps (the study's ``text_steps``).
        top_k: positions kept per filter and sign (the study lists 8).
        trained_on, epochs, seed: the model, as the study trains it.
        say: progress printer.

    Returns:
        ``compare_negation_filters``'s summary.
    """
    from conductance_studies.datasets import load_sst
    from conductance_studies.sentiment_cnn import EMBEDDING, POOLED, WIDTHS, \
        load_or_train_sentiment_cnn

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cnn = load_or_train_sentiment_cnn(cache_dir or out / f"sentiment_cnn_{trained_on}",
                                      data_dir=data_dir, epochs=epochs, seed=seed,
                                      corpus=trained_on, say=say)
    train = load_sst("train", data_dir=data_dir)
    corpus = train.subset(np.random.default_rng(seed).permutation(len(train))[:corpus_size])
    return compare_negation_filters(
        cnn.model, cnn.encode, cnn.vocab.words, corpus.tokens, corpus.labels, out,
        conv_layers=[f"conv{w}" for w in WIDTHS], pooled=POOLED, start_layer=EMBEDDING,
        window_of=cnn.filter_window, n_steps=n_steps, top_k=top_k, say=say)


def compare_negation_filters(model, encode, words, corpus, labels, out, *, conv_layers, pooled,
                             start_layer, window_of, probe=PROBE, pattern=PATTERN,
                             direction=READING, n_steps: int = 64, top_k: int = 8,
                             study_settings: Optional[dict] = None,
                             say: Callable = print) -> dict:
    """Streams ``corpus`` through the conv layers with ``top_k``, writes the
    browser, runs the negation study on ``probe`` and compares each of its
    filters' sentences and windows with the browser's entries.

    Args:
        model: a one-logit text CNN (token ids -> F) with 1-max pooling.
        encode: token lists -> ``(N, L)`` ids; words: token strings by id.
        corpus: tokenized sentences; labels: ``(N,)`` their labels.
        out: output folder.
        conv_layers: the convolution layers; pooled: their pooled concatenation.
        start_layer: the embedding layer; window_of: pooled filter index ->
            (conv layer, width, channel).
        probe, pattern, direction: the study's probe phrase, its negation and
            the direction (+1/-1 or ``"predicted"``).
        n_steps, top_k: integration steps; positions kept per unit and sign.
        study_settings: more keywords for ``negation_study`` (its thresholds).
        say: progress printer.

    Returns:
        seconds (the dataset run), the page, and per filter: its layer,
        channel and side, the study's (sentence, window) list, the
        browser's, and how many of the study's the browser holds.
    """
    import tensorflow as tf

    import keras_conductance as kc
    from conductance_studies.negation import negation_study

    out = pathlib.Path(out)
    ids = encode(corpus)
    start = time.perf_counter()
    say(f"Streaming {len(corpus)} sentences through {conv_layers} with top_k={top_k} ...")
    result = kc.conductance_over_dataset(
        model, tf.data.Dataset.from_tensor_slices((ids, np.asarray(labels))).batch(250),
        conv_layers, target=0, start_layer=start_layer, n_steps=n_steps, top_k=top_k,
        verbose="auto")
    seconds = time.perf_counter() - start
    result.save(out / "negation.npz")
    page = kc.unit_browser(result, out / "negation_browser", vocabulary=list(words),
                           class_names=["F, the positive-sentiment logit"],
                           label_names=["negative", "positive"])
    # The study, as run.py runs it: the corpus' pooled conductance, then the probe.
    raw = kc.conductance(model, ids, pooled, start_layer=start_layer, target=0, n_steps=n_steps,
                         batch_size=1024, verbose=0).per_filter(pooled)
    study = negation_study(model, encode, probe.split(), pattern.split(), corpus, raw,
                           layer=pooled, start_layer=start_layer, window_of=window_of,
                           direction=direction, n_examples=top_k, n_steps=n_steps,
                           **(study_settings or {}))
    filters = []
    for f in study.filters:
        listed = _study_list(model, encode, corpus, raw, f, window_of, top_k)
        # The study's own list merges its filters' sentences, each under the
        # filter it scores highest on: a filter's share of it is within the
        # filter's own list by this rule.
        own = [(" ".join(e.tokens), tuple(e.window)) for e in study.examples
               if e.filter == f.index]
        if any(sentence not in listed for sentence in own):
            raise AssertionError(f"filter {f.index}: the study listed {own}, its rule {listed}")
        filters.append(_compare(f, listed, result, window_of, corpus))
    return dict(seconds=round(seconds, 1), page=page, result=result, filters=filters)


def _study_list(model, encode, corpus, raw, negation_filter, window_of, n: int) -> list:
    """The study's rule for one filter: the ``n`` distinct sentences with the
    largest conductance in the filter's direction, and the window its max
    pooling picked in each."""
    from conductance_studies.negation import _windows, distinct_top

    top = distinct_top(negation_filter.direction * raw[:, negation_filter.index], corpus, n)
    sentences = [list(corpus[i]) for i in top]
    ids = encode(sentences)
    lengths = [min(len(t), ids.shape[1]) for t in sentences]
    spans = _windows(model, ids, lengths, [negation_filter.index] * len(top), window_of)
    return [(" ".join(t[:k]), tuple(w)) for t, k, w in zip(sentences, lengths, spans)]


def _compare(negation_filter, listed, result, window_of, corpus) -> dict:
    """One negation filter: the study's sentences and windows against the
    browser's entries for its conv layer, channel and side."""
    conv, width, channel = window_of(negation_filter.index)
    side = "positive" if negation_filter.direction > 0 else "negative"
    browser = []
    for entry in result.top[conv].unit(channel, side):
        tokens = corpus[entry["example"]]
        first = entry["position"][0]
        browser.append((" ".join(tokens), (first, min(first + width, len(tokens)))))
    # The study lists a repeated sentence once; the browser keeps every
    # position (a sentence the corpus holds twice can fill two slots).
    found = [m for m in listed if m in browser]
    return dict(filter=negation_filter.index, layer=conv, channel=channel, side=side,
                study=listed, browser=browser, agree=len(found), of=len(listed))


def imagenet_browser(out, *, data_dir=None, mobilenet: str = "0.25_128",
                     layer: str = "conv_pw_7_relu", per_class: int = 10, n_steps: int = 32,
                     map_steps: int = 16, top_k: int = 4, say: Callable = print) -> dict:
    """MobileNet v1 (staged pretrained weights) over the val50 photos: each
    filter's top cells toward its photo's own class logit and against it,
    each shown with the filter's Eq. 2 map.

    Args:
        out: output folder (``imagenet.npz``, ``imagenet_browser/``).
        data_dir: the staged data folder (``imagenet/``).
        mobilenet: ``"0.25_128"`` or ``"0.75_224"``.
        layer: the explained layer.
        per_class: photos per class of the 20 val50 classes.
        n_steps, map_steps: integration steps of the dataset run and of the maps.
        top_k: cells kept per filter and sign.
        say: progress printer.

    Returns:
        seconds (the dataset run, the browser with its maps) and the page.
    """
    import keras
    import tensorflow as tf

    import keras_conductance as kc
    from conductance_studies.datasets import default_data_dir, load_imagenet_classes
    from conductance_studies.mobilenet import load_mobilenet

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, size = load_mobilenet(mobilenet, data_dir)
    model = kc.strip_softmax(model)
    wnids = sorted(p.name for p in (default_data_dir(data_dir) / "imagenet" / "val50").iterdir()
                   if p.is_dir())
    photos = load_imagenet_classes(wnids, size=size, per_class=per_class, data_dir=data_dir)
    start = time.perf_counter()
    say(f"Streaming {len(photos.labels)} photos through {layer} with top_k={top_k} ...")
    result = kc.conductance_over_dataset(
        model, tf.data.Dataset.from_tensor_slices((photos.images, photos.labels)).batch(20),
        layer, target="label", baselines=-1.0, n_steps=n_steps, top_k=top_k, verbose="auto")
    run = time.perf_counter() - start
    result.save(out / "imagenet.npz")
    from conductance_studies.datasets import imagenet_class_index

    names = [name for _, name in imagenet_class_index(data_dir)]
    start = time.perf_counter()
    say("Writing the browser with each entry's Eq. 2 map ...")
    page = kc.unit_browser(result, out / "imagenet_browser", class_names=names,
                           model=model, baselines=-1.0, n_steps=map_steps)
    keras.backend.clear_session()
    return dict(seconds=round(run, 1), browser_seconds=round(time.perf_counter() - start, 1),
                page=page, photos=len(photos.labels))
