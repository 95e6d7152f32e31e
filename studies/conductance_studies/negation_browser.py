"""The negation filters (paper Section 6.3) found again in the unit browser.

The negation study (``negation.py``) picks the filters that read "not good"
on a probe phrase and lists, from the pooled per-filter conductance of a
corpus, the sentences each filter conducts most on, with the window its
1-max pooling picked. Here the same corpus streams through
``kc.conductance_over_dataset(..., top_k=K)`` on the convolution layers, the
unit browser is written, and each negation filter's browser entries (its
conv layer and channel; the side of its direction) are compared with the
study's sentences and windows: they must be the same.
"""

from __future__ import annotations

import pathlib
import time
from typing import Callable, Optional

import numpy as np

__all__ = ["negation_browser"]

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
                           class_names=["negative", "positive"])
    # The study, as run.py runs it: the corpus' pooled conductance, then the probe.
    raw = kc.conductance(model, ids, pooled, start_layer=start_layer, target=0, n_steps=n_steps,
                         batch_size=1024, verbose=0).per_filter(pooled)
    study = negation_study(model, encode, probe.split(), pattern.split(), corpus, raw,
                           layer=pooled, start_layer=start_layer, window_of=window_of,
                           direction=direction, n_examples=top_k, n_steps=n_steps,
                           **(study_settings or {}))
    return dict(seconds=round(seconds, 1), page=page, result=result,
                filters=[_compare(f, study, result, window_of, corpus) for f in study.filters])


def _compare(negation_filter, study, result, window_of, corpus) -> dict:
    """One negation filter: the study's sentences and windows against the
    browser's entries for its conv layer and channel."""
    conv, width, channel = window_of(negation_filter.index)
    side = "positive" if negation_filter.direction > 0 else "negative"
    browser = []
    for entry in result.top[conv].unit(channel, side):
        tokens = corpus[entry["example"]]
        first = entry["position"][0]
        browser.append((" ".join(tokens), (first, min(first + width, len(tokens)))))
    mine = [(" ".join(e.tokens), tuple(e.window)) for e in study.examples
            if e.filter == negation_filter.index]
    # The study lists a repeated sentence once; the browser keeps every
    # position (a sentence the corpus holds twice can fill two slots).
    found = [m for m in mine if m in browser]
    return dict(filter=negation_filter.index, layer=conv, channel=channel, side=side,
                study=mine, browser=browser, agree=len(found), of=len(mine))
