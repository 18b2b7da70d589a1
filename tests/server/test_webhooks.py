"""Signed webhook delivery (API.md "Tickets, runs and updates" and "Shapes and details"): the
setting, the signature, retries against a receiver that fails first, dead letters and re-sending,
address rules at set and at delivery, webhook actions, and at-least-once across senders."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from server_helpers import Workspace, event
from starlette.testclient import TestClient
from webhook_receiver import Receiver

from server.app import create_app
from server.outbox import Outbox, next_delay, sign
from server.settings import Settings
from server.store import keys as K
from server.store import outbox as O
from server.store.connect import close_store, open_store

SECRET = "whsec-3c1f0a"
TAG_RULE = {"name": "tag new", "triggers": ["ticket.created"], "enabled": True,
            "actions": [{"type": "add_tags", "tags": ["seen"]}]}


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_retry_base_s=0.05, webhook_retry_cap_s=0.2,
                               webhook_retry_for_s=30.0, webhook_poll_s=0.02, webhook_timeout_s=2.0)


@pytest.fixture
def app_client(fast: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fast, worker=True)) as c:
        yield c


@pytest.fixture
def wsp(app_client: TestClient) -> Workspace:
    return Workspace(app_client)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _hook(ws: Workspace, url: str, *, allow: list[str] | None = None, secret: str = SECRET) -> Any:
    if allow is not None:
        r = ws.client.put("/v1/allowlist", json={"hosts": allow}, headers=ws.h())
        assert r.status_code == 200, r.text
    return ws.client.put("/v1/webhook", json={"url": url, "secret": secret}, headers=ws.h())


def _deliveries(ws: Workspace, state: str | None = None) -> list[dict[str, Any]]:
    q = f"?state={state}" if state else ""
    r = ws.client.get(f"/v1/webhook/deliveries{q}", headers=ws.h())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _cut_to_head(ws: Workspace) -> None:
    """Return once the outbox has cut every feed entry of `ws` so far (into deliveries, or into
    nothing while no webhook is set): its cursor is the feed's last entry."""
    store = ws.client.app_state["store"]  # type: ignore[attr-defined]

    async def both() -> tuple[str | None, str | None]:
        last = await store.redis.xrevrange(K.feed(ws.id), count=1)
        cursor = await store.redis.get(K.outbox_cursor(ws.id))
        text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
        return (text(last[0][0]) if last else None), text(cursor)

    _until(lambda: (lambda head, cursor: head is not None and head == cursor)(
        *ws.client.portal.call(both)))  # type: ignore[union-attr]


# -- the setting ----------------------------------------------------------------------------------

def test_setting_is_admin_only_and_never_shows_the_secret(wsp: Workspace, rx: Receiver) -> None:
    r = _hook(wsp, rx.url + "/hook", allow=[rx.url])
    assert r.status_code == 200, r.text
    assert r.json()["url"] == rx.url + "/hook" and r.json()["secret_set"] is True
    got = wsp.client.get("/v1/webhook", headers=wsp.h())
    assert got.status_code == 200 and SECRET not in got.text
    assert wsp.client.get("/v1/webhook", headers=wsp.h("developer")).status_code == 403
    # changing the URL keeps the secret when none is sent
    r = wsp.client.put("/v1/webhook", json={"url": rx.url + "/v2"}, headers=wsp.h())
    assert r.status_code == 200 and r.json()["secret_set"] is True
    assert wsp.client.delete("/v1/webhook", headers=wsp.h()).status_code == 204
    assert wsp.client.get("/v1/webhook", headers=wsp.h()).status_code == 404
    assert wsp.client.delete("/v1/webhook", headers=wsp.h()).status_code == 404
    audit = wsp.client.get("/v1/audit?target=webhook", headers=wsp.h()).json()["items"]
    assert [e["action"] for e in audit] == ["webhook.delete", "webhook.set", "webhook.set"]
    assert SECRET not in orjson.dumps(audit).decode()


