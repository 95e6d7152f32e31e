"""Targets for language models, as data: which token's score is explained.

A causal LM outputs logits ``(B, T, V)``. ``kc.next_token(token)`` explains
the logit (or log-probability) of ``token`` as the next token at a position,
``kc.logit_difference(token, other)`` the difference of two such logits (the
standard score of circuit work: " Paris" vs " London"), and
``kc.continuation(tokens)`` the summed log-probability of a continuation fed
to the model (teacher forcing). Each becomes an int32 array ``(B, J, 2)`` of
``(position, token)`` pairs that travels to the compiled step as a tensor, so
new token ids, positions or examples never retrace it; only the kind of score
(and J) is part of the compiled function.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from keras_conductance.arguments import check, message

__all__ = ["TokenTarget", "continuation", "logit_difference", "next_token"]

Tokens = Union[int, Sequence[int], np.ndarray]


class _Scorer:
    """The compiled part of a token target: one per kind of score.

    Equal scorers (same ``log_prob`` and ``signs``) share one trace.
    """

    def __init__(self, log_prob: bool, signs: tuple):
        self.log_prob, self.signs = bool(log_prob), tuple(float(s) for s in signs)

    @property
    def trace_key(self) -> tuple:
        return ("token", self.log_prob, self.signs)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Scorer) and other.trace_key == self.trace_key

    def __hash__(self) -> int:
        return hash(self.trace_key)

    def __call__(self, outputs: tf.Tensor, pairs: tf.Tensor) -> tf.Tensor:
        """Scores ``(N,)`` from logits ``(N, T, V)`` and pairs ``(N, J, 2)``."""
        rows = tf.gather(outputs, pairs[..., 0], batch_dims=1)  # (N, J, V)
        if self.log_prob:
            rows = rows - tf.reduce_logsumexp(rows, axis=-1, keepdims=True)
        picked = tf.gather(rows, pairs[..., 1:], batch_dims=2)[..., 0]  # (N, J)
        return tf.reduce_sum(picked * tf.constant(self.signs, picked.dtype), axis=-1)


def _check_ids(name: str, ids, allow_empty: bool = True, negative: bool = False) -> None:
    """Token ids (or positions): None where allowed, an int or ints."""
    if ids is None and name in ("position", "start"):
        return
    arr = np.asarray(ids)
    what = "an int or a sequence of ints" + (" (negative counts from the end)" if negative
                                             else " (token ids, >= 0)")
    if arr.size == 0 and not allow_empty:
        raise ValueError(message(name, what, ids))
    if arr.dtype.kind not in "iu" or arr.ndim > 2:
        raise TypeError(message(name, what, ids))
    if not negative and np.any(arr < 0):
        raise ValueError(message(name, what, ids))


class TokenTarget:
    """A language-model score: signed sum of (log-)probabilities or logits of
    tokens at positions. Build it with ``next_token``, ``logit_difference`` or
    ``continuation``; pass it as ``target=``.

    Attributes:
        kind: ``"next_token"``, ``"logit_difference"`` or ``"continuation"``.
        log_prob: log-softmax over the vocabulary before picking the token.
    """

    def __init__(self, kind: str, tokens: list, position, log_prob: bool,
                 signs: tuple, teacher_forced: bool = False):
        names = ("tokens",) if teacher_forced else ("token", "other")
        for name, ids in zip(names, tokens):
            _check_ids(name, ids, allow_empty=False)
        _check_ids("start" if teacher_forced else "position", position, negative=True)
        self.kind = kind
        self.tokens = tokens  # per term: int or (B,) ints
        self.position = position
        self.log_prob = log_prob
        self.teacher_forced = teacher_forced
        self.scorer = _Scorer(log_prob, signs)

    def __repr__(self) -> str:
        return (f"TokenTarget({self.kind!r}, tokens={self.tokens!r}, "
                f"position={self.position!r}, log_prob={self.log_prob})")

    def encode(self, logits_shape: tuple, token_ids: Optional[np.ndarray],
               padding_mask: Optional[np.ndarray], n: int) -> np.ndarray:
        """The int32 ``(B, J, 2)`` (position, token) pairs for ``n`` examples.

        Args:
            logits_shape: the explained output's per-example shape ``(T, V)``.
            token_ids: ``(B, T)`` input ids (checked for a continuation).
            padding_mask: ``(B, T)`` 1 for real tokens, or None (all real).

        Raises:
            ValueError: an output that is not ``(B, T, V)``, a token outside
                the vocabulary, a position outside the sequence.
        """
        if len(logits_shape) != 2:
            raise ValueError(
                f"`target={self.kind}(...)` explains a language model's logits of shape "
                f"(batch, sequence, vocabulary); the explained output has shape "
                f"(batch, {', '.join(map(str, logits_shape))}). Pass `output=` to choose "
                "the logits of a model with several outputs.")
        length, vocab = logits_shape
        length = length if length is not None else (
            token_ids.shape[1] if token_ids is not None else None)
        last = _last_real(padding_mask, n, length)
        if self.teacher_forced:
            return self._encode_continuation(token_ids, last, length, vocab, n)
        position = last if self.position is None else self._positions(self.position, n, length)
        pairs = [np.stack([position, _per_example(t, n, "token", vocab)], -1)
                 for t in self.tokens]
        return np.stack(pairs, 1).astype(np.int32)

    def _encode_continuation(self, token_ids, last, length, vocab, n) -> np.ndarray:
        tokens = np.asarray(self.tokens[0])
        tokens = np.broadcast_to(tokens, (n, tokens.shape[-1])) if tokens.ndim == 1 else tokens
        if tokens.ndim != 2 or tokens.shape[0] != n:
            raise ValueError(
                f"`continuation` tokens must have shape (k,) or ({n}, k). Received shape "
                f"{np.shape(self.tokens[0])}.")
        _check_tokens(tokens, vocab)
        k = tokens.shape[1]
        # Token j of the continuation sits at position start + j and is
        # predicted by the logits at start + j - 1.
        start = last - k + 1 if self.position is None else self._positions(self.position, n, length)
        if np.any(start < 1) or np.any(start + k - 1 >= length):
            raise ValueError(
                f"A continuation of {k} tokens starting at position(s) "
                f"{sorted(set(start.tolist()))[:5]} does not fit a sequence of {length} "
                "with at least one token before it.")
        where = start[:, None] + np.arange(k)
        if token_ids is not None:
            fed = np.take_along_axis(np.asarray(token_ids), where, 1)
            if not np.array_equal(fed, tokens):
                raise ValueError(
                    "`continuation` scores tokens the model is fed (teacher forcing): the "
                    f"inputs must hold them at positions {where[0].tolist()} (the last real "
                    "ones unless `start=` is given). They hold "
                    f"{fed[0].tolist()} there, not {tokens[0].tolist()}.")
        return np.stack([where - 1, tokens], -1).astype(np.int32)

    @staticmethod
    def _positions(position, n: int, length: int) -> np.ndarray:
        pos = np.asarray(position)
        if pos.dtype.kind not in "iu":
            raise TypeError(f"`position` must be an int or (B,) ints. Received: {position!r}.")
        pos = np.broadcast_to(pos, (n,)).astype(np.int64)
        bad = (pos < -length) | (pos >= length)
        if bad.any():
            raise ValueError(
                f"`position` {sorted(set(pos[bad].tolist()))[:5]} is past the sequence: "
                f"the inputs hold {length} positions (valid: 0..{length - 1}, or negative "
                "from the end).")
        return pos % length


def _last_real(padding_mask, n: int, length: int) -> np.ndarray:
    """The last position whose mask is 1, per example (left or right padding)."""
    if padding_mask is None:
        return np.full(n, length - 1)
    mask = np.asarray(padding_mask).astype(bool)
    if not mask.any(axis=1).all():
        raise ValueError("An example's `padding_mask` is all zeros: it has no real token.")
    return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)


def _check_tokens(tokens: np.ndarray, vocab: int) -> None:
    if tokens.dtype.kind not in "iu":
        raise TypeError(f"Token ids must be ints. Received dtype {tokens.dtype}.")
    bad = (tokens < 0) | (tokens >= vocab)
    if bad.any():
        raise ValueError(
            f"Token id(s) {sorted(set(tokens[bad].tolist()))[:5]} are outside the "
            f"vocabulary: the model has {vocab} logits (valid ids 0..{vocab - 1}).")


def _per_example(token, n: int, what: str, vocab: int) -> np.ndarray:
    arr = np.asarray(token)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(
            f"A per-example `{what}` must be an int or have shape ({n},) for the {n} "
            f"inputs. Received shape {arr.shape}.")
    arr = np.broadcast_to(arr, (n,))
    _check_tokens(arr, vocab)
    return arr


def next_token(token: Tokens, position: Union[None, int, Sequence[int]] = None, *,
               log_prob: bool = False) -> TokenTarget:
    """The logit (or log-probability) of ``token`` as the next token.

    Args:
        token: a token id, or ``(B,)`` ids (one per example).
        position: the position whose prediction is explained: an int
            (negative counts from the end) or ``(B,)`` ints. Default: each
            example's last real position (its ``padding_mask``, left or
            right padding).
        log_prob: explain log p(token) instead of the logit.

    Example:
        >>> kc.conductance(causal_lm, batch, "*:ffn_neurons",
        ...                start_layer="token_embedding", target=kc.next_token(464))
    """
    return TokenTarget("next_token", [token], position, check("log_prob", log_prob), (1.0,))


def logit_difference(token: Tokens, other: Tokens,
                     position: Union[None, int, Sequence[int]] = None) -> TokenTarget:
    """logit(``token``) - logit(``other``) at one position, e.g. " are" - " is".

    Args:
        token, other: token ids, or ``(B,)`` ids each.
        position: as in ``next_token``.
    """
    return TokenTarget("logit_difference", [token, other], position, False, (1.0, -1.0))


def continuation(tokens: Tokens, start: Union[None, int, Sequence[int]] = None) -> TokenTarget:
    """The summed log-probability of a continuation the model is fed.

    Teacher forcing: the inputs hold the prompt followed by ``tokens``;
    token j, at position ``start + j``, is scored by the prediction at
    ``start + j - 1``.

    Args:
        tokens: ``(k,)`` ids, or ``(B, k)`` for one continuation per example.
        start: the position of the continuation's first token (int or
            ``(B,)``). Default: the last k real positions.
    """
    k = np.shape(tokens)[-1] if np.ndim(tokens) else 1
    return TokenTarget("continuation", [np.atleast_1d(np.asarray(tokens))], start, True,
                       (1.0,) * k, teacher_forced=True)
