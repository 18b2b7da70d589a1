"""What a script's `ctx` is, in the worker: http (relayed to the broker over the pipe), log(),
now(), vars, workspace -- and the per-run state behind them that scripts never reach.

Split from child.py (the worker's loop and limits); everything here runs inside the jail.
"""
from __future__ import annotations

import datetime
from typing import Any

import orjson

from .convert import (
    MAX_FORM_FIELDS, MAX_HEADER_CHARS, MAX_HEADERS, MAX_PARAMS, MAX_PARAMS_CHARS, Unconvertible,
    clean_text, fields_problem, to_plain,
)
from .protocol import read_frame, write_frame

_MAX_URL = 8192


class LimitBreach(Exception):
    """A limit the script hit; it may catch this, but the run fails with `code` anyway."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class HttpError(Exception):
    """A call the broker refused or could not complete; scripts catch it with `except Exception`."""


class _Run:
    """Trusted per-run state. Scripts reach it only through Context's methods."""

    def __init__(self, channel: tuple[int, int], limits: dict[str, Any]) -> None:
        self.channel = channel
        self.limits = limits
        self.logs: list[str] = []
        self.breach: LimitBreach | None = None

    def fail(self, code: str, message: str) -> LimitBreach:
        breach = LimitBreach(code, message)
        self.breach = self.breach or breach
        return breach

    def log(self, *parts: Any) -> None:
        if len(self.logs) >= self.limits["log_lines"]:
            raise self.fail("log_limit", f"more than {self.limits['log_lines']} log lines")
        line = clean_text(" ".join(p if type(p) is str else repr(p) for p in parts))
        cap = self.limits["log_line_bytes"]
        if len(line.encode("utf-8", "replace")) > cap:
            line = line.encode("utf-8", "replace")[: cap - 16].decode("utf-8", "ignore") + " …[truncated]"
        self.logs.append(line)