@pytest.mark.parametrize(("url", "allow", "words"), [
    ("http://127.0.0.1:{port}/h", [], "allow-list"),
    ("http://localhost:{port}/h", ["http://localhost:{port}"], "loopback"),
    ("http://2130706433:{port}/h", ["http://127.0.0.1:{port}"], "dotted-quad"),
    ("http://0x7f.1:{port}/h", ["http://127.0.0.1:{port}"], "dotted-quad"),
    ("http://[::ffff:127.0.0.1]:{port}/h", ["http://127.0.0.1:{port}"], "allow-list"),
    ("ftp://127.0.0.1:{port}/h", ["http://127.0.0.1:{port}"], "scheme"),
    ("http://user@127.0.0.1:{port}/h", ["http://127.0.0.1:{port}"], "credentials"),
    ("http://127.0.0.1:{port}/h h", ["http://127.0.0.1:{port}"], "spaces"),
])
def test_url_is_checked_when_set(wsp: Workspace, rx: Receiver, url: str, allow: list[str],
                                 words: str | None) -> None:
    fill = {"port": rx.port}
    r = _hook(wsp, url.format(**fill), allow=[a.format(**fill) for a in allow])
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"][0]
    assert detail["path"] == "url"
    if words:
        assert words in detail["reason"], detail
    assert wsp.client.get("/v1/webhook", headers=wsp.h()).status_code == 404


def test_metadata_address_is_named(wsp: Workspace) -> None:
    r = _hook(wsp, "http://169.254.169.254/latest", allow=["http://169.254.169.254"])
    # a literal allow-list entry wins over the public-address rule (as for scripts), so the
    # metadata address is only reachable if an admin lists that very IP; unlisted it is refused
    assert r.status_code == 200, r.text
    r = _hook(wsp, "http://169.254.169.254/latest", allow=["http://example.com"])
    assert r.status_code == 422 and "allow-list" in r.text


@pytest.mark.parametrize("body", [{}, {"url": 5, "secret": "x"}, {"url": "http://a.b", "secret": ""},
                                  {"url": "http://a.b", "secret": "x", "extra": 1},
                                  {"url": "http://a.b", "secret": "x" * 257}])
def test_bad_setting_bodies_are_422(wsp: Workspace, body: dict[str, Any]) -> None:
    r = wsp.client.put("/v1/webhook", json=body, headers=wsp.h())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]


# -- delivery -------------------------------------------------------------------------------------

def test_update_is_posted_signed_with_the_feed_entry(wsp: Workspace, rx: Receiver) -> None:
    assert _hook(wsp, rx.url + "/hook", allow=[rx.url]).status_code == 200
    wsp.rule(**TAG_RULE)
    wsp.send(event("e1"))
    [got] = rx.wait_for(1)
    assert got.method == "POST" and got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.verify(SECRET)
    assert not got.verify("another secret")
    body = orjson.loads(got.body)
    [entry] = wsp.client.get("/v1/updates", headers=wsp.h("viewer")).json()["updates"]
    assert body["cursor"] == entry["cursor"]
    assert got.headers["x-deskflow-delivery"] == f"upd-{entry['cursor']}"
    for key in ("ticket_id", "event_id", "run_id", "changes", "at"):
        assert body[key] == entry[key]
    assert body["changes"]["tags"]["added"] == ["seen"]
    [d] = _until(lambda: _deliveries(wsp, "delivered"))
    assert d["id"] == got.headers["x-deskflow-delivery"] and d["attempts"] == 1
    assert d["last_status"] == 200 and d["state"] == "delivered"


def test_effects_carry_stable_ids(wsp: Workspace, rx: Receiver) -> None:
    assert _hook(wsp, rx.url, allow=[rx.url]).status_code == 200
    wsp.rule(name="note", triggers=["ticket.created"], enabled=True,
             actions=[{"type": "notify", "target": "ops", "message": "new {{ticket.id}}"},
                      {"type": "send_message", "template": "hi"}])
    run_id = wsp.send(event("e1"))["run_id"]
    [got] = rx.wait_for(1)
    effects = orjson.loads(got.body)["effects"]
    assert [e["type"] for e in effects] == ["notify", "send_message"]
    assert [e["id"] for e in effects] == [f"{run_id}.0", f"{run_id}.1"]


