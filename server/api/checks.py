"""Validation that answers every problem at once and in the user's own terms.

`parse_allowlist` stops at the first bad entry and `Limits` speaks in its field names
(`wall_s 60.0 is above the operator maximum 30.0`); a person fixing a body wants each problem, said
the way they wrote it (`timeout 60s is above the maximum 30s`).
"""

from __future__ import annotations

import re
from typing import Any

from sandbox import MAXIMA, AllowListError, LimitsError, parse_allowlist
from sandbox.limits import parse_seconds
from server.api.common import problem

__all__ = ["allowlist_problems", "timeout_problem", "in_units", "MAX_ALLOWLIST"]

MAX_ALLOWLIST = 100
_UNITS = (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))
_UNIT_OF = re.compile(r"\d+(ms|h|m|s)")


def in_units(seconds: float, like: str) -> str:
    """`seconds` written in the largest unit `like` uses in which it is a whole number ("30s" for
    a "60s" the user wrote, "2m" for "5m"), else in whole seconds or milliseconds."""
    used = set(_UNIT_OF.findall(like))
    for unit, size in _UNITS:
        if unit in used and abs(seconds / size - round(seconds / size)) < 1e-9 and seconds >= size:
            return f"{round(seconds / size)}{unit}"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def timeout_problem(timeout: str) -> str | None:
    """What is wrong with a script's `timeout` string, in its own units; None when it is fine."""
    try:
        seconds = parse_seconds(timeout)
    except LimitsError as exc:
        return str(exc)
    if seconds > MAXIMA.wall_s:
        return f"timeout {timeout} is above the maximum {in_units(MAXIMA.wall_s, timeout)}"
    return None


def allowlist_problems(hosts: Any, path: str = "hosts") -> list[dict[str, str]]:
    """Every problem of an allow-list body (each entry checked on its own), [] when valid."""
    if type(hosts) is not list:
        return [problem(path, "must be a list of host entries (strings)")]
    out = []
    if len(hosts) > MAX_ALLOWLIST:
        out.append(problem(path, f"has {len(hosts)} entries; the limit is {MAX_ALLOWLIST}"))
    for i, host in enumerate(hosts):
        if not isinstance(host, str):
            out.append(problem(f"{path}[{i}]", "must be a string: host, host:port or http://host[:port]"))
            continue
        try:
            parse_allowlist([host])
        except AllowListError as exc:
            out.append(problem(f"{path}[{i}]", str(exc)))
    return out
