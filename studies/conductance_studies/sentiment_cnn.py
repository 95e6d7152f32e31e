"""The paper's sentiment CNN (Section 6, after Kim 2014), trained on SST.

Tokens -> 50-d embedding -> convolutions of widths 3, 4, 5, 6 with 64 maps
each (ReLU) -> 1-max pooling, concatenated to 256 (layer ``"pooled"``) ->
dense 10 (ReLU) -> one logit (positive sentiment when > 0). The padding
token's embedding is held at zero, so the zero-embedding baseline is the
empty (all-padding) sentence. Trained weights and vocabulary are cached in a
folder and retrained from the staged data when absent.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Callable, Sequence

import numpy as np

from conductance_studies.datasets import Sentences, Vocabulary, load_sst, load_sst_phrases
from conductance_studies.training import accuracy, fit_keeping_best, load_cache, save_cache

__all__ = ["SentimentCNN", "build_sentiment_cnn", "load_or_train_sentiment_cnn",
           "training_corpus", "CORPORA", "POOLED", "EMBEDDING", "WIDTHS", "MAPS", "LENGTH"]

WIDTHS = (3, 4, 5, 6)
MAPS = 64
LENGTH = 56  # the longest SST-2 test sentence
POOLED = "pooled"
EMBEDDING = "embedding"
_WEIGHTS, _VOCAB, _META = "sentiment_cnn.weights.h5", "vocab.json", "meta.json"
# What the network learns from: SST-2's training sentences (the stsa files),
# or, as Kim (2014) did, every labelled phrase of the training trees too.
CORPORA = ("sentences", "phrases")


def training_corpus(corpus: str, data_dir=None) -> Sentences:
    """The training examples of ``corpus`` (``"sentences"`` or ``"phrases"``);
    never dev or test phrases."""
    if corpus == "sentences":
        return load_sst("train", data_dir=data_dir)
    if corpus == "phrases":
        return load_sst_phrases("train", data_dir=data_dir)
    raise ValueError(f"Unknown training corpus: corpus={corpus!r}. Valid: {list(CORPORA)}.")


@dataclasses.dataclass
class SentimentCNN:
    """A trained sentiment CNN with its vocabulary.

    Attributes:
        model: tokens ``(B, LENGTH)`` int32 -> logit ``(B, 1)``.
        vocab: the ``Vocabulary`` it was trained with.
        meta: training settings and accuracies (dev, test).
    """

    model: object
    vocab: Vocabulary
    meta: dict

    def encode(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        return self.vocab.encode(sentences, LENGTH)

    def filter_window(self, filter_index: int):
        """(conv layer name, width, channel) of a ``pooled`` filter index."""
        width = WIDTHS[filter_index // MAPS]
        return f"conv{width}", width, filter_index % MAPS


def _zero_padding_row():
    import keras

    class ZeroPaddingRow(keras.constraints.Constraint):
        """Keeps row 0 (the padding token) of an embedding at zero."""

        def __call__(self, w):
            mask = keras.ops.concatenate(
                [keras.ops.zeros((1, 1)), keras.ops.ones((w.shape[0] - 1, 1))], axis=0)
            return w * keras.ops.cast(mask, w.dtype)

    return ZeroPaddingRow()


def build_sentiment_cnn(vocab_size: int, *, length: int = LENGTH, widths=WIDTHS, maps: int = MAPS,
                        embed_dim: int = 50, hidden: int = 10, dropout: float = 0.5):
    """The untrained network (a Functional ``keras.Model``)."""
    import keras

    tokens = keras.Input((length,), dtype="int32", name="tokens")
    emb = keras.layers.Embedding(vocab_size, embed_dim, name=EMBEDDING,
                                 embeddings_constraint=_zero_padding_row())(tokens)
    pooled = []
    for w in widths:
        conv = keras.layers.Conv1D(maps, w, activation="relu", name=f"conv{w}")(emb)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"pool{w}")(conv))
    cat = keras.layers.Concatenate(name=POOLED)(pooled)
    drop = keras.layers.Dropout(dropout, name="dropout")(cat)
    dense = keras.layers.Dense(hidden, activation="relu", name="dense")(drop)
    logit = keras.layers.Dense(1, name="logit")(dense)
    return keras.Model(tokens, logit, name="sentiment_cnn")


def _accuracy(model, x, y) -> float:
    return accuracy(model, x, y, batch_size=512)


def train_sentiment_cnn(train: Sentences, dev: Sentences, *, epochs: int = 8, seed: int = 0,
                        say: Callable = print):
    """Trains on ``train``; keeps the epoch with the best dev accuracy.

    Returns:
        ``(model, vocab, meta)``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    vocab = Vocabulary.build(train.tokens)
    x, y = vocab.encode(train.tokens, LENGTH), train.labels.astype("float32")
    xd, yd = vocab.encode(dev.tokens, LENGTH), dev.labels
    model = build_sentiment_cnn(len(vocab))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    best, history = fit_keeping_best(model, x, y, xd, yd, epochs=epochs, batch_size=50, say=say)
    meta = {"epochs": epochs, "seed": seed, "dev_accuracy": best, "history": history,
            "vocab_size": len(vocab), "length": LENGTH}
    return model, vocab, meta


def load_or_train_sentiment_cnn(cache_dir, *, data_dir=None, epochs: int = 8, seed: int = 0,
                                corpus: str = "sentences", retrain: bool = False,
                                say: Callable = print) -> SentimentCNN:
    """Loads the cached model from ``cache_dir`` or trains and caches it.

    Args:
        cache_dir: folder for ``sentiment_cnn.weights.h5``, ``vocab.json``
            and ``meta.json`` (e.g. ``results/sentiment_cnn``; not for git).
        data_dir: the staged data folder (SST files).
        epochs, seed: training settings (a change retrains).
        corpus: ``"sentences"`` (SST-2's 6,920 training sentences) or
            ``"phrases"`` (every labelled phrase of the training trees, with
            the sentences: 77,195 examples); a change retrains.
        retrain: train even when a cached model exists.
        say: progress printer.

    Returns:
        ``SentimentCNN`` with ``meta["test_accuracy"]`` on the SST-2 test split.
    """
    cache = pathlib.Path(cache_dir)
    files = [cache / _WEIGHTS, cache / _VOCAB, cache / _META]
    if corpus not in CORPORA:  # before the cache is read
        training_corpus(corpus, data_dir)  # raises, naming the valid corpora
    settings = {"epochs": epochs, "seed": seed, "corpus": corpus}
    cached = None if retrain else load_cache(files, settings, build_sentiment_cnn,
                                             f"sentiment CNN ({corpus})", say)
    if cached is not None:
        return SentimentCNN(*cached)
    train = training_corpus(corpus, data_dir)
    dev, test = (load_sst(s, data_dir=data_dir) for s in ("dev", "test"))
    say(f"      training on {len(train)} SST-2 {corpus}, {epochs} epochs ...")
    start = time.perf_counter()
    model, vocab, meta = train_sentiment_cnn(train, dev, epochs=epochs, seed=seed, say=say)
    meta["corpus"], meta["train_size"] = corpus, len(train)
    meta["train_seconds"] = round(time.perf_counter() - start, 1)
    meta["test_accuracy"] = _accuracy(model, vocab.encode(test.tokens, LENGTH), test.labels)
    meta["test_size"] = len(test)
    save_cache(files, model, vocab, meta, say)
    return SentimentCNN(model, vocab, meta)