def test_retried_until_the_receiver_answers(wsp: Workspace, rx: Receiver) -> None:
    rx.fail_first = 3
    assert _hook(wsp, rx.url, allow=[rx.url]).status_code == 200
    wsp.rule(**TAG_RULE)
    wsp.send(event("e1"))
    rx.wait_for(1)
    assert [r.status for r in rx.requests] == [500, 500, 500, 200]
    ids = {r.headers["x-deskflow-delivery"] for r in rx.requests}
    assert len(ids) == 1                                    # one delivery, four attempts
    assert [r.headers["x-deskflow-attempt"] for r in rx.requests] == ["1", "2", "3", "4"]
    assert all(r.verify(SECRET) for r in rx.requests)
    assert len({r.body for r in rx.requests}) == 1          # the same bytes every time
    [d] = _until(lambda: _deliveries(wsp, "delivered"))
    assert d["attempts"] == 4 and d["last_error"] == "HTTP 500" or d["attempts"] == 4


def test_dead_lettered_after_the_window_then_resent(fast: Settings, rx: Receiver) -> None:
    short = dataclasses.replace(fast, webhook_retry_for_s=1.5)  # >= 3 tries fit, on a loaded machine too
    rx.status = 503
    with TestClient(create_app(short, worker=True)) as c:
        ws = Workspace(c)
        assert _hook(ws, rx.url, allow=[rx.url]).status_code == 200
        ws.rule(**TAG_RULE)
        ws.send(event("e1"))
        [dead] = _until(lambda: _deliveries(ws, "failed"))
        assert dead["state"] == "failed" and dead["attempts"] >= 3
        assert dead["last_status"] == 503 and dead["last_error"] == "HTTP 503"
        assert _deliveries(ws, "pending") == [] and _deliveries(ws, "delivered") == []
        tries = len(rx.requests)
        time.sleep(0.3)
        assert len(rx.requests) == tries                    # no more tries once dead
        rx.status = 200
        r = c.post(f"/v1/webhook/deliveries/{dead['id']}/resend", headers=ws.h())
        assert r.status_code == 202 and r.json()["state"] == "pending"
        rx.wait_for(1)
        [done] = _until(lambda: _deliveries(ws, "delivered"))
        assert done["id"] == dead["id"] and _deliveries(ws, "failed") == []
        assert c.post("/v1/webhook/deliveries/nope/resend", headers=ws.h()).status_code == 404
        assert c.get("/v1/webhook/deliveries?state=odd", headers=ws.h()).status_code == 422


def test_bulk_resend_of_dead_letters(fast: Settings, rx: Receiver) -> None:
    short = dataclasses.replace(fast, webhook_retry_for_s=0.2)
    rx.status = 500
    with TestClient(create_app(short, worker=True)) as c:
        ws = Workspace(c)
        assert _hook(ws, rx.url, allow=[rx.url]).status_code == 200
        ws.rule(**TAG_RULE)
        for i in range(3):
            ws.send(event(f"e{i}", tid=f"T-{i}"))
        _until(lambda: len(_deliveries(ws, "failed")) == 3)
        rx.status = 200
        r = c.post("/v1/webhook/deliveries/resend?state=failed", headers=ws.h())
        assert r.status_code == 202 and r.json() == {"resent": 3}
        rx.wait_for(3)
        _until(lambda: len(_deliveries(ws, "delivered")) == 3)


def test_receiver_down_for_a_while(wsp: Workspace, rx: Receiver) -> None:
    assert _hook(wsp, rx.url, allow=[rx.url]).status_code == 200
    wsp.rule(**TAG_RULE)
    rx.stop()
    wsp.send(event("e1"))
    [d] = _until(lambda: [d for d in _deliveries(wsp, "pending") if d["attempts"] >= 2])
    assert "127.0.0.1" in d["last_error"] and d["last_status"] is None
    rx.start()                                              # back on the same port
    rx.wait_for(1)
    _until(lambda: _deliveries(wsp, "delivered"))


def test_redirects_are_not_followed(wsp: Workspace, rx: Receiver) -> None:
    rx.status = 302
    rx.location = rx.url + "/elsewhere"
    assert _hook(wsp, rx.url + "/hook", allow=[rx.url]).status_code == 200
    wsp.rule(**TAG_RULE)
    wsp.send(event("e1"))
    [d] = _until(lambda: [d for d in _deliveries(wsp, "pending") if d["attempts"] >= 2])
    assert d["last_status"] == 302 and "redirects are not followed" in d["last_error"]
    assert {r.path for r in rx.requests} == {"/hook"}


