"""Helpers for the server tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any


def event(eid: str, etype: str = "ticket.created", *, tid: str = "T-1",
          ticket: dict[str, Any] | None = None, message: dict[str, Any] | None = None,
          **extra: Any) -> dict[str, Any]:
    """A small valid event for ticket `tid`."""
    body: dict[str, Any] = {"id": eid, "type": etype, "occurred_at": "2026-11-23T08:00:00Z",
                            "ticket": {"id": tid, **(ticket or {})}}
    if etype.startswith("message."):
        body["message"] = message or {"author": "customer", "body": "hello"}
    body.update(extra)
    return body
