"""Answers one process keeps per store, the least recently used going past a bound.

Why one class: the rule list (catalog.listed_rules), the rules' usage sums and answers
(store/rule_usage.py) and the stats chart (store/stats.py) each kept a weak map of stores to an
LRU of workspaces, with the same get / move to the end / trim written out four times. Stores
are held weakly: a closed store's answers go with it.
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

__all__ = ["Kept"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    """Per store, at most `most` values by key; reading or writing one makes it the newest."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._by: weakref.WeakKeyDictionary[Any, collections.OrderedDict[K, V]] = weakref.WeakKeyDictionary()

    def get(self, store: Any, key: K) -> V | None:
        kept = self._by.get(store)
        value = None if kept is None else kept.get(key)
        if value is not None:
            kept.move_to_end(key)   # type: ignore[union-attr]
        return value

    def put(self, store: Any, key: K, value: V) -> None:
        kept = self._by.setdefault(store, collections.OrderedDict())
        kept[key] = value
        kept.move_to_end(key)
        while len(kept) > self.most:
            kept.popitem(last=False)

    def drop(self, store: Any, key: K) -> None:
        kept = self._by.get(store)
        if kept is not None:
            kept.pop(key, None)

    def keys(self, store: Any) -> list[K]:
        """The keys kept for `store`, oldest first."""
        return list(self._by.get(store) or ())
