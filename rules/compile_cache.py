"""`CompileCache`: one rule set's compiled rules kept by what each rule says, so that compiling the
set again after one rule changed compiles that rule alone.

`compile_rules(rules, calendars, cache=)` asks the cache for each rule: a rule whose definition
(its JSON without the service's bookkeeping: position, revision, timestamps) and the calendars
it names are those of a rule compiled before is not compiled again; its compiled form is reused
at its new position (a copy of the CompiledRule, sharing the conditions, predicates and actions,
which compiling never changes afterwards: the per-set state a RuleSet sets on them, a regex's
sharing of answers, is set exactly for each set, rules/ruleset.py `_share_regexes`). The RuleSet
itself (trigger buckets, value index, generated code, dependencies) is built afresh from them:
it depends on every rule. Only CPython's compile of each bucket's generated source, most of that
build, is kept too (`code`): by the source, which names no tenant value, so an edit that leaves
the conditions' shapes and the rules' order as they were (a rename, a value) compiles none.

The cache belongs to one rule set (the service: one workspace, server/rulecache.py) and is
bounded by it: `sweep()` drops what the compiles since the last sweep did not use, so it keeps
at most the rules and bucket codes of the last set (the workspace's own rule limits), and another
set's can never evict them. Not thread-safe: one compile at a time per cache (the service's RuleCache runs
one per workspace at a time).
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from types import CodeType
from typing import Any

import orjson

from .calendar import Calendar
from .codegen import compile_bucket
from .compile import _IGNORED_KEYS, CompiledRule, compile_rule
from .errors import RuleError

_CALENDAR_KEY = re.compile(rb'"calendar":"((?:[^"\\]|\\.)*)"')
_Key = tuple[bytes, tuple[tuple[str, Calendar | None], ...]]


class CompileCache:
    """Compiled rules by (definition digest, the named calendars it names); see the module doc.
    `compiles` counts the rules compiled (not found), what the tests count."""

    def __init__(self, compiler: Callable[[str], CodeType] = compile_bucket) -> None:
        # a bucket's source -> its code: CPython's compile here, or elsewhere (the service
        # compiles a big one in a process of its own, server/rulecache.py)
        self.compiler = compiler
        self._kept: dict[_Key, CompiledRule] = {}
        self._refused: dict[_Key, dict[int, RuleError]] = {}   # by position: the errors name it
        self._used: set[_Key] = set()
        self._round: set[_Key] = set()
        self._codes: dict[bytes, CodeType] = {}   # a bucket's generated source's digest -> its code
        self._codes_used: set[bytes] = set()
        self.compiles = 0
        self.code_compiles = 0   # buckets' generated sources compiled (not found)

    def begin(self) -> None:
        """A rule set's compile starts (compile_rules calls it)."""
        self._round = set()

    def __len__(self) -> int:
        return len(self._kept) + len(self._refused)

    def compile(self, raw: Any, position: int, calendars: dict[str, Calendar]) -> CompiledRule:
        """compile_rule(raw, position, calendars), or the rule compiled before from the same
        definition and calendars, at `position`. Raises the RuleError compile_rule raises."""
        key = _key(raw, calendars)
        if key is None or key in self._round:
            # not JSON (never a stored rule), or a second rule saying the same in this set (no
            # id: never a stored one): compiled, not kept, so no two rules of a set share a node
            self.compiles += 1
            return compile_rule(raw, position, calendars)
        self._used.add(key)
        self._round.add(key)
        hit = self._kept.get(key)
        if hit is not None:
            if hit.position == position and hit.source is raw:
                return hit
            return dataclasses.replace(hit, position=position, source=raw)
        refused = self._refused.get(key)
        if refused is not None and position in refused:
            raise refused[position]
        self.compiles += 1
        try:
            rule = compile_rule(raw, position, calendars)
        except RuleError as exc:
            # kept too: a stored rule refused (its calendar's policy deleted) is asked again by
            # every compile of its set, at its position and alone (server/rulecache.py)
            self._refused.setdefault(key, {})[position] = exc.with_traceback(None)
            raise
        self._kept[key] = rule
        return rule

    def code(self, source: str) -> CodeType:
        """A trigger bucket's generated source compiled (rules/codegen.py `generate`), or the code
        compiled before from the same source. The source holds no tenant value (constants and
        rule text are data beside it), only the shapes of the rules' conditions and numbers:
        renaming a rule, or changing a condition's value, leaves every bucket's source as it was.
        Kept by a digest, not the text (4 MB for 1,000 rules of 56 conditions); a code object
        is immutable, and the live RuleSet's functions hold it anyway."""
        key = hashlib.blake2b(source.encode(), digest_size=20).digest()
        self._codes_used.add(key)
        code = self._codes.get(key)
        if code is None:
            self.code_compiles += 1
            code = self._codes[key] = self.compiler(source)
        return code

    def sweep(self) -> None:
        """Drop the rules and bucket codes the compiles since the last sweep did not ask for."""
        self._kept = {k: v for k, v in self._kept.items() if k in self._used}
        self._refused = {k: v for k, v in self._refused.items() if k in self._used}
        self._codes = {k: v for k, v in self._codes.items() if k in self._codes_used}
        self._used, self._codes_used = set(), set()


def _key(raw: Any, calendars: dict[str, Calendar]) -> _Key | None:
    if type(raw) is not dict:
        return None
    try:
        text = orjson.dumps({k: v for k, v in raw.items() if k not in _IGNORED_KEYS},
                            option=orjson.OPT_SORT_KEYS)
    except TypeError:   # (a non-str key, a value JSON has not)
        return None
    # the calendars it may name (over-collecting is harmless: a name only adds to the key)
    names = sorted({orjson.loads(b'"' + m + b'"') for m in _CALENDAR_KEY.findall(text)})
    return hashlib.blake2b(text, digest_size=20).digest(), tuple((n, calendars.get(n)) for n in names)


__all__ = ["CompileCache"]
