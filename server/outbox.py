"""Signed webhook delivery with retry: the outbox sender.

Every worker process runs one `Outbox`. Each tick it looks at every workspace (one pipelined probe:
feed head, cut cursor, earliest due delivery) and, for a workspace with work, takes that
workspace's outbox lease (one sender per workspace at a time), cuts new feed entries into
deliveries (store/outbox.py) and sends what is due:

  POST <url>  body = the delivery's JSON, exactly the bytes signed
              Content-Type: application/json
              X-Deskflow-Delivery: <delivery id>        stable across retries: drop duplicates
              X-Deskflow-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook secret>
                                        (the feed's own deliveries only, see below)
              X-Deskflow-Attempt: <n>

Only the service's own feed deliveries (kind "update") are signed with the webhook secret. A
rule's `webhook` action (or a script's returned one) chooses its URL, headers and body: signed
with that secret it would be a signing oracle, letting a manager forge feed entries the receiver
trusts (issue 13 B9). Effect deliveries therefore carry no X-Deskflow-Signature, and one whose
headers name any `X-Deskflow-*` header is dead-lettered unsent, with the reason recorded (the rule
routes refuse such headers when the rule is saved; a script's returned actions meet this check).

Workspaces are sent concurrently: `run` starts one pass per workspace with work, at most
`_PARALLEL_WORKSPACES` at a time, and never waits for one workspace's pass before starting
another's, so a slow receiver delays only its own workspace's deliveries (issue 13 A4). Every
request has the broker's total deadline (webhook_timeout_s over DNS, connect, headers and body).

Every request goes through the script broker (sandbox/broker.py) with the workspace's allow-list:
the same URL shape rules, allow-list, DNS-then-address checks (no private, loopback, link-local or
metadata address unless the allow-list names that IP) and connect-to-the-checked-IP as a script's
ctx.http, on every attempt, so a DNS answer that changes after the URL was saved cannot redirect a
delivery inside. Redirects are not followed (a 3xx is a failed attempt).

A 2xx is delivered. Anything else is retried: first after about `webhook_retry_base_s`, doubling,
with +-20% jitter, at most `webhook_retry_cap_s` apart, until `webhook_retry_for_s` (24 h by
default) have passed since the delivery was created; the attempt at the end of that window is the
last, then the delivery is dead-lettered (state `failed`, listed and re-sendable through the API).
A refusal by the address rules or allow-list is dead-lettered at once: retrying cannot help until
an admin changes the allow-list, and re-sending after that works. Delivery is at least once: a
sender that dies after the receiver answered but before the record was saved leaves the delivery
pending, and the next lease holder sends it again with the same delivery id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from sandbox import Broker, BrokerConfig, Limits
from server.metrics import count_webhook_delivery
from server.scripting import broker_config, new_broker
from server.settings import Settings
from server.store import keys as K
from server.store.replies import texts
from server.store import outbox as O
from server.store.connect import Store
from server.store.errors import StoreUnavailable, guarded

__all__ = ["Outbox", "sign", "next_delay"]

log = logging.getLogger("deskflow.outbox")

_SEND_BATCH = 20          # deliveries sent per workspace per tick, all at once: a tick takes
                          # at most about one request timeout, well inside the lease
_WORKSPACES_TTL_S = 1.0   # how long the workspace list is reused between ticks (a new
                          # workspace waits at most this long for its first delivery)
_PARALLEL_WORKSPACES = 32  # workspace passes in flight at once in one process
_OWN_HEADERS = frozenset({"content-type", "user-agent", "x-deskflow-delivery", "x-deskflow-attempt",
                          "x-deskflow-signature"})


def sign(secret: str, body: bytes) -> str:
    """The X-Deskflow-Signature value: `sha256=` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Retry jitter from a generator of our own, not the `random` module's shared one: a service in
# another thread's loop (tests drive the app beside Hypothesis, which checks that nothing moves the
# global state while it draws) must not change the process-wide random state.
_JITTER = random.Random()


def next_delay(attempts: int, base_s: float, cap_s: float, rand: Callable[[], float] = _JITTER.random) -> float:
    """Seconds before the next try after `attempts` failed ones: base * 2^(attempts-1), capped,
    with +-20% jitter (so receivers coming back up are not hit by every sender at once)."""
    delay = min(cap_s, base_s * 2.0 ** max(0, attempts - 1))
    return max(0.001, delay * (0.8 + 0.4 * rand()))


