"""The workspace's webhook (where updates are POSTed, signed) and its deliveries (admin only).

    PUT    /v1/webhook                              {"url", "secret"} -> the setting, no secret
    GET    /v1/webhook                              404 when none is set
    DELETE /v1/webhook                              pending update deliveries then fail as such
    GET    /v1/webhook/deliveries?state=&limit=&cursor=   state: pending | delivered | failed
    GET    /v1/webhook/deliveries/{id}
    POST   /v1/webhook/deliveries/{id}/resend       202: queued again with a fresh retry window
    POST   /v1/webhook/deliveries/resend?state=failed     202 {"resent": n}: every dead letter

The URL is checked when it is set with the same rules a script's HTTP call meets at every request
(sandbox/broker.py: http/https, on the workspace's allow-list, every resolved address public or
named literally by the allow-list); the outbox checks it again at every delivery.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from sandbox import BrokerConfig
from server import audit
from server.api.common import Ctx, json_response, page, page_params, problem, read_object, requires
from server.api.query import PAGE, Query, choice
from server.errors import NotFound, Unprocessable
from server.store import outbox as O
from server.scripting import new_broker, stored_allowlist
from server.store.catalog import now_iso

__all__ = ["routes"]

MAX_SECRET_CHARS = 256
MAX_RESEND = 1000


def _public(config: dict[str, Any]) -> dict[str, Any]:
    return {"url": config["url"], "secret_set": bool(config.get("secret")),
            "created_at": config.get("created_at"), "updated_at": config.get("updated_at")}


async def _url_problem(ctx: Ctx, url: str) -> str | None:
    allow = await stored_allowlist(ctx.store, ctx.workspace)
    broker = new_broker()       # refuses the service's own listeners, like every delivery
    try:
        reason = await broker.check(BrokerConfig(allow), url)
    finally:
        await broker.aclose()
    if reason is not None and "allow-list" in reason:
        reason += " (add it with PUT /v1/allowlist first: webhooks obey the scripts' allow-list)"
    return reason


@requires("admin")
async def put_webhook(ctx: Ctx) -> Response:
    body = await read_object(ctx.request)
    old = await O.get_webhook(ctx.store, ctx.workspace)
    problems = [problem(k, "unknown key; the webhook has url and secret") for k in sorted(set(body) - {"url", "secret"})]
    url, secret = body.get("url"), body.get("secret", (old or {}).get("secret"))
    if not isinstance(url, str) or not url:
        problems.append(problem("url", "must be the http(s) URL to POST updates to"))
    if secret is None:
        problems.append(problem("secret", "is required: every delivery is signed with it "
                                          "(X-Deskflow-Signature: sha256=<HMAC of the body>)"))
    elif not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_CHARS:
        problems.append(problem("secret", f"must be a non-empty string of at most {MAX_SECRET_CHARS} characters"))
    if isinstance(url, str) and url:  # checked even when other keys are wrong: every problem at once
        reason = await _url_problem(ctx, url)
        if reason is not None:
            problems.append(problem("url", reason))
    if problems:
        raise Unprocessable("The webhook setting is not valid: " + "; ".join(
            f"{p['path']}: {p['reason']}" for p in problems[:5]), details=problems)
    now = now_iso()
    config = {"url": url, "secret": secret, "since_ms": int(time.time() * 1000),
              "created_at": (old or {}).get("created_at") or now, "updated_at": now,
              "updated_by": ctx.principal.key_id}
    if old is not None:
        config["since_ms"] = old.get("since_ms", config["since_ms"])
    await O.put_webhook(ctx.store, ctx.workspace, config)
    await audit.record(ctx, "webhook.set", "webhook",
                       {"url": url, "secret_changed": secret != (old or {}).get("secret")})
    return json_response(_public(config))


@requires("admin")
async def get_webhook(ctx: Ctx) -> Response:
    config = await O.get_webhook(ctx.store, ctx.workspace)
    if config is None:
        raise NotFound("No webhook is set for this workspace; set one with PUT /v1/webhook.")
    return json_response(_public(config))


@requires("admin")
async def delete_webhook(ctx: Ctx) -> Response:
    if not await O.delete_webhook(ctx.store, ctx.workspace):
        raise NotFound("No webhook is set for this workspace.")
    await audit.record(ctx, "webhook.delete", "webhook")
    return Response(status_code=204)


_DELIVERIES = Query(PAGE, choice("state", O.STATES, "Only deliveries in this state (left out: all)."))
_RESEND = Query(choice("state", ("failed",), "Which deliveries to send again: the dead letters.",
                       "failed"))


@requires("admin", _DELIVERIES)
async def list_deliveries(ctx: Ctx) -> Response:
    state = ctx.query["state"]
    limit, offset = page_params(ctx.request)
    items, more = await O.list_deliveries(ctx.store, ctx.workspace, state, limit, offset)
    return page(items, offset + limit if more else None)


async def _delivery(ctx: Ctx) -> dict[str, Any]:
    delivery_id = ctx.request.path_params["id"]
    recs = await O.get_deliveries(ctx.store, ctx.workspace, [delivery_id])
    if not recs or recs[0] is None:
        raise NotFound(f"No delivery {delivery_id!r} in this workspace (delivered ones are kept "
                       f"7 days, dead letters 30).")
    return recs[0]


@requires("admin")
async def get_delivery(ctx: Ctx) -> Response:
    return json_response(await _delivery(ctx))


@requires("admin")
async def resend_one(ctx: Ctx) -> Response:
    rec = await _delivery(ctx)
    now_ms = int(time.time() * 1000)
    again = await O.resend(ctx.store, ctx.workspace, rec["id"], now_ms, now_iso())
    if again is None:
        raise NotFound(f"No delivery {rec['id']!r} in this workspace.")
    await audit.record(ctx, "webhook.resend", f"delivery:{rec['id']}")
    return json_response(again, 202)


@requires("admin", _RESEND)
async def resend_all(ctx: Ctx) -> Response:
    """Send the dead letters again (`state=failed`, the default); re-send others one by one."""
    items, _ = await O.list_deliveries(ctx.store, ctx.workspace, "failed", MAX_RESEND, 0)
    now_ms, now = int(time.time() * 1000), now_iso()
    resent = 0
    for rec in items:
        if await O.resend(ctx.store, ctx.workspace, rec["id"], now_ms, now) is not None:
            resent += 1
    await audit.record(ctx, "webhook.resend", "delivery:*", {"state": "failed", "resent": resent})
    return json_response({"resent": resent}, 202)


routes = [
    Route("/v1/webhook", put_webhook, methods=["PUT"]),
    Route("/v1/webhook", get_webhook, methods=["GET"]),
    Route("/v1/webhook", delete_webhook, methods=["DELETE"]),
    Route("/v1/webhook/deliveries", list_deliveries, methods=["GET"]),
    Route("/v1/webhook/deliveries/resend", resend_all, methods=["POST"]),
    Route("/v1/webhook/deliveries/{id}", get_delivery, methods=["GET"]),
    Route("/v1/webhook/deliveries/{id}/resend", resend_one, methods=["POST"]),
]
