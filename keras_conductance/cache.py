"""One cache of built objects (explainers, ablators, compiled steps) per model.

Every one-call function keeps what it built for a model here, so a loop of
calls traces once. Entries live on their owner (dropping the model frees
them), at most ``CACHE_SIZE`` option sets per owner and kind, least
recently used evicted first; ``clear_cache()`` drops all of them.
"""

from __future__ import annotations

import collections
import weakref
from typing import Callable, Hashable, TypeVar

__all__ = ["CACHE_SIZE", "cached", "clear_cache", "compiled", "entries"]

CACHE_SIZE = 8
T = TypeVar("T")
# The entries live on their owner (attribute ``_kc_cache``): cached objects
# refer back to their model, and a cycle model -> entry -> model is freed with
# the model, where a weak-key dictionary would hold its values (and so the
# key) forever. This set only finds the owners for ``clear_cache()``.
_OWNERS: "weakref.WeakSet" = weakref.WeakSet()
_ATTRIBUTE = "_kc_cache"


def clear_cache() -> None:
    """Drops every cached explainer, ablator and compiled step."""
    for owner in list(_OWNERS):
        getattr(owner, _ATTRIBUTE, {}).clear()


def _entries_of(owner):
    per_owner = getattr(owner, _ATTRIBUTE, None)
    if per_owner is None:
        try:
            # Past Keras' attribute tracking: a cache is not model state.
            object.__setattr__(owner, _ATTRIBUTE, {})
            _OWNERS.add(owner)
        except (AttributeError, TypeError):  # no attributes or weak references
            return None
        per_owner = getattr(owner, _ATTRIBUTE)
    return per_owner


def cached(owner, kind: str, key: Hashable, build: Callable[[], T]) -> T:
    """The object cached for ``(owner, kind, key)``, built on first use.

    Args:
        owner: the object the entry lives with (a model, an explainer).
        kind: what is cached (e.g. ``"explainer"``), so kinds never collide.
        key: the options the object was built with.
        build: makes the object when it is not cached.
    """
    per_owner = _entries_of(owner)
    if per_owner is None:
        return build()
    entries = per_owner.setdefault(kind, collections.OrderedDict())
    value = entries.get(key)
    if value is None:
        value = build()
        entries[key] = value
        while len(entries) > CACHE_SIZE:
            entries.popitem(last=False)
    entries.move_to_end(key)
    return value


def entries(owner, kind: str) -> "collections.OrderedDict":
    """The cached objects of one kind for ``owner`` (for tests and tools)."""
    return getattr(owner, _ATTRIBUTE, {}).get(kind, collections.OrderedDict())


def compiled(python_function: Callable, *, input_signature=None, jit_compile=None,
             reduce_retracing: bool = False):
    """``tf.function`` of ``python_function`` (same arguments) for a function
    built once per explainer, ablator or dataset run and cached here.

    TensorFlow's "N out of the last M calls triggered tf.function retracing"
    warning counts traces of the same Python code across *all* functions
    made from it, so it fires when a user explains a few models in a loop
    although each compiled function is traced once (tests/test_compile.py
    checks that). Only these functions are exempted; a user's own retracing
    still warns.
    """
    import tensorflow as tf

    fn = tf.function(python_function, input_signature=input_signature, jit_compile=jit_compile,
                     reduce_retracing=reduce_retracing)
    if hasattr(fn, "_omit_frequent_tracing_warning"):  # private since TF 2.x
        fn._omit_frequent_tracing_warning = True
    return fn
