"""The webhook setting and the outbox: durable deliveries cut from the updates feed.

Layout (all in slot {ws:W}, next to the feed they follow; key templates in store/keys.py):

  df:{ws:W}:webhook             str   JSON {url, secret, since_ms, created_at, updated_at, updated_by}
  df:{ws:W}:outbox:cursor       str   id of the last feed entry cut into deliveries
  df:{ws:W}:delivery:<D>        str   JSON delivery record (below); TTL once delivered or failed
  df:{ws:W}:outbox:due          zset  pending delivery id -> next attempt (ms)
  df:{ws:W}:outbox:failed       zset  dead-lettered delivery id -> when (ms)
  df:{ws:W}:outbox:delivered    zset  delivered id -> when (ms), trimmed to the newest 10,000
  df:{ws:W}:outbox:all          zset  every delivery id -> created (ms), trimmed likewise
  df:{ws:W}:outbox:lease        str   name of the process sending this workspace's deliveries

Why cut from the feed rather than written by the apply transaction: the feed entry is already
written exactly once, atomically with the ticket (store/tickets.py). `cut` turns feed entries after
the cursor into delivery records and moves the cursor in ONE transaction (WATCHing the cursor), so
a crash between the two cannot lose or double an entry, and delivery ids are derived from the feed
id (`upd-<feed id>`, `fx-<feed id>-<n>`): cutting the same entry twice writes the same records.

A delivery record: {id, kind: "update"|"effect", feed_id, url (effects only: updates go to the
webhook configured at send time, so fixing a broken URL fixes pending retries), method, headers,
body (the exact JSON sent), state: pending|delivered|failed, attempts, created_at, first_ms,
next_at, last_attempt_at, last_status, last_error, delivered_at, failed_at}.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from redis.exceptions import WatchError

from server.store import keys as K
from server.store.encoding import dumps as _dumps
from server.store.replies import entries, text_or_none, texts
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_webhook", "put_webhook", "delete_webhook", "CUT_BATCH", "Cut", "cut", "due_ids", "get_deliveries",
           "save_attempt", "list_deliveries", "resend", "take_lease", "drop_lease", "pending_count",
           "STATES", "KEEP"]

STATES = ("pending", "delivered", "failed")
KEEP = 10_000                     # delivered / all indexes keep this many newest ids
DELIVERED_TTL_S = 7 * 24 * 3600   # a delivered record stays readable this long
FAILED_TTL_S = 30 * 24 * 3600     # a dead letter stays (and can be re-sent) this long


def feed_ms(feed_id: str) -> int:
    return int(feed_id.split("-", 1)[0])


@guarded
async def get_webhook(store: Store, workspace: str) -> dict[str, Any] | None:
    raw = await store.redis.get(K.webhook(workspace))
    return orjson.loads(raw) if raw else None


@guarded
async def put_webhook(store: Store, workspace: str, config: dict[str, Any]) -> None:
    """Set the webhook. The cursor starts at the feed's end if the outbox never ran here, so a new
    webhook does not receive the feed's history (`since_ms` filters what was cut before it)."""
    r = store.redis
    last = entries(await r.xrevrange(K.feed(workspace), "+", "-", count=1))
    async with r.pipeline(transaction=True) as p:
        p.set(K.webhook(workspace), _dumps(config))
        p.set(K.outbox_cursor(workspace), last[0][0] if last else "0-0", nx=True)
        await p.execute()


@guarded
async def delete_webhook(store: Store, workspace: str) -> bool:
    return bool(await store.redis.delete(K.webhook(workspace)))


def _record(kind: str, delivery_id: str, feed_id: str, body: Any, now_ms: int, now_iso: str,
            url: str | None = None, method: str = "POST",
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": delivery_id, "kind": kind, "feed_id": feed_id, "url": url, "method": method,
            "headers": headers or {}, "body": body, "state": "pending", "attempts": 0,
            "created_at": now_iso, "first_ms": now_ms, "next_at": now_iso,
            "last_attempt_at": None, "last_status": None, "last_error": None,
            "delivered_at": None, "failed_at": None}


