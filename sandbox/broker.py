"""The trusted side of `ctx.http`: allow-list, SSRF guard, budgets, secrets. httpx lives here.

    broker = Broker(httpx.AsyncClient(trust_env=False, follow_redirects=False))   # or Broker.create()
    session = broker.session(BrokerConfig(allowlist, secrets), limits, deadline)
    reply = await session.request({"method": "GET", "url": ..., ...})   # a plain dict for the worker

Order of checks for each hop: scheme and URL shape -> allow-list (scheme, host, port) -> resolve
once -> every address public (or named literally) -> connect to that checked IP, keeping the name
for Host and TLS SNI/certificate checks (DNS cannot change the answer between check and connect).
Redirects are followed here, one hop at a time, through the same checks; the secret is sent only
to the origin it was attached for, and only to an origin it is bound to (BrokerConfig.secret_hosts).
Bodies are streamed and cut at the response limit. Secret values are scrubbed from whatever goes
back to the worker in every spelling (sandbox/scrub.py), so an echoing server cannot leak them.

Time and sharing (issue 13 A4): every request, redirects included, runs under ONE deadline that
covers DNS, connect, TLS, headers and the whole body (a server sending a byte every second cannot
stretch it), capped by the run's remaining time; an abandoned request's connection is closed.
DNS lookups run on the broker's own small thread pool, at most DNS_PER_WORKSPACE at a time per
workspace, never on the loop's default executor that everything else shares. A workspace has at
most PER_WORKSPACE_CALLS requests in flight, so one tenant's slow calls cannot take the client's
whole connection pool. Every request carries OUTBOUND_MARKER, and a request to one of the
service's own listeners is refused: the broker is not a way into deskflow's own API.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .allowlist import (
    DEFAULT_PORTS, MAX_URL_CHARS, AllowList, IPAddress, _BAD_URL_CHARS, address_problem,
    canonical_host,
)
from .convert import (
    MAX_FORM_FIELDS, MAX_HEADER_CHARS, MAX_HEADERS, MAX_PARAMS, MAX_PARAMS_CHARS, fields_problem,
)
from .errors import BrokerError, CallLimit, CallRefused
from .limits import DEFAULT_LIMITS, MAXIMA, Limits
from .scrub import Scrubber
from .sharing import PER_WORKSPACE_CALLS, Endpoints, Sharing

Resolver = Callable[[str, int], Awaitable[list[str]]]

# Sent with every outbound request; the API refuses any request that carries it (server/selfguard.py).
OUTBOUND_MARKER = "X-Deskflow-Outbound"

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# Headers a script may not set: they would redirect or reframe the request we checked.
FORBIDDEN_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
    "proxy-authorization", "proxy-connection", "keep-alive", "expect",
    OUTBOUND_MARKER.lower(),   # the service's own mark: a script may neither set nor remove it
})
_SECRET_TEMPLATE = re.compile(r"\{\{\s*secret:([A-Za-z0-9_.-]+)\s*\}\}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")   # an RFC 9110 token


def header_problem(name: str, value: str) -> str | None:
    """Why the broker refuses to send header `name: value`, or None: one check for the broker
    and for a rule's save (server/api/action_bounds.py), so a rule that saves is one it sends."""
    if name.lower() in FORBIDDEN_HEADERS or not _HEADER_NAME.fullmatch(name):
        return f"header {name!r} may not be set"
    if "\r" in value or "\n" in value:
        return f"header {name!r} contains a line break"
    return None


class CallFailed(BrokerError):
    """The call was allowed but did not complete (connect error, timeout, bad response)."""
    code = "failed"


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """One workspace's view of the broker, passed per run by value from the trusted side.

    `secret_hosts` binds a secret to the origins it may be sent to (an AllowList of them): a name
    listed there goes to those origins only (an empty list: nowhere). A secret not listed there
    (set before secrets had hosts) may go to any origin of the allow-list. `workspace` keys the
    per-workspace bounds on requests and DNS lookups in flight."""
    allowlist: AllowList
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secret_hosts: Mapping[str, AllowList] = dataclasses.field(default_factory=dict)
    workspace: str = ""


@dataclasses.dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str            # path + "?" + query, as written
    literal: IPAddress | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _decode(content: bytes, encoding: str | None) -> str:
    try:
        return content.decode(encoding or "utf-8", errors="replace")
    except LookupError:          # a charset Python does not know: read it as UTF-8
        return content.decode("utf-8", errors="replace")


def _with_params(url: str, params: Any) -> str:
    """The script's params appended to the query the URL already has (httpx would replace it)."""
    if not params or type(params) is not dict:
        return url
    pairs = [(str(k), str(v)) for k, vs in params.items() for v in (vs if type(vs) is list else [vs])]
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(pairs)


