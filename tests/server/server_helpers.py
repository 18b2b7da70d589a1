"""Helpers for the server tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

ROOT_TOKEN = "test-root-token"  # the same as tests/conftest.py's settings fixture


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


class Workspace:
    """A workspace seen through the API: `h(role)` gives headers with a key of that role."""

    def __init__(self, client: TestClient, name: str = "acme") -> None:
        self.client = client
        r = client.post("/v1/workspaces", json={"name": name},
                        headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        assert r.status_code == 201, r.text
        self.id: str = r.json()["id"]
        self.keys: dict[str, str] = {"admin": r.json()["admin_key"]}

    def key(self, role: str) -> str:
        if role not in self.keys:
            r = self.client.post("/v1/keys", json={"role": role, "name": f"{role} key"},
                                 headers=self.h("admin"))
            assert r.status_code == 201, r.text
            self.keys[role] = r.json()["key"]
        return self.keys[role]

    def h(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(role)}"}

    def send(self, event: dict[str, Any], *, wait: bool = True) -> Any:
        r = self.client.post(f"/v1/events{'?wait=true' if wait else ''}", json=event,
                             headers=self.h("ingest"))
        assert r.status_code in (200, 202), r.text
        return r.json()

    def rule(self, **rule: Any) -> dict[str, Any]:
        rule.setdefault("enabled", True)
        r = self.client.post("/v1/rules", json=rule, headers=self.h("manager"))
        assert r.status_code == 201, r.text
        return dict(r.json())


class FakeClock:
    """A wall clock that moves only when told: pass it as `create_app(clock=...)` and cross a
    rate-limit window with `advance(s)` instead of sleeping through it. It starts just after a
    whole second, so `advance(0.9)` stays inside the same window and `advance(1)` leaves it."""

    def __init__(self, start: float = 1_700_000_000.05) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
