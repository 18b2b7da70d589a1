"""A packed run record read back: the entries `pack` (rules/packed.py) stored, expanded with each
rule's plan at its revision (rules/revision_plan.py `rule_plan`), byte for byte the entries the
pass would have built (tests/rules/test_property.py)."""
from __future__ import annotations

from bisect import bisect_right
from typing import Any

from .codegen import FIRST_BASE
from .jsondata import json_copy
from .record import ANY_GROUP, OWN, RecordPlan, decoded


def unpack(packed: dict[str, Any], plan_at: Any) -> list[dict[str, Any]]:
    """The entries of a packed record. `plan_at(position)` gives (the RecordPlan describing the
    rule there, its index in it), or None when the rule's revision is not known: its entry then
    says so in `notes` (`failed` without the condition)."""
    ids, revs, codes, at = packed["ids"], packed["revs"], packed["codes"], packed["at"]
    if not (type(ids) is list and type(revs) is list and type(codes) is list
            and len(ids) == len(revs) == len(codes) and type(at) is list and at):
        raise ValueError("a packed record whose lists disagree")
    fired = set(packed["fired"])
    full = {int(i): e for i, e in packed["full"]}
    look = _SeenLookup(packed["seen"])
    out: list[dict[str, Any]] = []
    for i, rid in enumerate(ids):
        whole = full.get(i)
        if type(whole) is dict:
            out.append(whole)
            continue
        found = plan_at(i)
        entry = None if found is None else _unpacked(found, rid, i in fired, codes[i], look, bisect_right(at, i) - 1)
        if entry is None:
            why = (f"revision {revs[i]} of rule {rid} is not stored" if found is None else
                   f"the stored entry of rule {rid} does not fit its revision {revs[i]}")
            entry = {"id": rid, "name": None, "matched": i in fired, "failed": None,
                     "notes": [f"{why}: its entry cannot be shown"]}
        entry["revision"] = revs[i]
        out.append(entry)
    return out


def _unpacked(found: tuple[RecordPlan, int], rid: Any, fired: bool, code: Any, look: _SeenLookup,
              version: int) -> dict[str, Any] | None:
    """One packed entry expanded with the plan of its rule's revision, or None when the code
    does not fit that plan: a step it does not have, one `pack` never codes (a failure that
    words itself, a rule of more than FIRST_INLINE steps), a field the record holds no value of.
    Only a revision that is not the rule the record was made with (a stored revision changed
    by hand, or an engine that numbers steps another way) does that; it reads as a note, not a
    wrong entry or a failed read."""
    plan, j = found
    if type(code) is not int or j in plan.deep or not 0 <= j < len(plan.steps):
        return None
    steps, groups = plan.steps[j], plan.groups[j]
    # a code is the failing step + 1 (0: none) in its low digit, the held branch of each `any`
    # step in the digits above, each of radix (children + 1) (rules/codegen.py radix_of)
    if not 0 <= code < (groups[-1][2] * groups[-1][3] if groups else FIRST_BASE) or (fired and code % FIRST_BASE):
        return None
    try:
        entry: dict[str, Any]
        if fired:
            entry = {"id": rid, "name": plan.heads[j][1], "matched": True, "failed": None}
            held = decoded(groups, -1, code) if groups else None
        else:
            k = code % FIRST_BASE - 1
            if not 0 <= k < len(steps):
                return None
            kind, path, fname, op, value, _fn, _node = steps[k]
            if kind == ANY_GROUP:
                failed: dict[str, Any] = {"path": path, "field": None, "op": "any", "value": None, "seen": None}
            elif kind == OWN:
                return None
            else:
                got = look.at(fname, version)
                failed = {"path": path, "field": fname, "op": op, "value": json_copy(value),
                          "seen": json_copy(got)}
            entry = {"id": rid, "name": plan.heads[j][1], "matched": False, "failed": failed}
            held = decoded(groups, k, code) if groups and groups[0][0] < k else None
    except (LookupError, TypeError, ValueError, ZeroDivisionError):   # (the stored table, short)
        return None
    if held:
        entry["any_held"] = held
    return entry


class _SeenLookup:
    """A packed record's `seen` table read back: a field's value at a version (_seen_table)."""

    def __init__(self, seen: dict[str, Any]) -> None:
        self.number = {name: j for j, name in enumerate(seen["fields"])}
        values = seen["values"]
        self.bases = [b for b, _ in values]
        self.first = values[0][1]
        self.later = [dict((j, v) for j, v in changed) for _, changed in values[1:]]
        tags = seen.get("tags") or []
        self.tag_steps = [step for step, _ in tags]
        self.tags = [v for _, v in tags]
        self.tag_list = seen.get("tag_list")

    def at(self, name: str, version: int) -> Any:
        if name == "tags" and name not in self.number:
            got = self.tags[max(0, bisect_right(self.tag_steps, version) - 1)]
            return got if self.tag_list is None else self.tag_list[:got]
        j = self.number[name]
        for b in range(bisect_right(self.bases, version) - 1, 0, -1):
            later = self.later[b - 1]
            if j in later:
                return later[j]
        return self.first[j]