def test_allow_list_change_after_set_is_enforced_at_delivery(wsp: Workspace, rx: Receiver) -> None:
    assert _hook(wsp, rx.url, allow=[rx.url]).status_code == 200
    wsp.rule(**TAG_RULE)
    r = wsp.client.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=wsp.h())
    assert r.status_code == 200
    wsp.send(event("e1"))
    [d] = _until(lambda: _deliveries(wsp, "failed"))
    assert "allow-list" in d["last_error"] and d["attempts"] == 1   # refused: dead at once
    assert rx.requests == []


def test_removed_webhook_fails_pending_updates(fast: Settings, rx: Receiver) -> None:
    rx.status = 500
    with TestClient(create_app(fast, worker=True)) as c:
        ws = Workspace(c)
        assert _hook(ws, rx.url, allow=[rx.url]).status_code == 200
        ws.rule(**TAG_RULE)
        ws.send(event("e1"))
        _until(lambda: rx.requests)
        assert c.delete("/v1/webhook", headers=ws.h()).status_code == 204
        [d] = _until(lambda: _deliveries(ws, "failed"))
        assert "no webhook is configured" in d["last_error"]


def test_history_before_the_webhook_is_not_sent(wsp: Workspace, rx: Receiver) -> None:
    wsp.rule(**TAG_RULE)
    wsp.send(event("before", tid="T-old"))
    _cut_to_head(wsp)                                       # the outbox cuts it with no webhook set
    assert _hook(wsp, rx.url, allow=[rx.url]).status_code == 200
    wsp.send(event("after", tid="T-new"))
    [got] = rx.wait_for(1)
    assert orjson.loads(got.body)["ticket_id"] == "T-new"
    _cut_to_head(wsp)         # every entry is cut: the one delivery made is all that can be sent
    assert len(_deliveries(wsp)) == 1
    assert len(rx.requests) == 1


# -- webhook actions --------------------------------------------------------------------------------

def test_webhook_action_goes_to_its_own_url(wsp: Workspace, rx: Receiver) -> None:
    wsp.client.put("/v1/allowlist", json={"hosts": [rx.url]}, headers=wsp.h())
    wsp.client.put("/v1/secrets/HOOK_TOKEN", json={"value": "tok-9911"}, headers=wsp.h())
    r = wsp.client.post("/v1/rules", headers=wsp.h("admin"), json={   # a rule sending a secret: admin
        "name": "tell billing", "triggers": ["ticket.created"], "enabled": True,
        "actions": [{"type": "webhook", "url": rx.url + "/billing", "method": "PUT",
                     "headers": {"X-Token": "{{secret:HOOK_TOKEN}}"}, "body": {"kind": "new"}}]})
    assert r.status_code == 201, r.text
    wsp.send(event("e1"))
    [got] = rx.wait_for(1)
    assert (got.method, got.path) == ("PUT", "/billing")
    assert orjson.loads(got.body) == {"kind": "new"}
    assert got.headers["x-token"] == "tok-9911"
    assert got.headers["x-deskflow-delivery"].startswith("fx-")
    assert "x-deskflow-signature" not in got.headers        # no webhook secret set: unsigned
    [d] = _until(lambda: _deliveries(wsp, "delivered"))
    assert d["kind"] == "effect" and "tok-9911" not in orjson.dumps(d).decode()


def test_webhook_action_off_the_allow_list_is_refused(wsp: Workspace, rx: Receiver) -> None:
    wsp.rule(name="exfiltrate", triggers=["ticket.created"], enabled=True,
             actions=[{"type": "webhook", "url": rx.url + "/steal"}])
    wsp.send(event("e1"))
    [d] = _until(lambda: _deliveries(wsp, "failed"))
    assert "allow-list" in d["last_error"]
    assert rx.requests == []


def test_a_webhook_effect_wakes_the_outbox_of_its_process(fast: Settings, rx: Receiver) -> None:
    """The worker that applied a run with a `webhook` effect wakes its process's outbox: the
    delivery does not wait for the next poll (30 s here, past the receiver's wait)."""
    with TestClient(create_app(dataclasses.replace(fast, webhook_poll_s=30.0), worker=True)) as c:
        ws = Workspace(c)
        c.put("/v1/allowlist", json={"hosts": [rx.url]}, headers=ws.h())
        ws.rule(name="tell billing", triggers=["ticket.created"], enabled=True,
                actions=[{"type": "webhook", "url": rx.url + "/billing"}])
        time.sleep(0.3)   # the outbox's first round (at start) is over: it waits on its poll
        started = time.monotonic()
        ws.send(event("e1"))
        [got] = rx.wait_for(1, timeout=10.0)
        assert got.path == "/billing" and time.monotonic() - started < 10.0


