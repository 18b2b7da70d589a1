"""The checks of what a tenant writes -- a rule, an import document, a rule's dry run, an SLA
policy -- as functions of plain data, so that they run the same in a check process
(server/checkpool.py) or, for a small input, in the API process itself.

Each check compiles what it is given (conditions, regexes, templates, business-hours calendars):
seconds of pure Python for a 1 MiB rule of regexes (re's parser), which in the API process held
the GIL every other workspace's requests wait on. What crosses to a check process is plain data
only: the input, and of the workspace's SLA policies (the calendars business-time conditions
name) only the specs of those the input names, with the names of the others (`Calendars`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime
from typing import Any, TypedDict

import orjson

__all__ = ["OPS", "Calendars", "calendar_specs", "named_calendars", "calendars", "check_rule",
           "check_document", "read_document", "dry_run_rule", "check_policy_spec", "dump_yaml", "bucket_code",
           "COMPILED_KEPT"]

COMPILED_KEPT = 64   # compiled SLA policies kept per process (by what the spec says)

_compiled: OrderedDict[bytes, Any] = OrderedDict()


class Calendars(TypedDict):
    """The workspace's calendars as a check needs them: `names`, every SLA policy with business
    hours (what an unknown name's message lists); `policies`, the specs of those the input names."""

    names: list[str]
    policies: list[dict[str, Any]]


def named_calendars(node: Any) -> set[str]:
    """Every string under a `calendar` key anywhere in `node` (a rule, a document): the calendars
    it may name. Found in its compact JSON by a C-speed search, not a walk in Python (a document
    may hold 100,000 values); a quote inside a string is escaped there, so a string's text never
    looks like a key. Over-collecting is harmless: it only sends a spec more."""
    try:
        text = orjson.dumps(node)
    except TypeError:   # a YAML document's dates: as text, the same keys
        text = orjson.dumps(node, default=str)
    return {orjson.loads(b'"' + m + b'"') for m in _CALENDAR_KEY.findall(text)}


_CALENDAR_KEY = re.compile(rb'"calendar":"((?:[^"\\]|\\.)*)"')


def calendar_specs(policies: list[Any], named: set[str]) -> Calendars:
    """Calendars from the workspace's stored policy specs, carrying only the `named` ones' specs."""
    from server.api.references import calendars_of

    return {"names": sorted(calendars_of(policies)),
            "policies": [p for p in policies if isinstance(p, dict) and p.get("name") in named]}


def _compile_policy(spec: dict[str, Any]) -> Any:
    """One stored policy compiled (None when the engine refuses it), kept by what it says."""
    from server.policy_cache import compile_policies

    key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
    if key in _compiled:
        _compiled.move_to_end(key)
        return _compiled[key]
    found = compile_policies([spec], quiet=True)
    _compiled[key] = found[0] if found else None
    while len(_compiled) > COMPILED_KEPT:
        _compiled.popitem(last=False)
    return _compiled[key]


def calendars(cal: Calendars | None) -> dict[str, Any]:
    """Names to Calendar objects, as the engine's checks take them. The specs given are compiled
    (one the engine refuses is left out, so naming it is an unknown calendar, as before); every
    other name maps to one always-open stand-in, only ever listed (in an unknown name's message),
    never used: the input does not name it."""
    if not cal:
        return {}
    from rules.sla import policy_calendars

    given = {p.get("name") for p in cal["policies"]}
    compiled = [p for p in (_compile_policy(spec) for spec in cal["policies"]) if p is not None]
    out: dict[str, Any] = {name: _stand_in() for name in cal["names"] if name not in given}
    out.update(policy_calendars(compiled))
    return out


def _stand_in() -> Any:
    if not _STAND_IN:
        from rules.calendar import Calendar

        _STAND_IN.append(Calendar.from_spec({"timezone": "UTC", "week": {"mon": ["00:00", "24:00"]}}))
    return _STAND_IN[0]


_STAND_IN: list[Any] = []


def check_rule(rule: Any, prefix: str, cal: Calendars | None) -> list[dict[str, str]]:
    """server.api.rule_checks.rule_problems with the calendars built here."""
    from server.api.rule_checks import rule_problems

    return rule_problems(rule, prefix, calendars(cal))


def check_document(doc: dict[str, Any] | bytes, cal: Calendars | None) -> list[dict[str, str]]:
    """An import document's problems, its rules checked against the workspace's calendars and
    the document's own policies' (server/api/document.py validate). The document may come as
    its compact JSON (what the "read" check answered: no pickling of 100,000 values to send it)."""
    from server.api.document import sla_items, validate
    from server.api.rule_checks import calendars_of

    if isinstance(doc, bytes):
        doc = orjson.loads(doc)
        assert isinstance(doc, dict)

    return validate(doc, {**calendars(cal), **calendars_of(sla_items(doc))})


def dry_run_rule(rule: dict[str, Any], event: dict[str, Any], ticket: dict[str, Any],
                 previous: dict[str, Any] | None, now: datetime,
                 cal: Calendars | None) -> dict[str, Any]:
    """{"result": dry run} or {"problems": [...]} when the rule does not compile (rules.dry_run)."""
    from rules import RuleError, dry_run

    try:
        return {"result": dry_run(rule, event, ticket, previous, now, calendars(cal))}
    except RuleError as exc:
        return {"problems": [{"path": e.path, "reason": e.reason} for e in (exc.errors or [exc])],
                "message": str(exc)}


def check_policy_spec(body: dict[str, Any], name: str) -> list[dict[str, str]]:
    """server.api.sla.check_policy (a policy's business hours are compiled to be checked)."""
    from server.api.sla import check_policy

    return check_policy(body, name)


def read_document(body: bytes, is_yaml: bool, depth_limit: int) -> tuple[Any, ...]:
    """server/api/document_read.py read_body: an import body parsed and bounded."""
    from server.api.document_read import read_body

    return read_body(body, is_yaml, depth_limit)


def dump_yaml(doc: bytes) -> str:
    """GET /v1/export?format=yaml's text of the document given as compact JSON. Here, not on the
    loop: PyYAML's representer is Python, and 1,000 rules of 60 conditions (3.4 MB, within the
    rule bounds) were 7.5 s of it (3.4 s with libyaml's emitter, which writes the same text and
    is used where PyYAML has it); the safe representer either way (no object tags)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(orjson.loads(doc), Dumper=dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


def check_script(source: str) -> list[str]:
    """The sandbox policy's refusals of a script's source ([] when it compiles): POST
    /v1/scripts's check. Here, not on the loop: RestrictedPython's compile is Python, and 64 KiB
    of attribute chains are ~450 ms of it on a quiet machine; an upload loop of them put another
    workspace's p50 at 400-800 ms (tests/server/test_redteam14_isolation.py)."""
    from sandbox import compile_script

    result = compile_script(source)
    return [] if result.ok else list(result.errors)


def bucket_code(source: str) -> bytes:
    """A rule set's trigger bucket's generated source (rules/codegen.py) compiled, marshalled:
    the worker's rule cache (server/rulecache.py) sends a big one here. CPython's compile is one C
    call that holds the GIL throughout, ~1 s for the 3.6 MB of a bucket at the rule limits, and
    no switch interval interrupts it; `marshal.loads` of the answer is ~10 ms. The source is the
    engine's own templates (it holds no tenant value), and the answer is code of this process's
    own interpreter, read back only by the process that asked."""
    import marshal

    from rules.codegen import compile_bucket

    return marshal.dumps(compile_bucket(source))


OPS: dict[str, Any] = {"rule": check_rule, "document": check_document, "dry_run": dry_run_rule,
                       "policy": check_policy_spec, "read": read_document, "yaml": dump_yaml,
                       "script": check_script, "bucket_code": bucket_code}
