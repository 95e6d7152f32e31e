"""Does a sentiment network read negation? Held-out phrases that contain one.

The negation study (``negation_study``) looks for filters that carry "not";
this check asks the prior question directly: on the labelled phrases of
SST's *test* trees, how often is the sign of the score right when the phrase
contains a negator, compared with phrases that do not? Short phrases ("not",
"is n't", "not much") also occur in the training trees; pass the training
phrases as ``exclude`` so that only phrases no model was trained on count.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Collection, List, Sequence

import numpy as np

from conductance_studies.datasets import Sentences

__all__ = ["NEGATORS", "NegatedPhrases", "negated_phrases"]

# SST's trees split "don't" into "do" "n't"; "no"/"never" are left out so the
# check is about the one construction the paper studies.
NEGATORS = ("not", "n't")


@dataclasses.dataclass
class NegatedPhrases:
    """Accuracy on held-out phrases with and without a negator.

    Attributes:
        negated: accuracy and count on phrases containing a negator.
        short_negated: the same on those with at most ``short`` tokens,
            where the negation is most of the phrase ("not good").
        negated_by_label: ``{"negative": ..., "positive": ...}`` accuracy on
            the negated phrases of each label: a network that reads "not"
            as one more negative word gets the negative ones right and the
            positive ones ("not bad") wrong.
        plain: accuracy and count on phrases without a negator.
        short: the token limit of ``short_negated``.
        excluded: how many phrases were left out because they occur in
            ``exclude`` (e.g. the training phrases).
        examples: the first short negated phrases (shortest first, then
            alphabetical), with label and score, for side-by-side tables.
    """

    negated: dict
    short_negated: dict
    negated_by_label: dict
    plain: dict
    short: int
    excluded: int
    examples: List[dict]

    def summary(self) -> dict:
        return dataclasses.asdict(self)


def _accuracy(correct: np.ndarray) -> dict:
    return {"accuracy": float(correct.mean()) if correct.size else float("nan"),
            "count": int(correct.size)}


def negated_phrases(model, encode: Callable[[Sequence[Sequence[str]]], np.ndarray],
                    phrases: Sentences, *, exclude: Collection[str] = (), short: int = 5,
                    n_examples: int = 36, negators: Sequence[str] = NEGATORS,
                    batch_size: int = 512) -> NegatedPhrases:
    """Scores every phrase once and splits the accuracy by negation.

    Args:
        model: tokens -> one logit ``(B, 1)`` (positive when > 0).
        encode: token lists -> the model's ``(B, L)`` ids.
        phrases: labelled held-out phrases (e.g. ``load_sst_phrases("test")``).
        exclude: phrase texts (tokens joined by spaces) to leave out, e.g.
            every training phrase.
        short: token limit of the short negated phrases.
        n_examples: how many short negated phrases to keep as examples.
        negators: tokens that make a phrase negated.
        batch_size: prediction batch size.
    """
    unseen = [i for i in range(len(phrases)) if phrases.text(i) not in exclude]
    excluded = len(phrases) - len(unseen)
    if not unseen:
        raise ValueError(f"`phrases` holds no phrase outside `exclude` ({len(phrases)} given, "
                         f"{excluded} excluded): pass labelled phrases, e.g. "
                         "load_sst_phrases('test').")
    phrases = phrases.subset(unseen)
    logits = np.asarray(model.predict(encode(phrases.tokens), batch_size=batch_size,
                                      verbose=0))[:, 0]
    correct = (logits > 0) == (phrases.labels == 1)
    negated = np.array([any(t in negators for t in tokens) for tokens in phrases.tokens])
    lengths = np.array([len(tokens) for tokens in phrases.tokens])
    is_short = negated & (lengths <= short)
    order = sorted(np.flatnonzero(is_short), key=lambda i: (lengths[i], phrases.text(i)))
    examples = [{"phrase": phrases.text(i), "label": int(phrases.labels[i]),
                 "score": float(logits[i])} for i in order[:n_examples]]
    by_label = {name: _accuracy(correct[negated & (phrases.labels == value)])
                for name, value in (("negative", 0), ("positive", 1))}
    return NegatedPhrases(_accuracy(correct[negated]), _accuracy(correct[is_short]), by_label,
                          _accuracy(correct[~negated]), short, excluded, examples)
