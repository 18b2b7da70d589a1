"""Hostile-tenant findings on this session's changes (h-attack), each pinned by a test.

A script's return is read as rule actions (rules/updates.py update_actions): `add_groups` and
`remove_groups` stand for one add_to_group / remove_from_group action per name. Applied one by
one, each copies the contact and its whole group list, so a return of N distinct names cost
O(N^2) on the worker's shared process: an 8,000-name return (63 KB, under the 64 KiB output
limit) took 17 s where the one-call code of b447425 took 1.5 ms. A tenant could stall every other
tenant's events with one script."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from rules import apply_updates, compile_rules
from rules import updates as U
from datetime import datetime, timezone

TICKET: dict[str, Any] = {"id": "T-1", "status": "open", "tags": [],
                          "contact": {"id": "C-1", "groups": ["Trial", "eu"]}}


def _count_group_changes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = U.change_groups

    def counting(ticket: dict[str, Any], groups: list[str], add: bool) -> bool:
        calls.append(len(groups))
        return real(ticket, groups, add)
    monkeypatch.setattr(U, "change_groups", counting)
    return calls


def test_a_long_group_list_is_applied_in_one_pass_not_one_copy_per_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_group_changes(monkeypatch)
    names = [f"g{i}" for i in range(100)]   # (the most one returned list may hold: rules/fields.py)
    ticket, _ = apply_updates(copy.deepcopy(TICKET), {"add_groups": names, "remove_groups": names[:50]})
    assert ticket["contact"]["groups"] == ["Trial", "eu", *names[50:]]
    # one change of the contact's groups per key, not one per name (each copies the whole list)
    assert len(calls) == 2, f"{len(calls)} group changes for 2 keys"


def test_group_keys_still_apply_as_the_rule_actions_they_stand_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    updates = {"add_groups": ["VIP", "trial", "vip", "New"], "remove_groups": ["EU", "new", "absent"]}
    actions = [{"type": "add_to_group", "group": g} for g in updates["add_groups"]]
    actions += [{"type": "remove_from_group", "group": g} for g in updates["remove_groups"]]
    got = apply_updates(copy.deepcopy(TICKET), updates, event={"type": "ticket.created"})
    ev = compile_rules([{"id": "r", "triggers": ["ticket.created"], "actions": actions}]).evaluate(
        {"type": "ticket.created"}, copy.deepcopy(TICKET), now=datetime(2026, 12, 3, tzinfo=timezone.utc))
    assert got == (ev.ticket, ev.effects)
    assert got[0]["contact"]["groups"] == ["Trial", "VIP"]


def test_group_keys_on_a_ticket_without_a_contact_change_nothing() -> None:
    ticket, effects = apply_updates({"id": "T-2", "tags": []}, {"add_groups": ["a", "b"], "remove_groups": ["c"]})
    assert ticket == {"id": "T-2", "tags": []} and effects == []
