"""The many-fires workload of bench/fires_bench.py (issue 15): broad rules, so an event fires many.

Real help-desk rule sets are full of broad rules ("tag billing -> department finance", "VIP ->
priority high"), so an event usually fires several. This generator is seeded and independent of
bench/_rulegen.py (whose workload fires 0.13 rules per event):

- 8 event types; each rule listens to one of them.
- 2-5 conditions per rule: about half straight under the rule's `all`, the others in one `any`
  group beside them, over subject, description, channel, priority, status, tags, contact.groups and
  custom string (`custom.plan`, `custom.region`) and number (`custom.seats`, `custom.mrr`) fields,
  with is / is_not / in / contains / includes / gt / lt (and `matches` for ~6% of the conditions in
  the regex variant).
- Small vocabularies (24 tags, 8 groups, 4 channels, 35 keywords), tuned so about 9% of the rules
  listening to an event's type match it.
- Each rule's action adds a tag of its own (`r-<id>`) that no condition reads, so which rules
  match does not depend on the order actions run in, and every engine must agree.

All vocabulary is lower-case ASCII except the subject and description, which mix case: the
engines must fold case there (deskflow always does; the peers lower-case those two once per event).
"""

from __future__ import annotations

import random
from typing import Any

EVENT_TYPES = ("ticket.created", "ticket.updated", "message.received", "message.sent",
               "time.reached", "sla.warning", "sla.breached", "ticket.woke")
TAGS = tuple(f"t{i:02d}" for i in range(24))
GROUPS = tuple(f"g{i}" for i in range(8))
CHANNELS = ("email", "chat", "phone", "web")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
PLANS = ("free", "pro", "business", "enterprise")
REGIONS = ("eu", "us", "apac")
KEYWORDS = ("refund", "invoice", "billing", "login", "password", "crash", "slow", "error", "urgent",
            "cancel", "upgrade", "downgrade", "shipping", "delivery", "broken", "missing", "charge",
            "account", "export", "import", "api", "webhook", "mobile", "desktop", "outage", "bug",
            "feature", "renewal", "trial", "contract", "vpn", "sso", "report", "dashboard", "refund")
KEYWORDS = tuple(dict.fromkeys(KEYWORDS)) + ("discount",)  # 35 distinct
FILLER = ("the", "my", "is", "not", "please", "help", "with", "since", "today", "again", "our")
REGEXES = (r"\brefund(s|ed)?\b", r"(crash|error)\w*\s+\w+", r"\b(log ?in|sign ?in)\b",
           r"inv(oice)?\s*#?\d*", r"(slow|outage|down)\b", r"\bapi\b.{0,20}\b(error|bug)",
           r"(upgrade|downgrade)\s+\w+", r"\b\w+ing\b.*\burgent\b")

Rule = dict[str, Any]
Event = tuple[dict[str, Any], dict[str, Any]]


def _text(rng: random.Random, n: int) -> str:
    words = []
    for _ in range(n):
        w = rng.choice(KEYWORDS) if rng.random() < 0.4 else rng.choice(FILLER)
        words.append(w.capitalize() if rng.random() < 0.3 else (w.upper() if rng.random() < 0.05 else w))
    return " ".join(words)


def make_events(rng: random.Random, n: int) -> list[Event]:
    """(event, merged ticket) pairs; the event type is uniform over the 8 types."""
    out = []
    for i in range(n):
        ticket = {
            "id": f"T{i}", "subject": _text(rng, rng.randint(4, 8)),
            "description": _text(rng, rng.randint(15, 30)),
            "channel": rng.choice(CHANNELS), "priority": rng.choice(PRIORITIES),
            "status": rng.choice(STATUSES), "tags": rng.sample(TAGS, rng.randint(3, 7)),
            "contact": {"email": f"c{i}@example.com", "groups": rng.sample(GROUPS, rng.randint(1, 4))},
            "custom": {"plan": rng.choice(PLANS), "region": rng.choice(REGIONS),
                       "seats": rng.randint(1, 100), "mrr": round(rng.uniform(0, 1000), 2)},
        }
        out.append(({"type": rng.choice(EVENT_TYPES)}, ticket))
    return out


def _leaf(rng: random.Random, regexes: bool, loose: bool) -> dict[str, Any]:
    """One condition. `loose` leaves (in `any` groups) hold more often than the `all` ones, so a
    group of 2-3 holds about as often as one conjunct."""
    if regexes and rng.random() < 0.06:
        return {"field": rng.choice(("subject", "description")), "op": "matches", "value": rng.choice(REGEXES)}
    kind = rng.choice(("tags", "groups", "text", "scalar", "custom", "number")) if not loose else \
        rng.choice(("tags", "groups", "text", "scalar", "custom", "number", "neg"))
    if kind == "tags":
        return {"field": "tags", "op": "includes", "value": rng.choice(TAGS)}
    if kind == "groups":
        return {"field": "contact.groups", "op": "includes", "value": rng.choice(GROUPS)}
    if kind == "text":
        return {"field": rng.choice(("subject", "description")), "op": "contains", "value": rng.choice(KEYWORDS)}
    if kind == "scalar":
        f, vocab = rng.choice((("channel", CHANNELS), ("priority", PRIORITIES), ("status", STATUSES)))
        if rng.random() < 0.4:
            return {"field": f, "op": "is", "value": rng.choice(vocab)}
        return {"field": f, "op": "in", "value": rng.sample(vocab, min(3, len(vocab) - 1))}
    if kind == "custom":
        f, vocab = rng.choice((("custom.plan", PLANS), ("custom.region", REGIONS)))
        if rng.random() < 0.3:
            return {"field": f, "op": "in", "value": rng.sample(vocab, 2)}
        return {"field": f, "op": "is", "value": rng.choice(vocab)}
    if kind == "number":
        f, hi = rng.choice((("custom.seats", 100), ("custom.mrr", 1000)))
        return {"field": f, "op": rng.choice(("gt", "lt")), "value": rng.randint(0, hi)}
    f, vocab = rng.choice((("status", STATUSES), ("channel", CHANNELS), ("custom.plan", PLANS)))
    return {"field": f, "op": "is_not", "value": rng.choice(vocab)}


def make_rules(rng: random.Random, n: int, regexes: bool) -> list[Rule]:
    rules = []
    for i in range(n):
        k = rng.randint(2, 5)
        n_any = k // 2 if k >= 4 else (rng.choice((0, 2)) if k == 3 else 0)
        n_all = k - n_any
        all_part: list[dict[str, Any]] = [_leaf(rng, regexes, False) for _ in range(n_all)]
        if n_any:
            all_part.insert(rng.randint(0, len(all_part)),
                            {"any": [_leaf(rng, regexes, True) for _ in range(n_any)]})
        rules.append({"id": f"r{i}", "name": f"rule {i}", "triggers": [rng.choice(EVENT_TYPES)],
                      "conditions": {"all": all_part},
                      "actions": [{"type": "add_tags", "tags": [f"r-{i}"]}]})
    return rules


def leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "all" in node or "any" in node:
        return [leaf for c in node.get("all", node.get("any", [])) for leaf in leaves(c)]
    return [node]
