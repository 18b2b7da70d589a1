"""Query parameters, declared per endpoint and read by one parser per kind.

Why: each endpoint used to read `request.query_params` its own way, so `?dry_run=True` applied an
import, `?stauts=open` listed every ticket and `?limit=²` (str.isdigit() accepts it, int() does
not) was a 500. Now an endpoint declares what it reads (`requires(role, query=Query(...))`), and
before the endpoint runs every parameter is checked at once: an unknown name, a repeated one, a
boolean that is not true/false/1/0/yes/no, a value outside a filter's set, a number that is not
plain ASCII digits in range, a cursor this list did not give out. Nothing is acted on unless it
was understood.

The declaration is data: `endpoint.deskflow_query` is the `Query`, whose `params` are `Param`s
(name, kind, default, choices, minimum, maximum, aliases, description) and whose `openapi()` gives
OpenAPI parameter objects, so the document lists exactly what the endpoint accepts.

Statuses: a number or cursor that is not one keeps its 400 (`invalid_limit`, `invalid_number`,
`invalid_cursor`), as before; an unknown parameter (422 `unknown_parameter`) and a value outside
its set (422 `invalid_parameter`) are 422s. When both kinds occur the answer is the 422, listing
every problem.
"""

from __future__ import annotations

import base64
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from server.errors import ApiError, BadRequest, Unprocessable

__all__ = ["Param", "Query", "NO_QUERY", "PAGE", "FORCE", "flag", "choice", "text", "number",
           "whole_number", "offset_cursor", "stream_id", "encode_cursor", "decode_cursor", "did_you_mean",
           "ValueProblem", "query_of"]

TRUE = frozenset({"true", "1", "yes"})
FALSE = frozenset({"false", "0", "no"})
BOOLEAN_WORDS = "true/false, 1/0 or yes/no (any case)"
MAX_DIGITS = 18            # any count or offset fits; int() never sees a 4,300-digit string
MAX_CURSOR_CHARS = 100     # every cursor this service gives out is far shorter
MAX_TEXT_CHARS = 200       # a filter value (tag, group, audit target or actor)
MAX_PROBLEMS = 50          # listed in one answer's details (a URL can name thousands)
_DIGITS = re.compile(r"[0-9]+")   # not \d, not str.isdigit(): those take "²" and "５"
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_U64 = 2 ** 64 - 1


class ValueProblem(ValueError):
    """One parameter value that was not understood: the reason, and the status and code of the
    answer (400 for numbers and cursors, as before; 422 for the rest)."""

    def __init__(self, reason: str, status: int = 422, code: str = "invalid_parameter") -> None:
        super().__init__(reason)
        self.reason, self.status, self.code = reason, status, code


