"""What keeps a pass's text scans from holding the GIL every other workspace needs.

A bucket's generated code (rules/codegen.py) is straight-line, and a `contains` scans its text
in C: 1,000 rules of `description contains` over a 1 MB description held the GIL ~0.8 s a pass,
in a thread or not (tests/server/test_tenant_isolation.py). Two remedies, each free where it is
not needed: a long text is scanned by the regex module without the GIL, and the code calls
`give_way` between scans, where CPython lets another thread run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import regex

from .conditions import Leaf, Node

__all__ = ["LONG_TEXT", "YIELD_SCANS", "give_way", "give_way_after", "long_text", "text_scans"]


def give_way() -> None:
    """Called between a bucket's text scans (see YIELD_SCANS): a Python function's entry is
    where CPython lets another thread take the GIL."""


# A text longer than this is scanned without the GIL: its TEXT slot is a `_LongText`, whose
# `in` is the regex module's search of the literal with concurrent=True (the same answer as
# str's, ~1.3x its time), so a pass scanning a 1 MB description 1,000 times in a thread leaves
# the event loop its GIL (a 1 ms sleep beside it: 6.5 ms with str's scan, 1.1 ms with this).
LONG_TEXT = 16 * 1024


class _LongText(str):
    """A long case-folded text whose substring tests release the GIL (see LONG_TEXT)."""

    __slots__ = ()

    def __contains__(self, needle: object) -> bool:
        if type(needle) is not str:
            return str.__contains__(self, needle)  # type: ignore[operator]
        return _literal(needle).search(self, concurrent=True) is not None


@functools.lru_cache(maxsize=4096)
def _literal(needle: str) -> Any:
    return regex.compile(regex.escape(needle))


def long_text(text: str) -> str:
    """`text` as a TEXT slot holds it (a _LongText past LONG_TEXT characters)."""
    return _LongText(text) if len(text) > LONG_TEXT else text


# The generated code gives way (a call to give_way) after every YIELD_SCANS text scans, at ~50
# ns a call: a text up to LONG_TEXT is scanned with the GIL held, so between two chances for
# another thread there are at most ~16 scans of 16 KiB; a bucket with fewer scans gets none.
YIELD_SCANS = 16
_SCANS = frozenset({"contains", "not_contains"})


def give_way_after(positions: Iterable[int], weights: Sequence[int]) -> set[int]:
    """Of rules at `positions` (in the code's order), those after which the code gives way: where
    their text scans (`weights`, by position) have reached YIELD_SCANS since the last."""
    after: set[int] = set()
    scanned = 0
    for p in positions:
        scanned += weights[p]
        if scanned >= YIELD_SCANS:
            after.add(p)
            scanned = 0
    return after


def text_scans(node: Node | None) -> int:
    """How many inline text scans (`contains`, `not_contains`) a rule's code makes at most."""
    if node is None:
        return 0
    if isinstance(node, Leaf):
        return int(node.op in _SCANS and isinstance(node.value, str) and not node.case_sensitive)
    return sum(text_scans(c) for c in node.children)
