"""Saving a rule that says what it already says writes no revision (issue 12, item 8), also when
the client spells an optional key's "nothing" its own way: the managers' page sent `stop: false`
for a rule stored without `stop`, `{"all": []}` for one without conditions."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace

RULE = {"name": "tag", "enabled": True, "triggers": ["ticket.created"],
        "actions": [{"type": "add_tags", "tags": ["t"]}]}


@pytest.mark.parametrize("extra", [{"stop": False}, {"conditions": {"all": []}},
                                   {"conditions": {}}, {"stop": False, "conditions": {"all": []}}],
                         ids=["stop-false", "all-empty", "empty-object", "both"])
def test_put_of_the_same_rule_in_other_words_writes_no_revision(ws: Workspace,
                                                                 extra: dict[str, Any]) -> None:
    c = ws.client
    rule = c.post("/v1/rules", json=RULE, headers=ws.h("manager")).json()
    again = c.put(f"/v1/rules/{rule['id']}", json={**RULE, **extra}, headers=ws.h("manager"))
    assert again.status_code == 200, again.text
    assert again.json()["revision"] == rule["revision"] == 1
    revisions = c.get(f"/v1/rules/{rule['id']}/revisions", headers=ws.h("viewer")).json()["items"]
    assert [r["n"] for r in revisions] == [1]


def test_a_real_change_still_writes_one(ws: Workspace) -> None:
    c = ws.client
    rule = c.post("/v1/rules", json=RULE, headers=ws.h("manager")).json()
    again = c.put(f"/v1/rules/{rule['id']}", json={**RULE, "stop": True}, headers=ws.h("manager"))
    assert again.json()["revision"] == 2