def deliveries_for(feed_id: str, entry: dict[str, Any], webhook: dict[str, Any] | None,
                   now_ms: int, now_iso: str) -> list[dict[str, Any]]:
    """What one feed entry becomes: the entry for the configured webhook (if it was set before
    the entry was written) and one delivery per `webhook` effect, to the effect's own URL.

    Every effect in the body gets an `id` (`<run id>.<index>`), stable across retries, so a
    receiver can drop an effect it has already carried out."""
    body = {"cursor": feed_id, **entry}
    body["effects"] = [{**e, "id": f"{entry.get('run_id')}.{i}"} if isinstance(e, dict) else e
                       for i, e in enumerate(entry.get("effects") or [])]
    out = []
    if webhook is not None and feed_ms(feed_id) >= int(webhook.get("since_ms", 0)):
        out.append(_record("update", f"upd-{feed_id}", feed_id, body, now_ms, now_iso))
    for i, effect in enumerate(body["effects"]):
        if isinstance(effect, dict) and effect.get("type") == "webhook" and isinstance(effect.get("url"), str):
            payload = effect["body"] if "body" in effect else {
                "ticket_id": entry.get("ticket_id"), "event_id": entry.get("event_id"),
                "run_id": entry.get("run_id"), "at": entry.get("at"), "effect": effect}
            headers = h if isinstance(h := effect.get("headers"), dict) else {}
            out.append(_record("effect", f"fx-{feed_id}-{i}", feed_id, payload, now_ms, now_iso,
                               url=effect["url"], method=str(effect.get("method") or "POST"),
                               headers={str(k): str(v) for k, v in headers.items()}))
    return out


CUT_BATCH = 200   # feed entries one cut transaction reads at most


class Cut(NamedTuple):
    consumed: int     # feed entries the cursor moved over (0: nothing new)
    deliveries: int   # delivery records they became (0: nothing to send for them)


@guarded
async def cut(store: Store, workspace: str, now_ms: int, now_iso: str, *,
              limit: int = CUT_BATCH) -> Cut:
    """Turn feed entries after the cursor into deliveries, moving the cursor in the same
    transaction."""
    r = store.redis
    ck = K.outbox_cursor(workspace)
    async with r.pipeline(transaction=True) as p:
        while True:
            try:
                await p.watch(ck)
                cursor = text_or_none(await p.get(ck))
                if cursor is None:          # first sight (an install upgraded in place): start now
                    last = entries(await p.xrevrange(K.feed(workspace), "+", "-", count=1))
                    p.multi()
                    p.set(ck, last[0][0] if last else "0-0")
                    await p.execute()
                    return Cut(0, 0)
                batch = entries(await p.xrange(K.feed(workspace), f"({cursor}", "+", count=limit))
                if not batch:
                    return Cut(0, 0)
                raw = await p.get(K.webhook(workspace))
                webhook = orjson.loads(raw) if raw else None
                records = []
                for feed_id, fields in batch:
                    try:
                        entry = orjson.loads(fields["d"])
                    except (KeyError, orjson.JSONDecodeError):
                        continue
                    records += deliveries_for(feed_id, entry, webhook, now_ms, now_iso)
                p.multi()
                for rec in records:
                    p.set(K.delivery(workspace, rec["id"]), _dumps(rec))
                    p.zadd(K.outbox_due(workspace), {rec["id"]: now_ms})
                    p.zadd(K.outbox_all(workspace), {rec["id"]: now_ms})
                if records:
                    p.zremrangebyrank(K.outbox_all(workspace), 0, -KEEP - 1)
                p.set(ck, batch[-1][0])
                await p.execute()
                return Cut(len(batch), len(records))
            except WatchError:
                continue


@guarded
async def due_ids(store: Store, workspace: str, now_ms: int, limit: int) -> list[str]:
    return texts(await store.redis.zrangebyscore(K.outbox_due(workspace), "-inf", now_ms,
                                                 start=0, num=limit))


@guarded
async def get_deliveries(store: Store, workspace: str, ids: list[str]) -> list[dict[str, Any] | None]:
    if not ids:
        return []
    raws = await store.redis.mget([K.delivery(workspace, i) for i in ids])
    return [orjson.loads(raw) if raw else None for raw in raws]


