"""YAML documents from tenants, read with their worst case bounded before anything is built.

`yaml.safe_load` is safe against code execution, not against size: an alias names a node already
read, so `a: &a [*a0, *a0]` twenty levels deep is 453 bytes that stand for a million nodes, and
every walk over the loaded data (our date conversion, the depth check, the validation) expands
them (7 s and 450 MiB for one import). So `load_document` first reads the *event stream* (the
parser's output, before any node or Python object exists) and refuses, with a 422 naming the
reason:

- any anchor or alias (a deskflow document never needs one; `<<` merge keys need them too);
- more than MAX_YAML_NODES scalars, sequences and mappings, or nesting deeper than the JSON limit;

then builds the data with a loader that differs from SafeLoader in one way: YAML 1.1's base-60
numbers are not numbers. Unquoted `17:00` is the integer 1020 to PyYAML, and in a deskflow
document it is always a time of day (business hours, a "set" value), so it stays the string
"17:00". Finally it walks the (now bounded) data and refuses what JSON cannot hold and what would
otherwise be stored wrong or fail later: integers past 64 bits, `.nan` and `.inf`, and YAML types
with no JSON counterpart (`!!binary`, `!!set`, `!!omap`).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import yaml

from server.errors import Unprocessable

MAX_YAML_NODES = 100_000   # scalars + sequences + mappings in one document
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc]
    """SafeLoader without base-60 ints and floats (see the module docstring)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# SafeLoader's int and float patterns, less their sexagesimal alternatives.
_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _refuse(reason: str, path: str = "") -> Unprocessable:
    return Unprocessable(f"The YAML document is refused: {reason}.", code="invalid_yaml",
                         details=[{"path": path, "reason": reason}])


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _too_deep(max_depth: int) -> Unprocessable:
    return Unprocessable(f"The body nests more than {max_depth} levels deep; the JSON nesting limit is "
                         f"{max_depth} levels.", code="too_deep",
                         details=[{"path": "", "reason": f"nested more than {max_depth} levels"}])


def _check_events(body: bytes, max_depth: int) -> None:
    """Refuse anchors, aliases, too many nodes or too deep a nesting, from the event stream."""
    try:
        _walk_events(body, max_depth)
    except yaml.YAMLError as exc:  # libyaml's scanner looks ahead and stops at 1,000 levels itself
        if "maximum nesting depth" in str(exc):
            raise _too_deep(max_depth) from None
        raise


# A plain scalar YAML would read as a number: past 64 bits it is refused before it is built
# (int() of a 5,000-digit string raises ValueError, a 500, and costs time even below that).
_NUMBERISH = re.compile(r"[-+]?(?:0x[0-9a-fA-F_]+|0o?[0-7_]+|0b[01_]+|[0-9][0-9_:.eE+-]*)")
_MAX_NUMBER_CHARS = 40


def _walk_events(body: bytes, max_depth: int) -> None:
    nodes = depth = 0
    for event in yaml.parse(body, Loader=_Loader):
        if (isinstance(event, yaml.ScalarEvent) and not event.style  # plain: None, or "" (libyaml)
                and len(event.value) > _MAX_NUMBER_CHARS and _NUMBERISH.fullmatch(event.value)):
            raise _refuse(f"the number at {_where(event)} does not fit in 64 bits; quote it to "
                          "keep it as text", "")
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refuse(f"anchors and aliases (&name, *name) are not accepted (at {_where(event)}); "
                          "write each value out", "")
        if isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise _refuse(f"more than {MAX_YAML_NODES} values (MAX_YAML_NODES)")
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _check_values(doc: Any) -> None:
    """Refuse values JSON cannot hold (iteratively: depth is bounded, but no recursion anyway)."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, bool) or value is None or isinstance(value, (str, dt.date)):
            continue
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise _refuse(f"the integer at {path or 'the top'} does not fit in 64 bits; "
                              "quote it to keep it as text", path)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _refuse(f"{value} at {path or 'the top'} is not a number JSON can hold "
                              "(no .nan or .inf)", path)
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, (str, int, float, bool, dt.date)) or isinstance(k, float) and not math.isfinite(k):
                    raise _refuse(f"a key at {path or 'the top'} is not text", path)
                stack.append((v, f"{path}.{k}" if path else str(k)))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))
        else:
            raise _refuse(f"the value at {path or 'the top'} is a YAML {type(value).__name__}, "
                          "which JSON has no form for", path)


def load_document(body: bytes | str, max_depth: int = 100) -> Any:
    """The YAML document as plain data, bounded as the module docstring says.

    yaml.YAMLError (does not parse) propagates for the caller's 400; refusals are Unprocessable.
    """
    _check_events(body if isinstance(body, bytes) else body.encode(), max_depth)
    doc = yaml.load(body, Loader=_Loader)  # noqa: S506 -- _Loader is a SafeLoader
    _check_values(doc)
    return doc


__all__ = ["load_document", "MAX_YAML_NODES"]
