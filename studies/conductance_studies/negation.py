"""Negation (paper Section 6.3, Figures 4-5).

Find the filters with high conductance for a probe phrase such as "this is
not good" whose Eq. 2 token attribution concentrates on the pattern ("not
good"); then list the corpus sentences with the highest conductance for
those filters in the same direction, with the window that the filter's
1-max pooling picked highlighted (HTML and terminal).
"""

from __future__ import annotations

import dataclasses
import html
from typing import Callable, List, Sequence, Tuple, Union

import keras
import numpy as np

import keras_conductance.functional as kcf
from keras_conductance.neuron import neuron_conductance
from conductance_studies.common import pyplot, finish

__all__ = ["NegationFilter", "NegationExample", "NegationResult", "distinct_top",
           "negation_study"]

# window_of(filter index) -> (conv layer name, window width, channel).
WindowFn = Callable[[int], Tuple[str, int, int]]


@dataclasses.dataclass
class NegationFilter:
    """A filter selected on the probe phrase.

    Attributes:
        index: filter index in the studied layer.
        conductance: its conductance for the phrase's predicted label.
        direction: +1/-1, the sign of its conductance for the raw score F.
        pattern_share: the share of its |token attribution| on the pattern.
        tokens: ``(L,)`` its Eq. 2 attribution per phrase token (raw F).
    """

    index: int
    conductance: float
    direction: int
    pattern_share: float
    tokens: np.ndarray


@dataclasses.dataclass
class NegationExample:
    """A corpus sentence with high conductance for a selected filter.

    Attributes:
        tokens: the sentence.
        filter: the selected filter it scores highest on.
        conductance: that filter's conductance times its direction.
        window: ``(start, end)`` token span picked by the filter's max pool.
        attribution: ``(len(tokens),)`` Eq. 2 token attribution (raw F).
    """

    tokens: List[str]
    filter: int
    conductance: float
    window: Tuple[int, int]
    attribution: np.ndarray


@dataclasses.dataclass
class NegationResult:
    """Filters for a negation pattern and the corpus sentences they fire on."""

    phrase: List[str]
    pattern: List[str]
    score: float
    direction: int
    filters: List[NegationFilter]
    examples: List[NegationExample]

    def summary(self) -> dict:
        return {
            "phrase": " ".join(self.phrase),
            "score": self.score,
            "direction": self.direction,
            "filters": [{"index": f.index, "conductance": f.conductance,
                         "pattern_share": f.pattern_share} for f in self.filters],
            "examples": [{"sentence": _marked(e, "**", "**"), "filter": e.filter,
                          "conductance": e.conductance} for e in self.examples],
        }

    def terminal(self, color: bool = True) -> str:
        """One line per sentence, the window in bold (ANSI) or [brackets]."""
        on, off = ("\033[1;4m", "\033[0m") if color else ("[", "]")
        head = (f'"{" ".join(self.phrase)}" (F = {self.score:+.2f}), filters conducting '
                f'{"towards positive" if self.direction > 0 else "towards negative"}: '
                + (", ".join(f"{f.index} (cond. {f.conductance:+.2f}, {100 * f.pattern_share:.0f}% "
                            f"on '{' '.join(self.pattern)}')" for f in self.filters) or "none"))
        lines = [head] + [f"  [{e.filter:3d} {e.conductance:+.2f}] {_marked(e, on, off)}"
                          for e in self.examples]
        return "\n".join(lines)

    def html(self) -> str:
        """A standalone HTML fragment: tokens shaded by attribution (blue
        raises F, red lowers it), the max-pool window bold and underlined."""
        rows = []
        for e in self.examples:
            scale = float(np.abs(e.attribution).max()) or 1.0
            spans = []
            for t, token in enumerate(e.tokens):
                a = e.attribution[t] / scale
                rgb = "31,119,180" if a >= 0 else "214,39,40"
                style = f"background: rgba({rgb},{abs(a):.2f})"
                text = html.escape(token)
                if e.window[0] <= t < e.window[1]:
                    text = f"<b><u>{text}</u></b>"
                spans.append(f'<span style="{style}">{text}</span>')
            rows.append(f"<li><code>filter {e.filter}, {e.conductance:+.2f}</code> "
                        + " ".join(spans) + "</li>")
        way = "positive" if self.direction > 0 else "negative"
        title = html.escape(f'Filters conducting towards {way} for "{" ".join(self.phrase)}" '
                            f'(F = {self.score:+.2f})')
        filters = ", ".join(f"{f.index} ({100 * f.pattern_share:.0f}% on pattern)"
                            for f in self.filters) or "none passed the criteria"
        return (f"<h3>{title}</h3><p>selected filters: {filters}</p><ol>"
                + "\n".join(rows) + "</ol>")

    def plot(self, path=None):
        """Token attribution of the selected filters on the probe phrase."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 2.8))
        width = 0.8 / max(len(self.filters), 1)
        for j, f in enumerate(self.filters):
            ax.bar(np.arange(len(self.phrase)) + j * width, f.tokens, width, label=f"filter {f.index}")
        ax.set_xticks(np.arange(len(self.phrase)) + 0.4 - width / 2)
        ax.set_xticklabels(self.phrase)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("Eq. 2 attribution (F)")
        ax.legend(fontsize=7)
        ax.set_title(f'"{" ".join(self.phrase)}"', fontsize=10)
        return finish(fig, path, dpi=110)


def _marked(example: NegationExample, on: str, off: str) -> str:
    s, e = example.window
    t = example.tokens
    return " ".join(t[:s] + [on + " ".join(t[s:e]) + off] + t[e:])


def _find(tokens: Sequence[str], pattern: Sequence[str]) -> List[int]:
    for s in range(len(tokens) - len(pattern) + 1):
        if list(tokens[s:s + len(pattern)]) == list(pattern):
            return list(range(s, s + len(pattern)))
    raise ValueError(f"`pattern` {list(pattern)} does not occur in the phrase {list(tokens)}.")


def _windows(model, ids: np.ndarray, lengths, filters, window_of: WindowFn):
    """The token span each (sentence, filter)'s max pool picked."""
    spans, subs = [], {}
    for row, (n, f) in enumerate(zip(lengths, filters)):
        conv, width, channel = window_of(int(f))
        if conv not in subs:
            subs[conv] = keras.Model(model.inputs[0], model.get_layer(conv).output)
        start = int(np.asarray(subs[conv](ids[row:row + 1]))[0, :, channel].argmax())
        spans.append((min(start, n), min(start + width, n)))
    return spans


