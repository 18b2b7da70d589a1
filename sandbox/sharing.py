"""What the broker's tenants share, and the bounds that keep one from taking it all (issue 13 A4).

    Broker(Sharing): gate(workspace) around every request, lookup() for DNS, is_own() for the
    service's own listeners.

* Requests in flight: at most PER_WORKSPACE_CALLS per workspace, so one tenant's hanging calls
  cannot hold the client's whole connection pool (100) while every other tenant's calls fail.
* DNS: the system resolver blocks a thread and cannot be cancelled. It runs on the broker's own
  DNS_THREADS threads (never the loop's default executor, which the worker's passes and everything
  else share), at most DNS_PER_WORKSPACE per workspace, counted until the thread is really done.
* Scrubbing a large body (sandbox/scrub.py: regex passes over up to the response limit) runs on
  SCRUB_THREADS threads of its own, so the event loop keeps serving every other tenant meanwhile.
* The service itself: `own_endpoints` lists its listeners; a request to one is refused (for a
  0.0.0.0 / :: or loopback listener, on any address of this machine, a public one an interface
  has included, asked of the kernel by `is_local_address`; for 0.0.0.0 / :: also any private
  or link-local address).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from .allowlist import IPAddress

Resolver = Callable[[str, int], Awaitable[list[str]]]
# The service's own listeners as (host, port), e.g. [("127.0.0.1", 8080)] or [("0.0.0.0", 8080)].
Endpoints = Callable[[], Iterable[tuple[str, int]]]

# What a connection to the unspecified address (0.0.0.0, ::) reaches: the machine's own loopback.
# An admin may allow-list `http://0.0.0.0:6379` literally, and that reached a store or listener
# bound to 127.0.0.1 (is_own compared 0.0.0.0 with 127.0.0.1 and found them different).
LOOPBACK: dict[int, IPAddress] = {4: ipaddress.IPv4Address("127.0.0.1"), 6: ipaddress.IPv6Address("::1")}

PER_WORKSPACE_CALLS = 8      # requests in flight per workspace (the client's pool holds 100)
DNS_THREADS = 8              # the broker's own resolver threads
SCRUB_THREADS = 2            # threads that scrub bodies over SCRUB_INLINE_CHARS
SCRUB_INLINE_CHARS = 64 * 1024
DNS_PER_WORKSPACE = 2        # lookups in flight per workspace (a thread stays busy until the
                             # system resolver gives up, even after our deadline)


class Sharing:
    def __init__(self, *, resolver: Resolver | None, own_endpoints: Endpoints | None,
                 per_workspace: int) -> None:
        self.resolver = resolver          # None: the system resolver on the broker's own threads
        self.own_endpoints = own_endpoints
        self.per_workspace = per_workspace
        self._gates: dict[str, list[Any]] = {}       # workspace -> [Semaphore, holders + waiters]
        self._dns_busy: dict[str, int] = {}
        self._dns = concurrent.futures.ThreadPoolExecutor(DNS_THREADS, thread_name_prefix="deskflow-dns")
        self._scrub = concurrent.futures.ThreadPoolExecutor(SCRUB_THREADS, thread_name_prefix="deskflow-scrub")

    def close_sharing(self) -> None:
        self._dns.shutdown(wait=False, cancel_futures=True)
        self._scrub.shutdown(wait=False, cancel_futures=True)

    async def off_loop(self, fn: Callable[[str], str], text: str) -> str:
        """`fn(text)` inline when the text is small, else on the scrub threads."""
        if len(text) <= SCRUB_INLINE_CHARS:
            return fn(text)
        return await asyncio.get_running_loop().run_in_executor(self._scrub, fn, text)

    def in_flight(self, workspace: str) -> int:
        entry = self._gates.get(workspace)
        return 0 if entry is None else min(entry[1], self.per_workspace)

    @contextlib.asynccontextmanager
    async def _gate(self, workspace: str) -> AsyncIterator[None]:
        """At most `per_workspace` requests of one workspace at a time; the entry goes away
        when the workspace has none, so the map stays as small as the set of busy workspaces."""
        entry = self._gates.setdefault(workspace, [asyncio.Semaphore(self.per_workspace), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._gates.get(workspace) is entry:
                del self._gates[workspace]

    async def lookup(self, workspace: str, host: str, port: int) -> list[str]:
        """The addresses of `host`. The system resolver runs on the broker's own threads, at most
        DNS_PER_WORKSPACE per workspace counted until the thread is really done."""
        if self.resolver is not None:
            return await self.resolver(host, port)
        if self._dns_busy.get(workspace, 0) >= DNS_PER_WORKSPACE:
            raise OSError(f"this workspace already has {DNS_PER_WORKSPACE} DNS lookups in flight")
        loop = asyncio.get_running_loop()
        self._dns_busy[workspace] = self._dns_busy.get(workspace, 0) + 1

        def release() -> None:
            left = self._dns_busy.get(workspace, 1) - 1
            if left > 0:
                self._dns_busy[workspace] = left
            else:
                self._dns_busy.pop(workspace, None)

        future = self._dns.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(release))
        infos = await asyncio.wrap_future(future)
        return [str(info[4][0]) for info in infos]

    def is_own(self, address: IPAddress, port: int) -> bool:
        """Whether (address, port) is one of this service's own listeners."""
        if self.own_endpoints is None:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if address.is_unspecified:   # connecting to 0.0.0.0 or :: reaches this very machine
            address = LOOPBACK[address.version]
        for host, own_port in self.own_endpoints():
            if own_port != port:
                continue
            try:
                listen = ipaddress.ip_address(host)
            except ValueError:
                continue
            if listen.is_unspecified or listen.is_loopback:
                # every interface: any address this machine may have. A loopback one too: it is
                # how this process reaches the listener (the store's URL, the address a request
                # arrived on), not what the listener is bound to (a Redis started without `bind`
                # answers on every interface, and so does a `serve --host 0.0.0.0` first called
                # through 127.0.0.1)
                if address.is_loopback or address.is_unspecified or is_local_address(address):
                    return True
                if listen.is_unspecified and (address.is_private or address.is_link_local):
                    return True
            elif listen == address:
                return True
        return False


def is_local_address(address: IPAddress) -> bool:
    """Whether `address` is one of this machine's own (a public one on an interface included),
    asked of the kernel: a socket binds to an address only when the machine has it
    (EADDRNOTAVAIL otherwise; where non-local binds are allowed every address counts, which
    refuses more, never less). Asked only for a port a 0.0.0.0 / :: listener of ours has."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True