def _iso(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outbox:
    def __init__(self, *, store: Store, settings: Settings | None = None, name: str | None = None,
                 broker: Broker | None = None, clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = _JITTER.random) -> None:
        self.store = store
        self.settings = settings or store.settings
        self.name = name or f"outbox-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._broker = broker
        self._own_broker = broker is None
        self.clock = clock
        self.rand = rand
        self._stopping = asyncio.Event()
        self._workspaces: tuple[float, list[str]] = (0.0, [])
        self.sent = 0
        self._passes: dict[str, asyncio.Task[bool]] = {}     # workspace -> its pass in flight
        # set by a pass that made or sent deliveries, and by a worker of this process that applied
        # a run with a `webhook` effect (server/apply.py): the next round starts at once
        self._wake = store.outbox_wakeup.waiter()
        self._parallel = asyncio.Semaphore(_PARALLEL_WORKSPACES)

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = new_broker()
        return self._broker

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def aclose(self) -> None:
        if self._own_broker and self._broker is not None:
            await self._broker.aclose()
            self._broker = None

    async def run(self) -> None:
        """Start workspace passes until stop(); an outage is logged and waited out, never fatal.
        Passes run on their own: a workspace whose receiver hangs holds only its own pass."""
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self._dispatch()
                except StoreUnavailable as exc:
                    log.warning("outbox: store unavailable, retrying: %s", exc)
                except Exception:  # a bug must not stop every workspace's deliveries for good
                    log.exception("outbox: dispatch failed; trying again")
                # A pass that made or sent deliveries wakes us at once; one that only moved a
                # cursor over feed entries with nothing to deliver does not: chasing the feed of a
                # busy workspace without a webhook cost a transaction every few events, which was
                # an eighth of serve's round trips at 300 events/s (bench/RESULTS.md, session 16).
                # A run with a `webhook` effect applied in this process wakes us (server/apply.py);
                # else the next round is webhook_poll_s away, as for any idle outbox.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_s)
        finally:
            passes = list(self._passes.values())
            if passes:
                await asyncio.wait(passes, timeout=self.settings.webhook_timeout_s + 5)
            for task in passes:
                task.cancel()
            await asyncio.gather(*passes, return_exceptions=True)
            await self._release()
            await self.aclose()
            self.store.outbox_wakeup.forget(self._wake)

    async def _dispatch(self) -> None:
        for workspace in await self._with_work(int(self.clock() * 1000)):
            if workspace in self._passes:
                continue
            task = asyncio.create_task(self._bounded_pass(workspace), name=f"deskflow-outbox-{workspace}")
            self._passes[workspace] = task
            task.add_done_callback(functools.partial(self._pass_done, workspace))

    def _pass_done(self, workspace: str, task: asyncio.Task[bool]) -> None:
        self._passes.pop(workspace, None)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, StoreUnavailable):
            log.warning("outbox: store unavailable for %s: %s", workspace, exc)
        elif exc is not None:
            log.error("outbox: pass of workspace %s failed", workspace, exc_info=exc)
        elif task.result():
            self._wake.set()

    async def _bounded_pass(self, workspace: str) -> bool:
        async with self._parallel:
            return await self._workspace_pass(workspace)

    async def _release(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            for workspace in self._workspaces[1]:
                await O.drop_lease(self.store, workspace, self.name)

    async def _list_workspaces(self) -> list[str]:
        at, cached = self._workspaces
        if time.monotonic() - at < _WORKSPACES_TTL_S and cached:
            return cached
        names = sorted(texts(await self.store.redis.hkeys(K.WORKSPACES)))
        self._workspaces = (time.monotonic(), names)
        return names

    @guarded
    async def _with_work(self, now_ms: int) -> list[str]:
        """The workspaces with feed entries not yet cut or deliveries due (one pipelined read)."""
        workspaces = await self._list_workspaces()
        if not workspaces:
            return []
        async with self.store.redis.pipeline(transaction=False) as p:
            for w in workspaces:
                p.xrevrange(K.feed(w), "+", "-", count=1)
                p.get(K.outbox_cursor(w))
                p.zrangebyscore(K.outbox_due(w), "-inf", now_ms, start=0, num=1)
            got = await p.execute()
        out = []
        for i, w in enumerate(workspaces):
            head, cursor, due = got[3 * i], got[3 * i + 1], got[3 * i + 2]
            if due or (head and head[0][0] != cursor):
                out.append(w)
        return out

    async def tick(self) -> bool:
        """One pass over every workspace with work, all at once (bounded); True if any deliveries
        were made or sent. `run` does not use it: there no workspace waits for another's pass."""
        work = await self._with_work(int(self.clock() * 1000))
        done = await asyncio.gather(*(self._bounded_pass(w) for w in work))
        return any(done)

    async def _workspace_pass(self, workspace: str) -> bool:
        if not await O.take_lease(self.store, workspace, self.name,
                                  int(self.settings.webhook_timeout_s * 3000) + 30_000):
            return False
        busy = False
        now_ms = int(self.clock() * 1000)
        while True:   # what was there when the pass began; what comes meanwhile is the next's
            cut = await O.cut(self.store, workspace, now_ms, _iso(now_ms), limit=O.CUT_BATCH)
            busy = busy or cut.deliveries > 0
            if cut.consumed < O.CUT_BATCH:
                break
        return await self._send_due(workspace) or busy

    async def _send_due(self, workspace: str) -> bool:
        now_ms = int(self.clock() * 1000)
        ids = await O.due_ids(self.store, workspace, now_ms, _SEND_BATCH)
        if not ids:
            return False
        records = [r for r in await O.get_deliveries(self.store, workspace, ids) if r is not None]
        webhook = await O.get_webhook(self.store, workspace)
        config = await broker_config(self.store, workspace)
        await asyncio.gather(*(self._attempt(workspace, r, webhook, config) for r in records))
        return True

    async def _attempt(self, workspace: str, rec: dict[str, Any], webhook: dict[str, Any] | None,
                       config: BrokerConfig) -> None:
        s = self.settings
        attempt = int(rec.get("attempts", 0)) + 1
        body = orjson.dumps(rec["body"])
        url = rec.get("url") if rec["kind"] == "effect" else (webhook or {}).get("url")
        status: int | None = None
        own = [str(k) for k in (rec.get("headers") or {}) if str(k).lower().startswith("x-deskflow-")]
        if url is None:
            outcome, error = "refused", "no webhook is configured (it was removed); set one and re-send"
        elif rec["kind"] == "effect" and own:
            outcome, error = "refused", (f"a webhook action may not set {', '.join(sorted(own))}: "
                                         f"X-Deskflow-* headers are the service's own; not sent")
        else:
            headers = {k: v for k, v in (rec.get("headers") or {}).items() if str(k).lower() not in _OWN_HEADERS}
            headers.update({"Content-Type": "application/json", "User-Agent": "deskflow-webhook/1",
                            "X-Deskflow-Delivery": rec["id"], "X-Deskflow-Attempt": str(attempt)})
            if rec["kind"] == "update" and webhook and webhook.get("secret"):   # never an effect's
                headers["X-Deskflow-Signature"] = sign(webhook["secret"], body)
            request = {"method": rec.get("method") or "POST", "url": url, "headers": headers,
                       "data": body.decode(), "timeout": s.webhook_timeout_s}
            limits = Limits(wall_s=s.webhook_timeout_s + 1, http_calls=1,
                            http_timeout_s=min(s.webhook_timeout_s, 30.0), response_bytes=64 * 1024)
            # The secrets are passed for {{secret:NAME}} in a webhook action's headers; nothing
            # else of them reaches the request, and the broker scrubs them from what it returns.
            reply, _ = await self.broker.call(config, request, limits=limits, follow_redirects=False)
            status = reply.get("status_code")
            if reply.get("ok") and status is not None and 200 <= status < 300:
                outcome, error = "delivered", None
            elif reply.get("ok"):
                outcome = "retry"
                error = (f"HTTP {status}: redirects are not followed" if 300 <= (status or 0) < 400
                         else f"HTTP {status}")
            elif reply.get("kind") == "refused":
                outcome, error = "refused", str(reply.get("message"))
            else:
                outcome, error = "retry", str(reply.get("message"))
        now_ms = int(self.clock() * 1000)
        rec = {**rec, "attempts": attempt, "last_attempt_at": _iso(now_ms), "last_status": status,
               "last_error": error}
        next_ms = None
        if outcome == "delivered":
            rec.update(state="delivered", delivered_at=_iso(now_ms), next_at=None)
            self.sent += 1
        else:
            deadline = int(rec.get("first_ms", now_ms)) + int(s.webhook_retry_for_s * 1000)
            if outcome == "refused" or now_ms >= deadline:
                rec.update(state="failed", failed_at=_iso(now_ms), next_at=None)
                log.warning("webhook delivery %s dead-lettered after %d attempts: %s",
                            rec["id"], attempt, error, extra={"workspace": workspace})
            else:
                delay = next_delay(attempt, s.webhook_retry_base_s, s.webhook_retry_cap_s, self.rand)
                next_ms = min(now_ms + int(delay * 1000), deadline)
                rec.update(next_at=_iso(next_ms))
        await O.save_attempt(self.store, workspace, rec, next_ms, now_ms)
        count_webhook_delivery(rec["state"] if next_ms is None else "retrying")