class Broker(Sharing):
    def __init__(self, client: httpx.AsyncClient, *, resolver: Resolver | None = None,
                 own_endpoints: Endpoints | None = None,
                 per_workspace: int = PER_WORKSPACE_CALLS) -> None:
        if client.trust_env:
            raise ValueError("the broker's client must be built with trust_env=False (no env proxies)")
        self.client = client
        Sharing.__init__(self, resolver=resolver, own_endpoints=own_endpoints, per_workspace=per_workspace)

    @classmethod
    def create(cls, *, resolver: Resolver | None = None, own_endpoints: Endpoints | None = None) -> Broker:
        # No keep-alive: connections are pooled by (scheme, IP, port), so a pooled TLS connection
        # made for one name (SNI, certificate) could carry a request for another name on that IP.
        client = httpx.AsyncClient(trust_env=False, follow_redirects=False, http2=False,
                                   limits=httpx.Limits(max_connections=100, max_keepalive_connections=0))
        return cls(client, resolver=resolver, own_endpoints=own_endpoints)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.close_sharing()

    def open_connections(self) -> int:
        """Connections the client's pool holds right now (for tests and /metrics)."""
        pool = getattr(getattr(self.client, "_transport", None), "_pool", None)
        return len(getattr(pool, "connections", ()))

    def session(self, config: BrokerConfig, limits: Limits, deadline: float) -> BrokerSession:
        return BrokerSession(self, config, limits, deadline)

    async def call(self, config: BrokerConfig, request: Mapping[str, Any], *,
                   limits: Limits | None = None,
                   follow_redirects: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One call outside any script, for the `http_request` rule action: the same checks,
        secrets and record. `request` is {"method", "url", "params"?, "headers"?, "auth_secret"?,
        "json"?, "data"?, "timeout"?} as plain JSON data. Returns (reply, http_calls); the reply is
        {"ok": True, "status_code", "headers", "text"} or {"ok": False, "kind", "message"[, "code"]}.
        With follow_redirects=False (webhook delivery) a 3xx is returned as it is."""
        limits = limits or DEFAULT_LIMITS
        session = self.session(config, limits, asyncio.get_running_loop().time() + limits.wall_s)
        session.follow_redirects = follow_redirects
        reply = await session.request(request)
        return reply, session.calls


    async def check(self, config: BrokerConfig, url: object) -> str | None:
        """Why a request to `url` would be refused (URL shape, allow-list, every resolved address
        public or listed literally), or None. For settings checked when they are saved (the
        webhook URL); the same checks run again on every request."""
        session = self.session(config, DEFAULT_LIMITS, asyncio.get_running_loop().time() + 5.0)
        try:
            await session._resolve(await session._check(url))
        except (CallRefused, CallFailed) as exc:
            return exc.reason
        return None


class BrokerSession:
    """One run's budget and call record. `deadline` is on the event loop's clock."""

    def __init__(self, broker: Broker, config: BrokerConfig, limits: Limits, deadline: float) -> None:
        self.broker = broker
        self.config = config
        self.limits = limits
        self.deadline = deadline
        self.calls: list[dict[str, Any]] = []
        self.breach: CallLimit | None = None
        self.sent = 0          # requests actually sent, redirect hops included
        self.used = 0          # calls made, refused ones and redirect hops included: the call cap
        self.follow_redirects = True
        self.scrubber = Scrubber(config.secrets.values())

    async def request(self, call: Mapping[str, Any]) -> dict[str, Any]:
        """A worker's call (already plain JSON types) -> the reply the worker turns into a Response."""
        method = str(call.get("method", "")).upper()
        url = call.get("url")
        try:
            self._count()          # a refused call counts too: refusals cannot be made without end
            if method not in METHODS:
                raise CallRefused(f"method {method!r} is not allowed")
            self._bounded(call)
            target = await self._check(url)
            headers = self._headers(call.get("headers"), call.get("auth_secret"), target)
            seconds = self._seconds(call.get("timeout"))
            try:
                async with asyncio.timeout(seconds):    # DNS, connect, TLS, headers, body, redirects
                    return await self._follow(method, target, headers, call)
            except TimeoutError:
                raise CallFailed(f"{target.display()} timed out after {seconds:.1f}s (one deadline "
                                 f"covers DNS, connect, headers and the whole body)") from None
        except CallLimit as exc:
            self.breach = self.breach or exc
            if exc.code == "http_calls_limit":     # not sent
                self._record(method, url, refused=exc.reason)
            else:                                  # sent, and the answer was cut off
                self._record(method, url, error=exc.reason)
            return {"ok": False, "kind": "limit", "code": exc.code, "message": exc.reason}
        except CallRefused as exc:
            self._record(method, url, refused=exc.reason)
            return {"ok": False, "kind": "refused", "message": self._scrub(exc.reason)}
        except CallFailed as exc:
            self._record(method, url, error=exc.reason)
            return {"ok": False, "kind": "failed", "message": self._scrub(exc.reason)}
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a broker bug fails this call, never the service
            self._record(method, url, error=f"internal error: {type(exc).__name__}")
            return {"ok": False, "kind": "failed", "message": "the HTTP call failed (internal error)"}

    def _count(self) -> None:
        if self.used >= self.limits.http_calls:
            raise CallLimit("http_calls_limit", f"more than {self.limits.http_calls} HTTP calls in one run "
                                                f"(refused calls and redirects count)")
        self.used += 1

    def _bounded(self, call: Mapping[str, Any]) -> None:
        """Headers, query values and form fields within their bounds (sandbox/convert.py), checked
        before any of them is read one by one: the worker checks them too, this holds for every
        caller, and a hundred thousand headers cost the event loop 1.3 s a call to check and send."""
        for problem in (
                fields_problem(call.get("headers"), "headers", MAX_HEADERS, MAX_HEADER_CHARS),
                fields_problem(call.get("params"), "params", MAX_PARAMS, MAX_PARAMS_CHARS),
                fields_problem(call.get("data"), "data", MAX_FORM_FIELDS, self.limits.response_bytes)):
            if problem is not None:
                raise CallRefused(problem)

    def _seconds(self, timeout: Any) -> float:
        per_call = self.limits.http_timeout_s if type(timeout) not in (int, float) or timeout <= 0 else timeout
        return max(0.001, min(float(per_call), self._remaining(), MAXIMA.http_timeout_s))

    # -- checks -------------------------------------------------------------------------------

    async def _check(self, url: object) -> _Target:
        if type(url) is not str or not url:
            raise CallRefused("the URL must be a non-empty string")
        if len(url) > MAX_URL_CHARS or _BAD_URL_CHARS.search(url):
            raise CallRefused("the URL is too long or contains spaces, control characters or backslashes")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise CallRefused(f"bad URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise CallRefused(f"scheme {parts.scheme!r} is not allowed (http and https only)")
        if "@" in parts.netloc:
            raise CallRefused("credentials (user@host) in the URL are not allowed")
        if parts.fragment:
            url = url.split("#", 1)[0]
        host, literal = canonical_host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
        port = DEFAULT_PORTS[scheme] if port is None else port
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        target = _Target(scheme, host, port, path, literal)
        if self.config.allowlist.find(scheme, host, port) is None:
            raise CallRefused(f"{scheme}://{host}:{port} is not on the allow-list")
        return target

    async def _resolve(self, target: _Target) -> IPAddress:
        if target.literal is not None:
            addresses: list[IPAddress] = [target.literal]
        else:
            try:
                answers = await asyncio.wait_for(
                    self.broker.lookup(self.config.workspace, target.host, target.port), self._remaining())
            except (OSError, asyncio.TimeoutError) as exc:
                raise CallFailed(f"cannot resolve {target.host}: {exc}") from exc
            addresses = []
            for answer in answers:
                try:
                    addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
                except ValueError:
                    raise CallRefused(f"{target.host} resolved to {answer!r}, not an address") from None
        if not addresses:
            raise CallFailed(f"{target.host} has no address")
        for address in addresses:   # every answer must pass: the client must not be able to pick
            problem = address_problem(address, self.config.allowlist, target.scheme, target.port)
            if problem is not None:
                raise CallRefused(f"{target.host} -> {problem}")
            if self.broker.is_own(address, target.port):
                raise CallRefused(f"{target.host}:{target.port} is this deskflow service's own API "
                                  f"or store; the broker does not call it")
        return addresses[0]

    def _headers(self, raw: object, auth_secret: object, target: _Target) -> dict[str, str]:
        headers: dict[str, str] = {}
        if raw is not None:
            if type(raw) is not dict:
                raise CallRefused("headers must be a dict of strings")
            for name, value in raw.items():
                if type(name) is not str or type(value) is not str:
                    raise CallRefused("headers must be a dict of strings")
                problem = header_problem(name, value)
                if problem is not None:
                    raise CallRefused(problem)
                headers[name] = _SECRET_TEMPLATE.sub(lambda m: self._secret(m.group(1), target), value)
        if auth_secret is not None:
            if type(auth_secret) is not str:
                raise CallRefused("auth_secret must be the name of a secret")
            headers["Authorization"] = f"Bearer {self._secret(auth_secret, target)}"
        return headers

    def _secret(self, name: str, target: _Target) -> str:
        value = self.config.secrets.get(name)
        if value is None:
            raise CallRefused(f"no secret named {name!r} in this workspace")
        bound = self.config.secret_hosts.get(name)
        if bound is not None and bound.find(target.scheme, target.host, target.port) is None:
            where = ", ".join(sorted(str(e) for e in bound.entries)) or "no host"
            raise CallRefused(f"secret {name!r} may not be sent to {target.scheme}://{target.host}:"
                              f"{target.port}; an admin bound it to {where}")
        return value

    # -- the call ------------------------------------------------------------------------------

    async def _follow(self, method: str, target: _Target, headers: dict[str, str],
                      call: Mapping[str, Any]) -> dict[str, Any]:
        origin = target.origin
        body = {k: call[k] for k in ("json", "data") if call.get(k) is not None}
        params = call.get("params")
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                self._count()
            async with self.broker._gate(self.config.workspace):
                address = await self._resolve(target)
                self.sent += 1
                started = time.perf_counter()
                status, resp_headers, content, encoding = await self._send(
                    method, target, address, headers, params, body, call.get("timeout"))
            ms = round((time.perf_counter() - started) * 1000, 2)
            self._record(method, _with_params(target.display(), params), status=status, ms=ms)
            location = resp_headers.get("location")
            if status not in REDIRECTS or location is None or not self.follow_redirects:
                return {"ok": True, "status_code": status,
                        "headers": {self._scrub(k): self._scrub(v) for k, v in resp_headers.items()},
                        "text": await self.broker.off_loop(self.scrubber.body, _decode(content, encoding))}
            if hop == MAX_REDIRECTS:
                raise CallFailed(f"more than {MAX_REDIRECTS} redirects")
            try:
                target = await self._check(urllib.parse.urljoin(target.display(), location))
            except CallRefused as exc:
                raise CallRefused(f"redirect refused: {exc.reason}") from None
            params = None      # already part of the URL we were sent away from
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = "GET", {}
            if target.origin != origin:   # the secret belongs to the origin it was attached for
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"
                           and not any(s in v for s in self.config.secrets.values())}
        raise AssertionError("unreachable")

    async def _send(self, method: str, target: _Target, address: IPAddress, headers: dict[str, str],
                    params: Any, body: dict[str, Any], timeout: Any) -> tuple[int, dict[str, str], bytes, str | None]:
        seconds = self._seconds(timeout)
        ip = f"[{address.compressed}]" if address.version == 6 else address.compressed
        url = f"{target.scheme}://{ip}:{target.port}{target.path}"
        host_header = target.host if target.literal is None else (
            f"[{target.host}]" if ":" in target.host else target.host)
        if target.port != DEFAULT_PORTS[target.scheme]:
            host_header += f":{target.port}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
        url = _with_params(url, params)
        # Connection: close - the client pools connections by (scheme, IP, port); a kept-alive TLS
        # connection verified for one name must never carry a request for another name on that IP.
        kwargs: dict[str, Any] = {"headers": {**headers, "Host": host_header, "Connection": "close",
                                              OUTBOUND_MARKER: "1"},
                                  "timeout": httpx.Timeout(seconds), "extensions": extensions}
        if "json" in body:
            kwargs["json"] = body["json"]
        elif "data" in body:
            data = body["data"]
            kwargs["content" if type(data) is str else "data"] = data
        cap = self.limits.response_bytes
        try:
            async with self.broker.client.stream(method, url, follow_redirects=False, **kwargs) as resp:
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise CallLimit("response_size_limit", f"response body of {declared} bytes is over the {cap}-byte limit")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise CallLimit("response_size_limit", f"response body is over the {cap}-byte limit")
                    chunks.append(chunk)
                headers_out = {k.lower(): v for k, v in resp.headers.items()}
                return resp.status_code, headers_out, b"".join(chunks), resp.charset_encoding
        except httpx.TimeoutException as exc:
            raise CallFailed(f"{target.display()} timed out after {seconds:.1f}s") from exc
        except httpx.HTTPError as exc:
            raise CallFailed(f"{target.display()}: {type(exc).__name__}: {exc}") from exc

    def _remaining(self) -> float:
        remaining = self.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise CallFailed("no time left in this run")
        return remaining

    def _record(self, method: str, url: object, **fields: Any) -> None:
        if len(self.calls) > self.limits.http_calls:   # the cap bounds calls; this bounds records
            return
        entry: dict[str, Any] = {"method": method, "url": url if type(url) is str else repr(url)[:200]}
        entry.update(fields)
        entry["url"] = self._scrub(entry["url"][:2048])
        for key in ("refused", "error"):
            if key in entry:
                entry[key] = self._scrub(entry[key])
        self.calls.append(entry)

    def _scrub(self, text: str) -> str:
        return self.scrubber.text(text)
