"""One cache of built objects (explainers, ablators, compiled steps) per model.

Every one-call function keeps what it built for a model here, so a loop of
calls traces once. Entries are weakly keyed by the owner (dropping the model
frees them), at most ``CACHE_SIZE`` option sets per owner and kind, least
recently used evicted first; ``clear_cache()`` drops all of them.
"""

from __future__ import annotations

import collections
import weakref
from typing import Callable, Hashable, TypeVar

__all__ = ["CACHE_SIZE", "cached", "clear_cache", "entries"]

CACHE_SIZE = 8
T = TypeVar("T")
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def clear_cache() -> None:
    """Drops every cached explainer, ablator and compiled step."""
    _CACHE.clear()


def cached(owner, kind: str, key: Hashable, build: Callable[[], T]) -> T:
    """The object cached for ``(owner, kind, key)``, built on first use.

    Args:
        owner: the object the entry lives with (a model, an explainer).
        kind: what is cached (e.g. ``"explainer"``), so kinds never collide.
        key: the options the object was built with.
        build: makes the object when it is not cached.
    """
    try:
        per_owner = _CACHE.setdefault(owner, {})
    except TypeError:  # not weak-referenceable: no caching
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
    try:
        return _CACHE.get(owner, {}).get(kind, collections.OrderedDict())
    except TypeError:
        return collections.OrderedDict()