@guarded
async def save_attempt(store: Store, workspace: str, rec: dict[str, Any], next_ms: int | None,
                       now_ms: int) -> None:
    """Store a delivery after an attempt: still pending (due again at next_ms), delivered or
    failed (dead-lettered). One transaction: the record and its indexes move together."""
    w, i = workspace, rec["id"]
    async with store.redis.pipeline(transaction=True) as p:
        if rec["state"] == "pending":
            assert next_ms is not None
            p.set(K.delivery(w, i), _dumps(rec))
            p.zadd(K.outbox_due(w), {i: next_ms})
        elif rec["state"] == "delivered":
            p.set(K.delivery(w, i), _dumps(rec), ex=DELIVERED_TTL_S)
            p.zrem(K.outbox_due(w), i)
            p.zrem(K.outbox_failed(w), i)
            p.zadd(K.outbox_delivered(w), {i: now_ms})
            p.zremrangebyrank(K.outbox_delivered(w), 0, -KEEP - 1)
        else:
            p.set(K.delivery(w, i), _dumps(rec), ex=FAILED_TTL_S)
            p.zrem(K.outbox_due(w), i)
            p.zadd(K.outbox_failed(w), {i: now_ms})
        await p.execute()


_INDEX = {"pending": K.outbox_due, "delivered": K.outbox_delivered, "failed": K.outbox_failed,
          None: K.outbox_all}


@guarded
async def list_deliveries(store: Store, workspace: str, state: str | None, limit: int,
                          offset: int) -> tuple[list[dict[str, Any]], bool]:
    """A page of deliveries, newest first by their index's time (pending: latest retry first),
    and whether there are more. Ids whose record has expired are dropped from the index."""
    key = _INDEX[state](workspace)
    r = store.redis
    ids = texts(await r.zrevrange(key, offset, offset + limit - 1))
    recs = await get_deliveries(store, workspace, ids)
    gone = [i for i, rec in zip(ids, recs, strict=True) if rec is None]
    if gone:
        await r.zrem(key, *gone)
    more = int(await r.zcard(key)) > offset + limit - len(gone)
    return [rec for rec in recs if rec is not None], more


@guarded
async def resend(store: Store, workspace: str, delivery_id: str, now_ms: int,
                 now_iso: str) -> dict[str, Any] | None:
    """Queue a delivery (usually a dead letter) again, with a fresh retry window."""
    r = store.redis
    key = K.delivery(workspace, delivery_id)
    async with r.pipeline(transaction=True) as p:
        while True:
            try:
                await p.watch(key)
                raw = await p.get(key)
                if raw is None:
                    return None
                rec = orjson.loads(raw)
                rec.update(state="pending", first_ms=now_ms, next_at=now_iso, failed_at=None,
                           delivered_at=None)
                p.multi()
                p.set(key, _dumps(rec))
                p.zrem(K.outbox_failed(workspace), delivery_id)
                p.zrem(K.outbox_delivered(workspace), delivery_id)
                p.zadd(K.outbox_due(workspace), {delivery_id: now_ms})
                await p.execute()
                return dict(rec)
            except WatchError:
                continue


@guarded
async def pending_count(store: Store, workspace: str) -> int:
    return int(await store.redis.zcard(K.outbox_due(workspace)))


@guarded
async def take_lease(store: Store, workspace: str, owner: str, ttl_ms: int) -> bool:
    """Hold (or renew) the right to send this workspace's deliveries: one sender at a time, so
    a delivery is never sent by two processes at once (a dead sender's lease expires)."""
    r = store.redis
    key = K.outbox_lease(workspace)
    if await r.set(key, owner, nx=True, px=ttl_ms):
        return True
    if await r.get(key) == owner:
        await r.pexpire(key, ttl_ms)
        return True
    return False


@guarded
async def drop_lease(store: Store, workspace: str, owner: str) -> None:
    key = K.outbox_lease(workspace)
    if await store.redis.get(key) == owner:
        await store.redis.delete(key)