@pytest.mark.anyio
async def test_a_pass_with_nothing_to_deliver_does_not_chase_the_feed(
        settings: Settings, rx: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feed entries that become no delivery (no webhook set, no webhook effect) are cut at the
    outbox's poll, not as fast as they come (neither by a new round at once nor by a round that
    cuts again what came during its cut): a busy workspace without a webhook cost a cut
    transaction every few events. Entries that do become deliveries are still chased at once."""
    settings = dataclasses.replace(settings, webhook_poll_s=0.4)
    store = await open_store(settings)
    cuts = 0
    real_cut = O.cut

    async def counted(*args: Any, **kw: Any) -> O.Cut:
        nonlocal cuts
        cuts += 1
        await asyncio.sleep(0.02)   # a store under load: entries keep coming during each cut
        return await real_cut(*args, **kw)

    monkeypatch.setattr(O, "cut", counted)
    try:
        ws = "w-quiet"
        await store.redis.hset(K.WORKSPACES, ws, "quiet")

        async def entry(i: int, effects: list[Any]) -> None:
            await store.redis.xadd(K.feed(ws), {"d": orjson.dumps(
                {"ticket_id": f"T{i}", "event_id": f"E{i}", "run_id": f"R{i}", "changes": {},
                 "effects": effects, "at": "x"})})

        box = Outbox(store=store, settings=settings, name="quiet")
        await entry(0, [])
        assert await box.tick() is False           # first sight: the cursor starts at the head
        await entry(1, [])
        assert await box.tick() is False           # cut into nothing: not work to chase
        task = asyncio.create_task(box.run())
        for i in range(2, 162):                    # 160 entries over ~1.2 s
            await entry(i, [])
            await asyncio.sleep(0.0075)
        assert cuts <= 2 + 6, cuts                 # one cut a round, a round a poll (0.4 s)
        await store.redis.set(K.allowlist(ws), orjson.dumps([rx.url]))
        await entry(90, [{"type": "webhook", "url": rx.url + "/x"}])
        deadline = time.monotonic() + 10
        while not rx.ok() and time.monotonic() < deadline:   # the run loop cuts it at a poll
            await asyncio.sleep(0.02)
        assert [r.path for r in rx.ok()] == ["/x"]
        box.stop()
        await task
        assert await store.redis.get(K.outbox_cursor(ws)) is not None
        await entry(91, [{"type": "webhook", "url": rx.url + "/y"}])
        assert await box.tick() is True            # a delivery made and sent: work
    finally:
        await close_store(store)


# -- senders ----------------------------------------------------------------------------------------

def test_next_delay_doubles_with_jitter_and_cap() -> None:
    low = [next_delay(n, 1.0, 3600.0, lambda: 0.0) for n in range(1, 15)]
    high = [next_delay(n, 1.0, 3600.0, lambda: 1.0) for n in range(1, 15)]
    assert low[:4] == pytest.approx([0.8, 1.6, 3.2, 6.4])
    assert high[:4] == pytest.approx([1.2, 2.4, 4.8, 9.6])
    assert max(high) == pytest.approx(3600 * 1.2) and max(low) == pytest.approx(3600 * 0.8)
    # with the defaults, retries cover at least 24 h before the dead letter: the window is
    # time-based, and the last try is placed at its end (checked in test_retry_window_*)


def test_sign_is_hmac_sha256_of_the_body() -> None:
    import hashlib
    import hmac
    body = b'{"a":1}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


@pytest.mark.anyio
async def test_retry_window_is_24h_and_ends_with_a_try(settings: Settings, rx: Receiver) -> None:
    """A frozen clock walks a never-answering receiver through a day: the delays double up to
    the hourly cap, the last try is at the 24 h mark, then the delivery is dead."""
    rx.status = 500
    store = await open_store(settings)
    clock = [1_800_000_000.0]
    try:
        ws = "w1"
        await store.redis.hset(K.WORKSPACES, ws, "acme")
        await O.put_webhook(store, ws, {"url": rx.url, "secret": SECRET, "since_ms": 0})
        await store.redis.set(K.allowlist(ws), orjson.dumps([rx.url]))
        await store.redis.xadd(K.feed(ws), {"d": orjson.dumps(
            {"ticket_id": "T", "event_id": "E", "run_id": "R", "changes": {}, "effects": [], "at": "x"})})
        box = Outbox(store=store, settings=settings, clock=lambda: clock[0], rand=lambda: 0.5)
        start = clock[0]
        tries: list[float] = []
        for _ in range(100):
            await box.tick()
            [rec] = [r for r in await O.get_deliveries(store, ws, [i for i in await store.redis.zrange(
                K.outbox_all(ws), 0, -1)]) if r]
            if len(tries) < rec["attempts"]:
                tries.append(clock[0] - start)
            if rec["state"] == "failed":
                break
            due = await store.redis.zscore(K.outbox_due(ws), rec["id"])
            clock[0] = due / 1000
        await box.aclose()
        gaps = [b - a for a, b in zip(tries, tries[1:])]
        assert gaps[:5] == pytest.approx([1, 2, 4, 8, 16], rel=0.01)
        assert max(gaps) == pytest.approx(3600, rel=0.01)
        assert tries[-1] == pytest.approx(24 * 3600, abs=1)
        assert rec["state"] == "failed" and rec["attempts"] == len(tries) == len(rx.requests)
    finally:
        await close_store(store)


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_senders_send_each_delivery_once(redis_url: str, rx: Receiver) -> None:
    settings = Settings(redis_url=redis_url, data_file=None, webhook_poll_s=0.01)
    stores = [await open_store(settings) for _ in range(2)]
    try:
        ws = "w2"
        await stores[0].redis.hset(K.WORKSPACES, ws, "acme")
        await stores[0].redis.set(K.allowlist(ws), orjson.dumps([rx.url]))
        await O.put_webhook(stores[0], ws, {"url": rx.url, "secret": SECRET, "since_ms": 0})
        for i in range(40):
            await stores[0].redis.xadd(K.feed(ws), {"d": orjson.dumps(
                {"ticket_id": f"T{i}", "event_id": f"E{i}", "run_id": f"R{i}", "changes": {},
                 "effects": [], "at": "x"})})
        boxes = [Outbox(store=s, settings=settings, name=f"box{i}") for i, s in enumerate(stores)]
        tasks = [asyncio.create_task(b.run()) for b in boxes]
        deadline = time.monotonic() + 20
        while len(rx.ok()) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        for b in boxes:
            b.stop()
        await asyncio.gather(*tasks)
        ids = [r.headers["x-deskflow-delivery"] for r in rx.requests]
        assert len(ids) == 40 and len(set(ids)) == 40
    finally:
        for s in stores:
            await close_store(s)


@pytest.mark.anyio
async def test_a_sender_dying_after_the_post_sends_again(settings: Settings, rx: Receiver,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """At least once: the receiver answered, but the sender died before saving that; the next
    sender posts the same delivery id again (the receiver drops it as a duplicate)."""
    store = await open_store(settings)
    try:
        ws = "w3"
        await store.redis.hset(K.WORKSPACES, ws, "acme")
        await store.redis.set(K.allowlist(ws), orjson.dumps([rx.url]))
        await O.put_webhook(store, ws, {"url": rx.url, "secret": SECRET, "since_ms": 0})
        await store.redis.xadd(K.feed(ws), {"d": orjson.dumps(
            {"ticket_id": "T", "event_id": "E", "run_id": "R", "changes": {}, "effects": [], "at": "x"})})
        real = O.save_attempt

        async def crash(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("killed before saving")

        monkeypatch.setattr(O, "save_attempt", crash)
        first = Outbox(store=store, settings=settings, name="first")
        with pytest.raises(RuntimeError):
            await first.tick()
        await first.aclose()
        assert len(rx.ok()) == 1
        monkeypatch.setattr(O, "save_attempt", real)
        await store.redis.delete(K.outbox_lease(ws))   # the dead sender's lease ran out
        second = Outbox(store=store, settings=settings, name="second")
        await second.tick()
        await second.aclose()
        ids = [r.headers["x-deskflow-delivery"] for r in rx.ok()]
        assert len(ids) == 2 and ids[0] == ids[1]
        [rec] = await O.get_deliveries(store, ws, [ids[0]])
        assert rec is not None and rec["state"] == "delivered"
    finally:
        await close_store(store)
