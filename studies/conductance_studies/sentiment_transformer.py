"""A small transformer sentiment classifier on SST-2 (keras-hub layers).

Token ids and a padding mask -> ``TokenAndPositionEmbedding`` (layer
``"embedding"``) -> ``BLOCKS`` keras-hub ``TransformerEncoder`` blocks
(``"transformer_0"``, ...; 4 heads of 16, FFN of 128 ReLU neurons) -> masked
mean over tokens (``"pooled"``) -> one logit (positive when > 0). Trained
from scratch on SST's phrases and sentences (Kim 2014's protocol, so that
"not good" is seen with its own label), cached in a folder like the CNN.

The units the tutorial asks about live inside the blocks: the FFN neurons
are the output of ``transformer_i/feedforward_intermediate_dense`` and the
heads are the input of ``transformer_i/self_attention_layer/attention_output``
(``(B, T, heads, head_dim)``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Callable, List, Sequence

import numpy as np

from conductance_studies.datasets import Sentences, Vocabulary, load_sst, load_sst_phrases
from conductance_studies.training import accuracy, fit_keeping_best, load_cache, save_cache

__all__ = ["SentimentTransformer", "build_sentiment_transformer",
           "load_or_train_sentiment_transformer", "train_sentiment_transformer",
           "ffn_units", "head_units", "EMBEDDING", "LENGTH", "BLOCKS", "HEADS"]

LENGTH = 56  # the longest SST-2 test sentence
BLOCKS, HEADS, DIM, FFN = 2, 4, 64, 128
EMBEDDING = "embedding"
_WEIGHTS, _VOCAB, _META = "sentiment_transformer.weights.h5", "vocab.json", "meta.json"


def ffn_units(blocks: int = BLOCKS) -> List[str]:
    """The FFN neurons of every block: ``(B, T, FFN)`` each."""
    return [f"transformer_{i}/feedforward_intermediate_dense" for i in range(blocks)]


def head_units(blocks: int = BLOCKS) -> List[str]:
    """The attention heads of every block: ``(B, T, HEADS, DIM // HEADS)``."""
    return [f"transformer_{i}/self_attention_layer/attention_output:input"
            for i in range(blocks)]


def _keras_hub():
    try:
        import keras_hub
    except ImportError:
        raise ImportError(
            "The sentiment transformer uses keras-hub's TransformerEncoder: "
            "`pip install keras-conductance[hub]` (or `pip install keras-hub`)."
        ) from None
    return keras_hub


@dataclasses.dataclass
class SentimentTransformer:
    """A trained sentiment transformer with its vocabulary.

    Attributes:
        model: ``{"token_ids": (B, LENGTH) int32, "padding_mask": (B, LENGTH)
            bool}`` -> logit ``(B, 1)``.
        vocab: the ``Vocabulary`` it was trained with.
        meta: training settings and accuracies (dev, test).
    """

    model: object
    vocab: Vocabulary
    meta: dict

    def encode(self, sentences: Sequence[Sequence[str]]) -> dict:
        """Model inputs for tokenized sentences."""
        ids = self.vocab.encode(sentences, LENGTH)
        return {"token_ids": ids, "padding_mask": ids != Vocabulary.PAD}


def build_sentiment_transformer(vocab_size: int, *, length: int = LENGTH, blocks: int = BLOCKS,
                                heads: int = HEADS, dim: int = DIM, ffn: int = FFN,
                                dropout: float = 0.1):
    """The untrained network (a Functional ``keras.Model`` of keras-hub layers)."""
    import keras

    hub = _keras_hub()
    ids = keras.Input((length,), dtype="int32", name="token_ids")
    mask = keras.Input((length,), dtype="bool", name="padding_mask")
    x = hub.layers.TokenAndPositionEmbedding(vocab_size, length, dim, name=EMBEDDING)(ids)
    for i in range(blocks):
        x = hub.layers.TransformerEncoder(ffn, heads, dropout=dropout, activation="relu",
                                          name=f"transformer_{i}")(x, padding_mask=mask)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(x, mask=mask)
    logit = keras.layers.Dense(1, name="logit")(pooled)
    return keras.Model({"token_ids": ids, "padding_mask": mask}, logit,
                       name="sentiment_transformer")


def train_sentiment_transformer(train: Sentences, dev: Sentences, *, epochs: int = 3,
                                seed: int = 0, limit: int = 0, say: Callable = print):
    """Trains on ``train`` (phrases and sentences); keeps the epoch with the
    best dev accuracy.

    Args:
        limit: train on at most this many examples (0: all), for quick runs.

    Returns:
        ``(model, vocab, meta)``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if limit:
        train = train.subset(np.random.default_rng(seed).permutation(len(train))[:limit])
    vocab = Vocabulary.build(train.tokens)
    shell = SentimentTransformer(None, vocab, {})
    x, y = shell.encode(train.tokens), train.labels.astype("float32")
    xd, yd = shell.encode(dev.tokens), dev.labels
    model = build_sentiment_transformer(len(vocab))
    model.compile(optimizer=keras.optimizers.Adam(5e-4),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    best, history = fit_keeping_best(model, x, y, xd, yd, epochs=epochs, batch_size=64, say=say)
    meta = {"epochs": epochs, "seed": seed, "limit": limit, "dev_accuracy": best,
            "history": history, "vocab_size": len(vocab), "train_examples": len(train)}
    return model, vocab, meta


def load_or_train_sentiment_transformer(cache_dir, *, data_dir=None, epochs: int = 3,
                                        seed: int = 0, limit: int = 0, retrain: bool = False,
                                        say: Callable = print) -> SentimentTransformer:
    """Loads the cached model from ``cache_dir`` or trains and caches it.

    Args:
        cache_dir: folder for the weights, ``vocab.json`` and ``meta.json``.
        data_dir: the staged data folder (SST files).
        epochs, seed, limit: training settings (a change retrains).
        retrain: train even when a cached model exists.
        say: progress printer.

    Returns:
        ``SentimentTransformer`` with ``meta["test_accuracy"]`` on the SST-2
        test sentences.
    """
    cache = pathlib.Path(cache_dir)
    files = [cache / _WEIGHTS, cache / _VOCAB, cache / _META]
    settings = {"epochs": epochs, "seed": seed, "limit": limit}
    cached = None if retrain else load_cache(files, settings, build_sentiment_transformer,
                                             "sentiment transformer", say)
    if cached is not None:
        return SentimentTransformer(*cached)
    train = load_sst_phrases("train", data_dir=data_dir)
    dev, test = (load_sst(s, data_dir=data_dir) for s in ("dev", "test"))
    say(f"      training on {limit or len(train)} SST-2 phrases and sentences, "
        f"{epochs} epochs ...")
    start = time.perf_counter()
    model, vocab, meta = train_sentiment_transformer(train, dev, epochs=epochs, seed=seed,
                                                     limit=limit, say=say)
    meta["train_seconds"] = round(time.perf_counter() - start, 1)
    shell = SentimentTransformer(model, vocab, meta)
    meta["test_accuracy"] = accuracy(model, shell.encode(test.tokens), test.labels)
    meta["test_size"] = len(test)
    save_cache(files, model, vocab, meta, say)
    return shell
