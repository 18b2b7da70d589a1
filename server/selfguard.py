"""The broker is not a way into deskflow's own API (issue 13 B11).

A rule's `http_request` or a script's `ctx.http` runs with the service's network position: with
deskflow's own address on a workspace's allow-list, a manager's rule carrying a stored admin key
could call `POST /v1/keys` as that key. Two independent refusals:

* by address: `SelfCallGuard` records the (host, port) of every listener a request arrives on
  (the ASGI `server` of each scope) for as long as its app runs (forgotten at the app's lifespan
  shutdown: the port is then anyone's), and the broker refuses to connect to any of them
  (`listeners()` is the `own_endpoints` the service's brokers are built with; a 0.0.0.0 / ::
  listener covers every loopback and private address on its port);
* by address, the store too: `note_store` adds the (host, port) the service's Redis URL resolves
  to (both loopbacks when it is a loopback), so a workspace allow-list naming
  `http://127.0.0.1:6379` does not put a tenant's requests on the shared store's port (the
  embedded store listens on a unix socket only, which the broker has no scheme for); with a
  Redis Cluster, `note_cluster` makes every node the cluster knows count too, with its bus
  port (the URL names one seed node; the others, and nodes a reshard or failover adds, are
  learnt from the cluster): the client's slot map, read each time `listeners()` is asked, and
  CLUSTER NODES, read when the store opens and again every `CLUSTER_REFRESH_S` — the slot map
  alone missed replicas the seed had not yet listed for their master when the client started,
  so on a new cluster a tenant could reach a replica's port until the map's next refresh;
* by marker: the broker sends `X-Deskflow-Outbound: 1` with every request and never lets a script
  remove it, and `SelfCallGuard` answers any request carrying it with 403 — whatever proxy,
  load balancer or DNS name sits between the broker and this service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
import weakref
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.broker import OUTBOUND_MARKER
from server.errors import error_response

__all__ = ["CLUSTER_REFRESH_S", "STORE", "SelfCallGuard", "forget_cluster", "forget_listeners",
           "listeners", "note_cluster", "note_listener", "note_store"]

_MARKER = OUTBOUND_MARKER.lower().encode()
# this process's listeners, a handful at most: each -> who noted it (a SelfCallGuard's id while
# its app runs, STORE for the store's endpoints); an app's listeners are forgotten when it shuts
# down, so a port it listened on and a later process or server reuses (a workspace's allow-listed
# receiver, say) is not refused for good, and the cap is not reached by apps long gone
_LISTENERS: dict[tuple[str, int], set[int]] = {}
_MAX_LISTENERS = 64
STORE = 0
CLUSTER_REFRESH_S = 1.0                    # CLUSTER NODES read again this often while a store is open
_MAX_NODES = 1024                          # nodes remembered a cluster (CLUSTER NODES is the cluster's answer)
# the cluster clients of this process (note_cluster): each -> every node CLUSTER NODES has listed
# while it was open (a node that failed stays: its port is still the store's until the client
# closes); and each one's task reading it again
_KNOWN: weakref.WeakKeyDictionary[Any, set[tuple[str, int]]] = weakref.WeakKeyDictionary()
_WATCHERS: weakref.WeakKeyDictionary[Any, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def note_listener(host: str, port: int, owner: int = STORE) -> None:
    """Remember a listener of this process (an IP literal; names are ignored), noted by `owner`."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    key = (host, int(port))
    if key in _LISTENERS or len(_LISTENERS) < _MAX_LISTENERS:
        _LISTENERS.setdefault(key, set()).add(owner)


def forget_listeners(owner: int) -> None:
    """What `owner` noted is no longer its own (its app shut down), unless another still holds it."""
    for key, owners in list(_LISTENERS.items()):
        owners.discard(owner)
        if not owners:
            del _LISTENERS[key]


async def note_store(url: str | None) -> None:
    """Remember the TCP endpoints of the store at `url` (redis:// or rediss://) as our own."""
    try:
        parts = urllib.parse.urlsplit(url or "")
        host, port = parts.hostname, parts.port or 6379
    except ValueError:
        return
    if parts.scheme not in ("redis", "rediss") or not host:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return
    for address in {str(info[4][0]) for info in infos}:
        for endpoint in _with_loopbacks(address, port):
            note_listener(*endpoint)


