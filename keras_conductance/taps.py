"""Units inside layers: record a sublayer's output (or input) while the model runs.

A transformer block is one node of the model graph; its FFN neurons (the
output of ``transformer_layer_3/feedforward_intermediate_dense``) and its
attention heads (the input of ``.../self_attention_layer/attention_output``)
are not. Rather than rebuild the model, the engine *taps* them: while the
compiled step is traced, the addressed sublayer's ``call`` is wrapped so that
the tensor it returns (or receives) is recorded, and dF/d(that tensor) comes
from the same tape as every graph layer. The wrapper exists only during the
trace; ``recording`` puts the layer back as it was, also after an exception,
and later calls of the compiled step reuse the traced graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import List

import tensorflow as tf

__all__ = ["Tap", "TapRecorder", "INPUT_SUFFIX", "OUTPUT_SUFFIX", "trace_once"]

# "path/to/sublayer:input" taps what the sublayer receives (its first input);
# ":output" taps what it returns (the default), also for a graph layer.
INPUT_SUFFIX = ":input"
OUTPUT_SUFFIX = ":output"


@dataclasses.dataclass(frozen=True)
class Tap:
    """One recorded tensor.

    Attributes:
        name: the unit's name as the user wrote it (``"a/b/c"`` or
            ``"a/b/c:input"``).
        layer: the Keras layer whose call is wrapped.
        where: ``"output"`` or ``"input"``.
    """

    name: str
    layer: object
    where: str = "output"


class _Recording:
    """Tensors recorded during one forward pass, one list per tap."""

    def __init__(self, taps: List[Tap]):
        self.taps = taps
        self.seen = [[] for _ in taps]

    def values(self) -> list:
        """One tensor per tap; raises when a tap fired not exactly once."""
        for tap, seen in zip(self.taps, self.seen):
            if len(seen) != 1:
                raise ValueError(_count_message(tap, len(seen)))
        return [seen[0] for seen in self.seen]


def trace_once(call, specs):
    """What ``call`` learns from symbolic inputs: traces it once, computing
    nothing, and returns the first of the ``(found, output)`` it returns.

    The one way the package reads a tapped tensor's shape (or checks that a
    tapped sublayer runs) before any real step: ``call`` runs its model under
    a ``TapRecorder.recording()`` and returns what was recorded.

    Args:
        call: ``call(*tensors) -> (found, output)``.
        specs: one ``tf.TensorSpec`` per argument of ``call``.
    """
    box = []

    def traced(*args):
        found, out = call(*args)
        box.append(found)
        return out

    tf.function(traced).get_concrete_function(*specs)
    return box[0]


def _count_message(tap: Tap, count: int) -> str:
    if count == 0:
        return (
            f"Sublayer {tap.name!r} is never called in the forward pass from the "
            "path's start to the explained output, so it carries no attribution. "
            "Check the path (`kc.list_units(model)` lists what runs), the "
            "`start_layer` and the `output`."
        )
    return (
        f"Sublayer {tap.name!r} is called {count} times in one forward pass (its "
        "weights are shared between several places), so its units are not one "
        "set of neurons. Explain the layers that call it instead, or a graph "
        "layer after each call."
    )


class TapRecorder:
    """Wraps the tapped sublayers' ``call`` for the length of a ``with``."""

    def __init__(self, taps: List[Tap], strict: bool = True):
        self.taps = list(taps)
        # strict=False records a sublayer's tuple output as it is (an LSTM
        # cell's (h, state)), for listing units rather than explaining them.
        self.strict = strict

    def __len__(self) -> int:
        return len(self.taps)

    @contextlib.contextmanager
    def recording(self, replace=None):
        """Yields a recording whose ``values()`` are the tapped tensors.

        Args:
            replace: optional list, one tensor per tap: the value the tapped
                tensor takes instead of its own (ablation inside a layer).
        """
        record = _Recording(self.taps)
        patched = []
        try:
            for i, tap in enumerate(self.taps):
                layer = tap.layer
                had = "call" in vars(layer)
                patched.append((layer, had, vars(layer).get("call")))
                value = None if replace is None else replace[i]
                object.__setattr__(layer, "call",
                                   _wrap(layer.call, record.seen[i], tap, value, self.strict))
            yield record
        finally:
            for layer, had, previous in reversed(patched):
                if had:
                    object.__setattr__(layer, "call", previous)
                else:
                    object.__delattr__(layer, "call")


def _several(tap: Tap, what: str, value) -> ValueError:
    if what == "output":
        advice = ("Tap the output of a sublayer that produces just one of them, or the "
                  "input (':input') of the sublayer that consumes the one you mean.")
    else:
        advice = "Tap the output of one of the layers that produce them instead."
    return ValueError(
        f"Cannot tap {tap.name!r}: the {what} of that sublayer is a "
        f"{type(value).__name__} of {len(value)} values, not one set of units. {advice}"
    )


def _wrap(call, seen: list, tap: Tap, value=None, strict: bool = True):
    def tapped(*args, **kwargs):
        if tap.where == "input":
            first = args[0] if args else next(iter(kwargs.values()))
            if isinstance(first, (list, tuple, dict)):
                raise _several(tap, "first input", first)
            if args:
                first = tf.identity(args[0]) if value is None else value
                args = (first,) + tuple(args[1:])
            else:  # the first input passed by keyword
                key = next(iter(kwargs))
                first = kwargs[key] = tf.identity(kwargs[key]) if value is None else value
            # A fresh identity: dF/d(input) then flows only through this call.
            seen.append(first)
            return call(*args, **kwargs)
        out = call(*args, **kwargs)
        if isinstance(out, (list, tuple, dict)):
            if not strict:
                seen.append(out)
                return out
            # e.g. MultiHeadAttention(return_attention_scores=True), an RNN
            # with return_state=True.
            raise _several(tap, "output", out)
        if value is not None:
            out = tf.cast(value, out.dtype)
        seen.append(out)
        return out

    return tapped