def distinct_top(scores: np.ndarray, corpus: Sequence[Sequence[str]], n: int) -> List[int]:
    """Indices of the ``n`` highest ``scores``, a sentence the corpus repeats
    counted once (its first, highest occurrence)."""
    top, seen = [], set()
    for i in np.argsort(-scores, kind="stable"):
        text = " ".join(corpus[i])
        if text not in seen:
            seen.add(text)
            top.append(int(i))
        if len(top) == n:
            break
    return top


def negation_study(
    model: keras.Model,
    encode: Callable[[Sequence[Sequence[str]]], np.ndarray],
    phrase: Sequence[str],
    pattern: Sequence[str],
    corpus: Sequence[Sequence[str]],
    corpus_conductance: np.ndarray,
    *,
    layer: str,
    start_layer: str,
    window_of: WindowFn,
    direction: Union[str, int] = "predicted",
    n_filters: int = 3,
    n_candidates: int = 20,
    min_share: float = 0.5,
    min_negator_share: float = 0.25,
    min_conductance: float = 0.01,
    n_examples: int = 8,
    n_steps: int = 64,
) -> NegationResult:
    """Negation filters for one probe phrase and their top corpus sentences.

    Args:
        model: a one-logit text model (tokens -> F).
        encode: token lists -> ``(N, L)`` int ids, as the model expects.
        phrase: the probe, e.g. ``"this is not good".split()``.
        pattern: the negation inside it, e.g. ``["not", "good"]``.
        corpus: tokenized sentences.
        corpus_conductance: ``(N, C)`` per-filter conductance of F on them.
        layer: the pooled filter layer; start_layer: the embedding layer.
        window_of: filter index -> (conv layer, width, channel), to find the
            window its 1-max pooling picked.
        direction: which way the filters must conduct: ``"predicted"`` (the
            paper: towards the predicted label of the phrase), or +1 / -1
            (towards positive / negative, e.g. the phrase's true reading).
        n_filters: filters to keep; n_candidates: how many of the phrase's
            top filters (by conductance in ``direction``) to consider;
            min_share: the share of a filter's |token attribution| that must
            fall on the pattern; min_negator_share: the share that must fall
            on the pattern's first token (the negator), so that a filter that
            only reads "good" in "not good" does not count;
            min_conductance: the least conductance (in ``direction``) a
            filter needs on the phrase.
        n_examples: corpus sentences to list.
        n_steps: integration steps for the phrase and the examples.

    Returns:
        ``NegationResult``.
    """
    ids = encode([list(phrase)])
    where = _find(phrase, pattern)
    ms = kcf.measures(model, ids, layer, start_layer=start_layer, target=0, n_steps=n_steps,
                      verbose=0)
    score = float(ms.conductance.output_at_input[0])
    raw = ms.conductance.per_filter(layer)[0]
    if direction == "predicted":
        direction = 1 if score > 0 else -1
    elif direction not in (1, -1):
        raise ValueError(f"`direction` must be 'predicted', 1 or -1. Received: {direction!r}.")
    oriented = raw * direction
    maps = neuron_conductance(model, ids, layer, None, start_layer=start_layer, target=0,
                              n_steps=n_steps)[0, :, : len(phrase)]
    total = np.maximum(np.abs(maps).sum(axis=1), 1e-12)
    share = np.abs(maps[:, where]).sum(axis=1) / total
    negator = np.abs(maps[:, where[0]]) / total
    candidates = [f for f in np.argsort(-oriented)[:n_candidates]
                  if oriented[f] >= min_conductance]
    chosen = [f for f in candidates
              if share[f] >= min_share and negator[f] >= min_negator_share][:n_filters]
    filters = [NegationFilter(int(f), float(oriented[f]), int(np.sign(raw[f]) or 1),
                              float(share[f]), maps[f]) for f in chosen]
    if not filters:
        return NegationResult(list(phrase), list(pattern), score, direction, [], [])
    directed = np.stack([f.direction * corpus_conductance[:, f.index] for f in filters], axis=1)
    best = directed.argmax(axis=1)
    top = distinct_top(directed.max(axis=1), corpus, n_examples)
    sentences = [list(corpus[i]) for i in top]
    picked = [filters[best[i]].index for i in top]
    top_ids = encode(sentences)
    lengths = [min(len(s), top_ids.shape[1]) for s in sentences]
    spans = _windows(model, top_ids, lengths, picked, window_of)
    examples = []
    for row, (i, f) in enumerate(zip(top, picked)):
        tokens = neuron_conductance(model, top_ids[row:row + 1], layer, [f], start_layer=start_layer,
                                    target=0, n_steps=n_steps)[0, 0, : lengths[row]]
        examples.append(NegationExample(sentences[row][: lengths[row]], int(f),
                                        float(directed[i].max()), spans[row], tokens))
    return NegationResult(list(phrase), list(pattern), score, direction, filters, examples)
