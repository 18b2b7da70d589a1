"""The example scripts in scripts/ run through the real sandbox pool against a real local CRM and
billing app on 127.0.0.1, and their updates apply through rules.apply_updates like rule actions."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))

from crm_app import CrmServer  # noqa: E402
from sandbox_harness import SandboxHarness  # noqa: E402

from sandbox import compile_script  # noqa: E402

SCRIPTS = ROOT / "scripts"


def source(name: str) -> str:
    return (SCRIPTS / f"{name}.py").read_text()


def ticket(email: str = "ann@example.com", **fields: object) -> dict:
    base = {"id": "T-1", "subject": "Help", "description": "", "status": "open", "priority": "normal",
            "channel": "email", "department": None, "assignee": None, "tags": [], "custom": {},
            "contact": {"id": "C-1", "email": email, "name": "Ann", "groups": [], "custom": {}}}
    base.update(fields)
    return base


def message(body: str, author: str = "customer") -> dict:
    return {"id": "evt-1", "type": "message.received", "message": {"author": author, "body": body, "channel": "chat"}}


@pytest.fixture(scope="module")
def crm() -> Iterator[CrmServer]:
    with CrmServer() as server:
        yield server


@pytest.fixture(scope="module")
def sandbox(crm: CrmServer) -> Iterator[SandboxHarness]:
    harness = SandboxHarness(crm.url)
    yield harness
    harness.close()


def run(sandbox: SandboxHarness, crm: CrmServer, name: str, t: dict, event: dict | None = None, **kw):
    vars = {"crm_url": crm.url, "billing_url": crm.url}
    return sandbox.run(source(name), event=event or {"type": "ticket.created"}, ticket=t, vars=vars, **kw)


def applied(t: dict, updates: dict | None) -> tuple[dict, list]:
    from rules import apply_updates
    return apply_updates(t, updates)


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.stem)
def test_every_example_compiles_under_the_policy(path: Path) -> None:
    result = compile_script(path.read_text())
    assert result.ok, result.errors


def test_crm_vip_routes_vip_contacts(sandbox, crm) -> None:
    result = run(sandbox, crm, "crm_vip", ticket("ann@example.com", tags=["billing"]))
    assert result.error is None, result.error
    assert result.updates == {"priority": "urgent", "department": "vip-desk", "add_tags": ["vip"],
                              "custom": {"tier": "vip"}}
    assert result.logs == ["VIP contact ann@example.com"]
    assert result.http_calls[0]["status"] == 200
    assert result.http_calls[0]["url"] == f"{crm.url}/contacts?email=ann%40example.com"
    after, effects = applied(ticket("ann@example.com", tags=["billing"]), result.updates)
    assert (after["priority"], after["department"], after["tags"]) == ("urgent", "vip-desk", ["billing", "vip"])
    assert effects == []


def test_crm_vip_leaves_other_contacts_alone(sandbox, crm) -> None:
    assert run(sandbox, crm, "crm_vip", ticket("bob@example.com")).updates is None
    assert run(sandbox, crm, "crm_vip", ticket(None)).http_calls == []


def test_crm_vip_without_the_token_gets_401_and_changes_nothing(sandbox, crm) -> None:
    result = run(sandbox, crm, "crm_vip", ticket("ann@example.com"), secrets={"CRM_TOKEN": "wrong-token"})
    assert result.error is None and result.updates is None
    assert result.logs == ["not a VIP: 401"]


def test_crm_vip_off_the_allowlist_is_a_script_error(sandbox, crm) -> None:
    result = run(sandbox, crm, "crm_vip", ticket("ann@example.com"), allow=["crm.example.com"])
    assert result.error["code"] == "script_error"
    assert "not on the allow-list" in result.error["message"] and result.error["message"].startswith("Line 12:")
    assert "refused" in result.http_calls[0]


def test_billing_overdue_tags_raises_priority_and_notifies_finance(sandbox, crm) -> None:
    result = run(sandbox, crm, "billing_overdue", ticket("bob@example.com"))
    assert result.error is None, result.error
    assert result.updates["priority"] == "high"
    assert result.updates["add_tags"] == ["billing-overdue"]
    assert result.updates["custom"] == {"overdue_total": 420.0}
    (notify,) = result.updates["actions"]
    assert notify["type"] == "notify" and notify["target"] == "team:finance"
    assert "INV-7" in notify["message"]
    after, effects = applied(ticket("bob@example.com"), result.updates)
    assert after["tags"] == ["billing-overdue"] and after["priority"] == "high"
    assert [e["type"] for e in effects] == ["notify"]


def test_billing_overdue_clears_the_tag_when_paid_up(sandbox, crm) -> None:
    result = run(sandbox, crm, "billing_overdue", ticket("ann@example.com", tags=["billing-overdue"]))
    assert result.updates == {"remove_tags": ["billing-overdue"]}


def test_billing_overdue_survives_a_refused_lookup(sandbox, crm) -> None:
    result = run(sandbox, crm, "billing_overdue", ticket("bob@example.com"), allow=["billing.example.com"])
    assert result.error is None and result.updates is None
    assert result.logs[0].startswith("billing lookup failed:")


def test_pick_department_combines_history_tags_and_custom_fields(sandbox, crm) -> None:
    old = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
    cases = [
        (ticket(custom={"plan": "enterprise"}, created_at=old), {"department": "escalations", "add_tags": ["routed"], "priority": "high"}),
        (ticket(custom={"plan": "enterprise", "reopen_count": 2}), {"department": "escalations", "add_tags": ["routed"], "priority": "high"}),
        (ticket(tags=["Bug"]), {"department": "engineering", "add_tags": ["routed"]}),
        (ticket(subject="Refund for last invoice"), {"department": "billing", "add_tags": ["routed"]}),
        (ticket(subject="Hello"), {"department": "general", "add_tags": ["routed"]}),
        (ticket(subject="Hello", department="general"), None),
    ]
    for t, expected in cases:
        result = run(sandbox, crm, "pick_department", t)
        assert result.error is None, result.error
        assert result.updates == expected, (t, result.logs)
        assert result.logs[0].startswith("department:")


def test_sentiment_tags_keep_the_mood_consistent(sandbox, crm) -> None:
    bad = run(sandbox, crm, "sentiment_tags", ticket(tags=["feels-good"]), message("I feel bad today, this is terrible"))
    assert bad.updates == {"add_tags": ["feels-bad"], "remove_tags": ["feels-good"]}
    after, _ = applied(ticket(tags=["feels-good"]), bad.updates)
    assert after["tags"] == ["feels-bad"]
    good = run(sandbox, crm, "sentiment_tags", ticket(), message("Thanks, that was great!"))
    assert good.updates == {"add_tags": ["feels-good"], "remove_tags": ["feels-bad"]}
    angry = run(sandbox, crm, "sentiment_tags", ticket(), message("Awful. Broken again, I'm so frustrated and upset"))
    assert angry.updates["priority"] == "high"
    negated = run(sandbox, crm, "sentiment_tags", ticket(), message("not bad at all"))
    assert negated.updates is None
    agent = run(sandbox, crm, "sentiment_tags", ticket(), message("terrible", author="agent"))
    assert agent.updates is None and agent.logs == []


def _said(author: str, body: str = "hi") -> dict:
    return {"type": "message.received" if author == "customer" else "message.sent", "at": None,
            "actor": author, "message": {"author": author, "body": body, "channel": "email"},
            "changes": {}}


def test_unanswered_escalate_fires_on_the_third_unanswered_message(sandbox, crm) -> None:
    history = [_said("customer"), _said("agent"), _said("customer")]
    two = run(sandbox, crm, "unanswered_escalate", ticket(), message("again"),
              ctx={"history": history})
    assert two.error is None and two.updates is None
    three = run(sandbox, crm, "unanswered_escalate", ticket(), message("again"),
                ctx={"history": [*history, _said("customer")]})
    after, _ = applied(ticket(), three.updates)
    assert after["priority"] == "urgent" and "unanswered-3" in after["tags"]
    assert after["custom"]["unanswered_messages"] == 3
    # already escalated: nothing more
    again = run(sandbox, crm, "unanswered_escalate", after, message("again"),
                ctx={"history": [*history, _said("customer"), _said("customer")]})
    assert again.updates is None


def test_unanswered_escalate_without_history_does_nothing(sandbox, crm) -> None:
    assert run(sandbox, crm, "unanswered_escalate", ticket(), message("hi")).updates is None


def _customer(open_tickets: int, d30: int = 0) -> dict:
    recent = [{"id": f"T-{n}", "subject": "s", "status": "open" if n < open_tickets else "solved",
               "created_at": "2026-11-20T08:00:00Z"} for n in range(1, 6)]
    return {"id": "C-1", "email": "ann@example.com", "name": "Ann", "groups": [], "custom": {},
            "open_tickets": open_tickets, "tickets_30d": d30, "recent": recent}


def test_busy_customer_routes_a_customer_with_three_open_tickets(sandbox, crm) -> None:
    quiet = run(sandbox, crm, "busy_customer", ticket(), ctx={"customer": _customer(2, 2)})
    assert quiet.error is None and quiet.updates is None
    busy = run(sandbox, crm, "busy_customer", ticket(), ctx={"customer": _customer(3, 3)})
    after, _ = applied(ticket(), busy.updates)
    assert after["department"] == "senior" and "busy-customer" in after["tags"]
    assert after["custom"]["related_tickets"] == "T-2"     # T-1 is this ticket; T-3.. solved
    assert run(sandbox, crm, "busy_customer", ticket(), ctx={"customer": None}).updates is None