def whole_number(raw: str, minimum: int, maximum: int, what: str = "a whole number") -> int:
    """The one integer parser for user input (query and path): ASCII digits only, at most
    MAX_DIGITS of them, within [minimum, maximum]; else ValueError with a reason."""
    if not _DIGITS.fullmatch(raw) or len(raw) > MAX_DIGITS:
        raise ValueError(f"must be {what} from {minimum} to {maximum} in ASCII digits, got "
                         f"{_short(raw)!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValueError(f"must be {what} from {minimum} to {maximum}, got {value}")
    return value


def encode_cursor(value: int | str) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The text inside a cursor (base64url), or a 400 when it cannot be one of ours."""
    reason = "is not a cursor this list gave out (pass `next` from the previous page)"
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadRequest(f"The cursor is not one this service gave out: it is {len(cursor)} "
                         f"characters; cursors are at most {MAX_CURSOR_CHARS}.",
                         code="invalid_cursor", details=[{"path": "?cursor", "reason": reason}])
    try:
        pad = "=" * (-len(cursor) % 4)
        return base64.b64decode(cursor + pad, altchars=b"-_", validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not one this service gave out.", code="invalid_cursor",
                         details=[{"path": "?cursor", "reason": reason}]) from exc


def _cursor_problem() -> ValueProblem:
    return ValueProblem("is not a cursor this list gave out (pass `next` from the previous page)",
                        400, "invalid_cursor")


def offset_cursor(raw: str) -> int:
    """A list's position cursor: base64url of a whole number."""
    try:
        return whole_number(decode_cursor(raw), 0, 10 ** MAX_DIGITS - 1)
    except (ValueError, ApiError) as exc:
        raise _cursor_problem() from exc


def stream_id(raw: str) -> str:
    """A Redis stream id `<ms>-<seq>`, each part a 64-bit unsigned number in ASCII digits (Redis
    refuses anything else, which would be an error from the store, not an answer)."""
    m = _STREAM_ID.fullmatch(raw)
    if not m or int(m.group(1)) > _U64 or int(m.group(2)) > _U64:
        raise ValueError(raw)
    return raw


def did_you_mean(name: str, known: Any) -> str | None:
    """The closest known name, when one is close (a misspelling, not a different word)."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
    if not close:
        close = [k for k in sorted(known) if k.casefold() == name.casefold()]
    return close[0] if close else None


@dataclass(frozen=True)
class Param:
    """One query parameter an endpoint reads. `kind` is its OpenAPI type: boolean, integer or
    string; `choices` makes a string an enum; `convert` turns a string into what the endpoint
    uses (raising ValueError/ValueProblem with a reason); `aliases` are other names for it."""

    name: str
    kind: str = "string"
    description: str = ""
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    aliases: tuple[str, ...] = ()
    convert: Callable[[str], Any] | None = field(default=None, compare=False)
    number_code: str = "invalid_number"   # the 400 code of a bad integer (limit: invalid_limit)

    def parse(self, raw: str) -> Any:
        if self.kind == "boolean":
            word = raw.casefold()
            if word in TRUE:
                return True
            if word in FALSE:
                return False
            raise ValueProblem(f"must be {BOOLEAN_WORDS}, got {_short(raw)!r}")
        if self.kind == "integer":
            lo = self.minimum if self.minimum is not None else 0
            hi = self.maximum if self.maximum is not None else 10 ** MAX_DIGITS - 1
            try:
                return whole_number(raw, lo, hi)
            except ValueError as exc:
                raise ValueProblem(str(exc), 400, self.number_code) from exc
        if self.choices:
            for option in self.choices:
                if raw.casefold() == option.casefold():
                    return option
            raise ValueProblem(f"must be one of {', '.join(self.choices)}, got {_short(raw)!r}")
        if self.convert is None and len(raw) > MAX_TEXT_CHARS:
            raise ValueProblem(f"is {len(raw)} characters; a filter value is at most "
                               f"{MAX_TEXT_CHARS} characters")
        if self.convert is None:
            return raw or None   # an empty filter is no filter
        if raw == "":
            return self.default
        try:
            return self.convert(raw)
        except ValueProblem:
            raise
        except (ValueError, ApiError) as exc:
            reason = getattr(exc, "message", None) or str(exc) or "is not a value this takes"
            raise ValueProblem(reason) from exc

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        if self.choices:
            out["enum"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.default is not None:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class Query:
    """The query parameters of one endpoint (none by default: then any parameter is a 422)."""

    params: tuple[Param, ...] = ()

    def __init__(self, *params: Param | tuple[Param, ...]) -> None:
        flat: list[Param] = []
        for p in params:
            flat.extend(p if isinstance(p, tuple) else (p,))
        object.__setattr__(self, "params", tuple(flat))

    def names(self) -> dict[str, Param]:
        """Every accepted name (aliases included) -> its Param."""
        return {n: p for p in self.params for n in (p.name, *p.aliases)}

    def read(self, query: QueryParams,
             where: Callable[[], str] = lambda: "this route") -> dict[str, Any]:
        """{param name: value} with defaults; raises one error listing every problem (`where`
        names the route in the message, computed only then)."""
        known = self.names()
        problems: list[tuple[ValueProblem, str]] = []
        raw: dict[str, tuple[str, str]] = {}   # param name -> (name used, value)
        for name in dict.fromkeys(query.keys()):
            values = query.getlist(name)
            param = known.get(name)
            if param is None:
                hint = did_you_mean(name, known)
                accepted = ", ".join(f"?{n}" for n in known) or "no query parameters"
                reason = (f"is not a parameter of {where()}" + (f"; did you mean ?{hint}?" if hint
                          else f" (it takes {accepted})"))
                problems.append((ValueProblem(reason, 422, "unknown_parameter"), name))
                continue
            if len(set(values)) > 1:
                problems.append((ValueProblem(f"is given {len(values)} times with different "
                                              f"values; give it once"), name))
                continue
            if param.name in raw and raw[param.name][1] != values[0]:
                other = raw[param.name][0]
                problems.append((ValueProblem(f"and ?{other} are two names of one parameter, "
                                              f"given different values; give one"), name))
                continue
            raw.setdefault(param.name, (name, values[0]))
        out: dict[str, Any] = {p.name: p.default for p in self.params}
        for pname, (used, value) in raw.items():
            try:
                out[pname] = known[pname].parse(value)
            except ValueProblem as exc:
                problems.append((exc, used))
        if problems:
            raise _error(problems)
        return out

    def openapi(self) -> list[dict[str, Any]]:
        """OpenAPI parameter objects (an alias is listed as a deprecated parameter of its own)."""
        out = []
        for p in self.params:
            out.append({"name": p.name, "in": "query", "required": False,
                        "description": p.description, "schema": p.schema()})
            out += [{"name": a, "in": "query", "required": False, "deprecated": True,
                     "description": f"Another name for `{p.name}`.", "schema": p.schema()}
                    for a in p.aliases]
        return out


def _short(name: str) -> str:
    return name if len(name) <= 100 else name[:100] + "…"


def _error(problems: list[tuple[ValueProblem, str]]) -> ApiError:
    """One answer for every problem of the query (at most MAX_PROBLEMS of them in `details`)."""
    problems = [(p, _short(name)) for p, name in problems]
    details = [{"path": f"?{name}", "reason": p.reason} for p, name in problems[:MAX_PROBLEMS]]
    status = max(p.status for p, _ in problems)
    code = next(p.code for p, _ in problems if p.status == status)
    text = "; ".join(f"?{name} {p.reason}" for p, name in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    cls = Unprocessable if status == 422 else BadRequest
    end = "" if (text + more).endswith("?") else "."
    return cls(f"The query is not valid: {text}{more}{end}", code=code, details=details)


NO_QUERY = Query()


def flag(name: str, description: str, default: bool = False) -> Param:
    return Param(name, "boolean", description, default)


def choice(name: str, values: tuple[str, ...] | list[str], description: str,
           default: str | None = None) -> Param:
    return Param(name, "string", description, default, choices=tuple(values))


def text(name: str, description: str) -> Param:
    return Param(name, "string", description)


def number(name: str, minimum: int, maximum: int, default: int, description: str,
           number_code: str = "invalid_number") -> Param:
    return Param(name, "integer", description, default, minimum=minimum, maximum=maximum,
                 number_code=number_code)


# ?force= of a delete that enabled rules stand in the way of (declare it: Query(FORCE)).
FORCE = flag("force", "Delete even when enabled rules use it: those rules are disabled, and the "
             "answer names them.")

# The paging pair of every {"items", "next"} list (API.md: default 50, max 500).
PAGE = (number("limit", 1, 500, 50, "Items per page (1-500, default 50).", "invalid_limit"),
        Param("cursor", "string", "`next` of the previous page.", convert=offset_cursor))


def query_of(endpoint: Any) -> Query:
    return getattr(endpoint, "deskflow_query", NO_QUERY)
