"""Stanford Sentiment Treebank sentences (SST-2): staged files or tfds.

The staged files ``sst/stsa.binary.{train,dev,test}`` hold one sentence per
line, ``<label> <lower-cased tokenized sentence>`` (label 1 = positive). For
users with internet, ``source="tfds"`` reads the ``glue/sst2`` dataset of
``tensorflow_datasets`` instead (its test split has no labels, so ``"test"``
maps to nothing there; use ``"dev"``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from typing import Dict, Iterable, List, Sequence

import numpy as np

from conductance_studies.datasets.paths import default_data_dir

__all__ = ["SPLITS", "Sentences", "Vocabulary", "load_sst", "load_sst_phrases", "tokenize"]

SPLITS = ("train", "dev", "test")
_TFDS_SPLITS = {"train": "train", "dev": "validation"}
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[\w-]+|[^\w\s]")


@dataclasses.dataclass
class Sentences:
    """Tokenized sentences with binary labels.

    Attributes:
        tokens: one list of tokens per sentence.
        labels: ``(N,)`` int, 1 = positive, 0 = negative.
    """

    tokens: List[List[str]]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, index) -> "Sentences":
        index = np.asarray(index)
        return Sentences([self.tokens[i] for i in index], self.labels[index])

    def text(self, i: int) -> str:
        return " ".join(self.tokens[i])


def tokenize(text: str) -> List[str]:
    """Lower-cases and splits off punctuation, ``n't`` and clitics (``'s``)
    as the SST files do: "it isn't" -> ["it", "is", "n't"]."""
    text = text.lower().replace("n't", " n't")
    return _TOKEN.findall(text)


def _check_split(split: str, valid: Sequence[str]):
    if split not in valid:
        raise ValueError(f"Unknown SST split: split={split!r}. Valid splits: {list(valid)}.")


def load_sst(split: str, *, source: str = "staged", data_dir=None) -> Sentences:
    """Loads one SST-2 split.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        source: ``"staged"`` (the files under ``<data_dir>/sst/``) or
            ``"tfds"`` (``glue/sst2`` from tensorflow_datasets; needs the
            ``datasets`` extra and internet on first use).
        data_dir: the staged data folder (see ``default_data_dir``).

    Returns:
        ``Sentences``.
    """
    _check_split(split, SPLITS)
    if source == "staged":
        path = default_data_dir(data_dir) / "sst" / f"stsa.binary.{split}"
        tokens, labels = [], []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                label, _, sentence = line.partition(" ")
                tokens.append(sentence.split())
                labels.append(int(label))
        return Sentences(tokens, np.asarray(labels, np.int64))
    if source == "tfds":
        return _load_tfds(split)
    raise ValueError(f"Unknown SST source: source={source!r}. Valid sources: ['staged', 'tfds'].")


def _tree_phrases(line: str):
    """Yields ``(label 0-4, lower-cased tokens)`` for every node of one PTB
    tree such as ``(3 (2 not) (4 (2 very) (4 good)))``, children first."""
    stack = []  # per open node: [label, tokens]
    for piece in re.findall(r"\(|\)|[^\s()]+", line):
        if piece == "(":
            stack.append([None, []])
        elif piece == ")":
            label, tokens = stack.pop()
            yield label, tokens
            if stack:
                stack[-1][1].extend(tokens)
        elif stack[-1][0] is None:
            stack[-1][0] = int(piece)
        else:
            stack[-1][1].append(piece.lower())


def load_sst_phrases(split: str = "train", *, data_dir=None) -> Sentences:
    """Every labelled phrase of SST's parse trees, as SST-2 labels.

    Kim (2014), whose CNN the paper uses, trained on the phrases of the
    training trees as well as the sentences: every node carries a 0-4
    sentiment label; 0/1 become negative, 3/4 positive, 2 (neutral) is
    dropped, and a phrase that occurs more than once is kept once (with its
    first label). Sentences are the trees' roots, so they are included.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"`` (the trees of that split).
        data_dir: the staged data folder holding
            ``sst/trainDevTestTrees_PTB.zip``.

    Returns:
        ``Sentences`` of phrases, lower-cased like the ``stsa`` files.
    """
    import zipfile

    _check_split(split, SPLITS)
    path = default_data_dir(data_dir) / "sst" / "trainDevTestTrees_PTB.zip"
    with zipfile.ZipFile(path) as archive:
        text = archive.read(f"trees/{split}.txt").decode("utf-8")
    seen, tokens, labels = set(), [], []
    for line in text.splitlines():
        for label, words in _tree_phrases(line) if line.strip() else ():
            key = " ".join(words)
            if label == 2 or key in seen:
                continue
            seen.add(key)
            tokens.append(list(words))
            labels.append(int(label > 2))
    return Sentences(tokens, np.asarray(labels, np.int64))


def _load_tfds(split: str) -> Sentences:
    _check_split(split, list(_TFDS_SPLITS))
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            "source='tfds' needs tensorflow-datasets: `pip install "
            "'keras-conductance[datasets]'`."
        ) from None
    tokens, labels = [], []
    for example in tfds.as_numpy(tfds.load("glue/sst2", split=_TFDS_SPLITS[split])):
        sentence = example["sentence"]
        sentence = sentence.decode("utf-8") if isinstance(sentence, bytes) else str(sentence)
        tokens.append(tokenize(sentence))
        labels.append(int(example["label"]))
    return Sentences(tokens, np.asarray(labels, np.int64))


class Vocabulary:
    """Token <-> id map; id 0 is padding, id 1 an unknown token.

    Args:
        words: the known words, most frequent first.
    """

    PAD, UNK = 0, 1

    def __init__(self, words: Sequence[str]):
        self.words = ["<pad>", "<unk>"] + list(words)
        self.index: Dict[str, int] = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[List[str]], min_count: int = 1) -> "Vocabulary":
        counts = collections.Counter(t for s in sentences for t in s)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(kept)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Sequence[List[str]], length: int) -> np.ndarray:
        """``(N, length)`` int32 ids, padded with 0 and truncated at the end."""
        out = np.zeros((len(sentences), length), np.int32)
        for i, sentence in enumerate(sentences):
            ids = [self.index.get(t, self.UNK) for t in sentence[:length]]
            out[i, : len(ids)] = ids
        return out

    def decode(self, ids: Sequence[int]) -> List[str]:
        return [self.words[i] for i in ids if i != self.PAD]

    def to_json(self) -> str:
        return json.dumps(self.words[2:])

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls(json.loads(text))