async def note_cluster(client: Any) -> None:
    """Count every node of a cluster client as the store's own while it is open: its slot map
    (redis-py's `nodes_manager.nodes_cache`, as it is whenever `listeners()` is asked) and what
    CLUSTER NODES lists, read now and every CLUSTER_REFRESH_S until `forget_cluster`; held weakly."""
    _KNOWN[client] = set()
    await _read_nodes(client)
    _WATCHERS[client] = asyncio.get_running_loop().create_task(_watch(weakref.ref(client)))


async def _read_nodes(client: Any) -> None:
    """Add the nodes and bus ports CLUSTER NODES lists (asked of the first node that answers) to
    what `client` is known by. Rows are `<id> <ip>:<port>@<bus port>[,<hostname>] <flags> ...`."""
    known = _KNOWN.get(client)
    if known is None:
        return
    nodes = getattr(getattr(client, "nodes_manager", None), "nodes_cache", None) or {}
    for node in list(nodes.values()):
        try:   # the command as two words: redis-py's parser for "CLUSTER NODES" drops the bus port
            text = await asyncio.wait_for(node.execute_command("CLUSTER", "NODES"), 2.0)
        except Exception:   # this node is down or slow: ask the next (the slot map still counts)
            continue
        for line in str(text).splitlines()[:_MAX_NODES]:
            fields = line.split()
            if len(fields) < 2 or len(known) >= _MAX_NODES:
                return
            address, _, bus = fields[1].split(",")[0].partition("@")
            host, _, port = address.rpartition(":")
            for number in (port, bus):
                if number.isdigit() and 0 < int(number) < 65536:
                    known.update(_with_loopbacks(host.strip("[]"), int(number)))
        return


async def _watch(ref: weakref.ref[Any]) -> None:
    """CLUSTER NODES again every CLUSTER_REFRESH_S while the client lives and is noted."""
    while True:
        await asyncio.sleep(CLUSTER_REFRESH_S)
        client = ref()
        if client is None or client not in _KNOWN:
            return
        await _read_nodes(client)
        del client


def forget_cluster(client: Any) -> None:
    """A closed cluster client's nodes are no longer the store's (their ports may be reused by
    anything, a workspace's allow-listed receiver included)."""
    _KNOWN.pop(client, None)
    task = _WATCHERS.pop(client, None)
    if task is not None:
        task.cancel()


def _with_loopbacks(address: str, port: int) -> list[tuple[str, int]]:
    """(address, port), and both loopbacks when it is one: a server bound to localhost often
    answers on both families. Names give nothing (the cluster announces its nodes by IP)."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        return []
    return [(address, port), ("127.0.0.1", port), ("::1", port)] if loopback else [(address, port)]


def listeners() -> list[tuple[str, int]]:
    own = set(_LISTENERS)
    for client, known in list(_KNOWN.items()):
        nodes = getattr(getattr(client, "nodes_manager", None), "nodes_cache", None) or {}
        for node in list(nodes.values()):
            own.update(_with_loopbacks(str(node.host), int(node.port)))
        own.update(known)
    return sorted(own)


class SelfCallGuard:
    """Pure ASGI: records the listener, refuses requests the broker made."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.noted: set[tuple[Any, Any]] = set()   # the servers this app's requests arrived on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._on_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        if server and server[1] is not None and (server[0], server[1]) not in self.noted:
            self.noted.add((server[0], server[1]))
            note_listener(str(server[0]), int(server[1]), id(self))
        if any(name == _MARKER for name, _ in scope.get("headers", ())):
            response = error_response(
                403, "self_call_refused", "Requests made by deskflow's HTTP broker (scripts, "
                "http_request and webhook actions) may not call deskflow's own API.")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _on_shutdown(self, send: Send) -> Send:
        """`send` for the lifespan: once the app has shut down, its listeners are not ours."""
        async def sending(message: Any) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                forget_listeners(id(self))
                self.noted.clear()
            await send(message)
        return sending