class Response:
    """A broker reply: only status_code, headers (a plain dict), text and json() (API.md)."""

    __slots__ = ("status_code", "headers", "text")

    def __init__(self, status_code: int, headers: dict[str, str], text: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.text = text

    def json(self) -> Any:
        return orjson.loads(self.text)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


class Http:
    __slots__ = ("_run",)

    def __init__(self, run: _Run) -> None:
        self._run = run

    def get(self, url: str, *, params: Any = None, headers: Any = None, auth_secret: Any = None,
            timeout: Any = None) -> Response:
        return self._call("GET", url, params, headers, auth_secret, timeout, None, None)

    def delete(self, url: str, *, params: Any = None, headers: Any = None, auth_secret: Any = None,
               timeout: Any = None, json: Any = None, data: Any = None) -> Response:
        return self._call("DELETE", url, params, headers, auth_secret, timeout, json, data)

    def post(self, url: str, *, params: Any = None, headers: Any = None, auth_secret: Any = None,
             timeout: Any = None, json: Any = None, data: Any = None) -> Response:
        return self._call("POST", url, params, headers, auth_secret, timeout, json, data)

    def put(self, url: str, *, params: Any = None, headers: Any = None, auth_secret: Any = None,
            timeout: Any = None, json: Any = None, data: Any = None) -> Response:
        return self._call("PUT", url, params, headers, auth_secret, timeout, json, data)

    def patch(self, url: str, *, params: Any = None, headers: Any = None, auth_secret: Any = None,
              timeout: Any = None, json: Any = None, data: Any = None) -> Response:
        return self._call("PATCH", url, params, headers, auth_secret, timeout, json, data)

    def _call(self, method: str, url: Any, params: Any, headers: Any, auth_secret: Any,
              timeout: Any, json: Any, data: Any) -> Response:
        run = self._run
        if run.breach is not None and run.breach.code in ("http_calls_limit", "response_size_limit"):
            raise run.fail(run.breach.code, str(run.breach))
        if type(url) is not str or len(url) > _MAX_URL:
            raise TypeError("url must be a string of at most 8192 characters")
        if auth_secret is not None and type(auth_secret) is not str:
            raise TypeError("auth_secret must be the name of a secret (a string)")
        if timeout is not None and (type(timeout) not in (int, float) or not timeout > 0):
            raise TypeError("timeout must be a positive number of seconds")
        if json is not None and data is not None:
            raise TypeError("pass json= or data=, not both")
        if type(data) is str and len(data) > run.limits["response_bytes"]:
            raise TypeError("data is larger than the response size limit")
        for problem in (fields_problem(headers, "headers", MAX_HEADERS, MAX_HEADER_CHARS),
                        fields_problem(params, "params", MAX_PARAMS, MAX_PARAMS_CHARS),
                        fields_problem(data, "data", MAX_FORM_FIELDS, run.limits["response_bytes"])):
            if problem is not None:       # refused here: such a frame never reaches the loop
                raise TypeError(problem)
        try:
            call = {
                "op": "http", "method": method, "url": url, "auth_secret": auth_secret,
                "timeout": timeout,
                "params": _plain_params(params),
                "headers": _plain_strings(headers, "headers"),
                "json": to_plain(json, max_bytes=run.limits["response_bytes"], what="json body"),
                "data": data if data is None or type(data) is str else _plain_strings(data, "data"),
            }
        except Unconvertible as exc:
            raise TypeError(str(exc)) from None
        write_frame(run.channel[1], call)
        reply = read_frame(run.channel[0])
        if reply.get("ok"):
            return Response(reply["status_code"], reply["headers"], reply["text"])
        if reply.get("kind") == "limit":
            raise run.fail(reply["code"], reply["message"])
        raise HttpError(reply["message"])


def _plain_strings(value: Any, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
        raise TypeError(f"{what} must be a dict of strings")
    return {k: v for k, v in value.items()}


def _plain_params(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not dict:
        raise TypeError("params must be a dict")
    out: dict[str, Any] = {}
    for k, v in value.items():
        items = v if type(v) in (list, tuple) else [v]
        if type(k) is not str or not all(type(i) in (str, int, float, bool) for i in items):
            raise TypeError("params must map strings to strings, numbers or lists of them")
        out[k] = [str(i) if type(i) is not str else i for i in items]
    return out


class Context:
    """The `ctx` argument: http, log(), now(), vars, workspace, history, customer — and nothing
    else. `history` (a list, oldest first) and `customer` (a dict or None) are plain data decoded
    from this run's frame, like `event` and `ticket`: a script may change its copy, nothing else
    sees it. The worker fills them only for scripts whose source names them (server/history.py);
    for any other script they are [] and None."""

    __slots__ = ("http", "vars", "workspace", "history", "customer", "_run")

    def __init__(self, run: _Run, info: dict[str, Any]) -> None:
        self._run = run
        self.http = Http(run)
        self.vars = info.get("vars") or {}
        self.workspace = info.get("workspace")
        history = info.get("history")
        self.history = history if type(history) is list else []
        customer = info.get("customer")
        self.customer = customer if type(customer) is dict else None

    def log(self, *parts: Any) -> None:
        self._run.log(*parts)

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc)


class _Printer:
    """RestrictedPython's print hook: `_print_(_getattr_)` makes one per function; print() lines
    become log lines (same limits) and `printed` reads them back as text. Every attribute is
    `_`-named, so the object is opaque to the script that `printed` could hand it to."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._lines: list[str] = []

    def __call__(self) -> str:
        return "\n".join(self._lines)

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        sep = kwargs.get("sep")
        line = (sep if type(sep) is str else " ").join(o if type(o) is str else repr(o) for o in objects)
        self._run.log(line)
        self._lines.append(self._run.logs[-1])


def _printer_factory(run: _Run) -> Any:
    def _print_(_getattr_: Any = None) -> _Printer:
        return _Printer(run)
    return _print_
