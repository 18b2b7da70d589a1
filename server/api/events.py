"""POST /v1/events: validate, queue on the ticket's partition stream, optionally wait for the run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, read_json, requires
from server.api.query import Param, Query, flag
from server.api.validate import ignored_hints, ignored_problems, validate_event
from server.api.workspace_settings import get_settings
from server.errors import PayloadTooLarge, Unprocessable
from server.metrics import count_event_received
from server.store import events, runs
from server.store.catalog import now_iso

__all__ = ["routes"]


_QUERY = Query(
    flag("wait", "Wait (up to 10 s) for the worker and answer the run summary."),
    Param("strict", "boolean", "Refuse (422) an event with keys that are not part of the event "
          "format instead of listing them in `ignored`; default: the workspace setting "
          "`strict_events` (PUT /v1/workspace/settings)."))


@requires("events", _QUERY)
async def post_events(ctx: Ctx) -> Response:
    """Submit one event, or {"events": [...]} (up to 500). Idempotent on the event id. Keys that
    are not part of the event format are not applied: each answer lists them in `ignored` (with
    `hints`, the key each is probably a misspelling of), or with ?strict=true they are a 422."""
    settings = ctx.store.settings
    body = await read_json(ctx.request)
    batch = isinstance(body, dict) and "events" in body and "type" not in body
    if batch:
        raw_events = body["events"]
        if not isinstance(raw_events, list) or not raw_events:
            raise Unprocessable("`events` must be a non-empty list of events.",
                                details=[{"path": "events", "reason": "must be a non-empty list"}])
        if len(raw_events) > settings.max_batch:
            raise PayloadTooLarge(f"This batch has {len(raw_events)} events; the batch size limit "
                                  f"is {settings.max_batch} events.", code="batch_too_large")
    else:
        raw_events = [body]
    received = now_iso()
    valid: list[dict[str, Any]] = []
    problems: list[dict[str, str]] = []
    strict: bool | None = None
    for i, raw in enumerate(raw_events):
        path = f"events[{i}]" if batch else ""
        event, found = validate_event(raw, received, path=path)
        if event is not None and event.get("ignored"):
            strict = await _strict(ctx) if strict is None else strict
            if strict:
                found = ignored_problems(event["ignored"], path)
        problems += found
        if event is not None:
            valid.append(event)
    if problems:
        raise Unprocessable("The event is not valid: " + "; ".join(
            f"{p['path'] or 'body'}: {p['reason']}" for p in problems[:5]), details=problems)
    results = await events.append_events(ctx.store, ctx.workspace, valid)
    for e, (status, _) in zip(valid, results, strict=True):
        count_event_received(e["type"], status)
    answers = [_with_ignored({"event_id": e["id"], "status": status}, e)
               for e, (status, _) in zip(valid, results, strict=True)]
    if ctx.query["wait"]:
        deadline = time.monotonic() + settings.wait_timeout_s
        summaries = [_with_ignored(await _wait(ctx, a, deadline), e)
                     for a, e in zip(answers, valid, strict=True)]
        done = all(s.get("run_id") for s in summaries)
        if batch:
            return json_response({"results": summaries}, 200 if done else 202)
        return json_response(summaries[0], 200 if done else 202)
    if batch:
        return json_response({"results": answers}, 202)
    return json_response(answers[0], 202)


async def _strict(ctx: Ctx) -> bool:
    """?strict= when given, else the workspace's `strict_events` (read only when some event has
    keys to ignore, so a clean event costs no extra read)."""
    if ctx.query["strict"] is not None:
        return bool(ctx.query["strict"])
    return bool((await get_settings(ctx.store, ctx.workspace))["strict_events"])


def _with_ignored(answer: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The answer, with `ignored` and `hints` when the event had keys that were not applied."""
    ignored = event.get("ignored")
    if not ignored:
        return answer
    return {**answer, "ignored": list(ignored), "hints": ignored_hints(ignored)}


async def _wait(ctx: Ctx, answer: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Poll the event's marker until a worker has processed it, then fetch the run summary."""
    delay = 0.002
    while True:
        marker = await events.get_marker(ctx.store, ctx.workspace, answer["event_id"])
        if marker and marker.get("status") == "processed" and marker.get("run_id"):
            run = await runs.get_run(ctx.store, ctx.workspace, marker["run_id"], rules=False)
            if run is not None:
                status = "duplicate" if answer["status"] == "duplicate" else "processed"
                return {"event_id": answer["event_id"], "status": status, "run_id": run["id"],
                        "changes": run["changes"], "effects": run["effects"],
                        "ticket": run.get("ticket"), "error": run.get("error")}
        if time.monotonic() >= deadline:
            return answer
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


routes = [Route("/v1/events", post_events, methods=["POST"])]
