"""Seeded generator of help-desk rules and events for bench/rules_bench.py.

The generator aims at the workload the rules engine is built for: thousands of rules of which only a
handful fit any one event. Every rule has one *anchor*, an equality/membership condition on a large
vocabulary (a contact group, a tag, a product), plus 1-4 other conditions drawn from the usual mix
(status/priority/channel `is`/`in`, `contains` on subject or message body, `custom.*` `is`/`gt`,
~5% `matches`). Conditions are shuffled, so the anchor is not always first: users write conditions
in any order, and an engine that merely short-circuits left to right gets no free ride.

Only ASCII text is generated, so `str.lower` (zen-engine, rule-engine) and `str.casefold`
(deskflow) agree; case is varied on the event side to exercise case-insensitive comparisons.
Regexes avoid features that differ between Python `re` and Rust `regex` (no look-around or
back-references) and never contain a double quote (zen string literals have no escapes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = ("ticket.created", "ticket.updated", "message.received", "message.sent")
EVENT_WEIGHTS = (0.30, 0.25, 0.35, 0.10)
MESSAGE_TYPES = frozenset({"message.received", "message.sent"})

STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "chat", "phone", "web", "api", "social", "sms", "whatsapp")
PLANS = ("free", "starter", "pro", "business", "enterprise", "education")

_BASE_WORDS = (
    "refund invoice billing charge payment card declined subscription cancel upgrade downgrade "
    "plan account login password reset locked access error crash bug broken slow outage down "
    "shipping delivery package tracking delayed lost damaged return exchange warranty repair "
    "order receipt discount coupon promo price tax vat quote contract renewal trial license "
    "seat admin user invite permission role export import report dashboard integration api "
    "webhook token sync backup restore migrate install update version mobile android iphone "
    "desktop browser email notification spam unsubscribe privacy gdpr delete data security "
    "fraud chargeback dispute urgent asap help question feedback complaint manager escalate "
    "thanks please hello issue problem still again today yesterday week month customer team "
    "support agent callback phone chat wrong missing duplicate double twice never received "
    "address change update profile name company vat number bank transfer wire paypal stripe"
).split()

_SYLLABLES = (
    "ka ro mi tu se la ven dor pix zal qua ber tin mok rus fel gan hob jit lor nap pev sol "
    "tar vul wex yor zim bra cle dri fro gli pla sni tro"
).split()


@dataclass
class Vocab:
    """Word lists sized so that one equality/membership condition is selective on its own."""

    words: list[str]
    groups: list[str]
    tags: list[str]
    products: list[str]
    regions: list[str]
    departments: list[str]
    action_tags: list[str] = field(default_factory=list)


def build_vocab(rng: random.Random) -> Vocab:
    def pseudo(n: int, used: set[str]) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
            if w not in used:
                used.add(w)
                out.append(w)
        return out

    used: set[str] = set(_BASE_WORDS)
    words = list(dict.fromkeys(_BASE_WORDS)) + pseudo(600, used)
    return Vocab(
        words=words,
        groups=[f"acct-{i:04d}" for i in range(400)] + ["vip", "enterprise", "beta", "partner"]
        + [f"{w}-customers" for w in pseudo(100, used)],
        tags=[f"{w}" for w in pseudo(300, used)] + [f"topic-{i:03d}" for i in range(200)],
        products=[f"{w}-{i % 10}" for i, w in enumerate(pseudo(150, used))],
        regions=[f"region-{i:02d}" for i in range(30)],
        departments=[f"dept-{w}" for w in pseudo(40, used)],
        action_tags=[f"auto-{w}" for w in pseudo(200, used)],
    )


# --------------------------------------------------------------------------------------- events


def _vary_case(rng: random.Random, word: str) -> str:
    r = rng.random()
    if r < 0.15:
        return word.capitalize()
    if r < 0.20:
        return word.upper()
    return word


def _sentence(rng: random.Random, v: Vocab, n_chars: int) -> str:
    parts: list[str] = []
    size = 0
    while size < n_chars:
        r = rng.random()
        if r < 0.03:
            w = f"order #{rng.randint(10, 999999)}"
        else:
            w = _vary_case(rng, rng.choice(v.words))
        parts.append(w)
        size += len(w) + 1
    return " ".join(parts)


def make_events(rng: random.Random, v: Vocab, n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (event, ticket) pairs; `ticket` is the ticket after the event's data was merged."""
    out = []
    for i in range(n):
        etype = rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0]
        custom: dict[str, Any] = {"plan": rng.choice(PLANS), "region": rng.choice(v.regions)}
        if rng.random() < 0.9:
            custom["product"] = _vary_case(rng, rng.choice(v.products))
        if rng.random() < 0.9:
            custom["seats"] = rng.randint(1, 5000)
        if rng.random() < 0.8:
            custom["mrr"] = round(rng.uniform(0, 20000), 2)
        ticket: dict[str, Any] = {
            "id": f"T-{i}",
            "subject": _sentence(rng, v, rng.randint(25, 60)),
            "description": _sentence(rng, v, 120),
            "status": rng.choice(STATUSES),
            "priority": rng.choice(PRIORITIES),
            "channel": rng.choice(CHANNELS),
            "department": rng.choice(v.departments) if rng.random() < 0.5 else None,
            "assignee": None,
            "tags": [_vary_case(rng, t) for t in rng.sample(v.tags, rng.randint(2, 5))],
            "custom": custom,
            "contact": {
                "id": f"C-{i}",
                "email": f"user{i}@example.com",
                "name": f"User {i}",
                "groups": [_vary_case(rng, g) for g in rng.sample(v.groups, rng.randint(1, 3))],
                "custom": {},
            },
            "created_at": "2026-11-20T08:00:00Z",
            "updated_at": "2026-11-23T08:00:00Z",
        }
        event: dict[str, Any] = {
            "id": f"evt-{i}",
            "type": etype,
            "occurred_at": "2026-11-23T08:00:00Z",
            "ticket": {"id": ticket["id"]},
        }
        if etype in MESSAGE_TYPES:
            author = "customer" if etype == "message.received" else "agent"
            event["message"] = {"author": author, "body": _sentence(rng, v, 200),
                                "channel": ticket["channel"]}
        out.append((event, ticket))
    return out


# ---------------------------------------------------------------------------------------- rules


def _cond(f: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": f, "op": op, "value": value}


def _anchor(rng: random.Random, v: Vocab) -> dict[str, Any]:
    r = rng.random()
    if r < 0.4:
        return _cond("contact.groups", "includes", rng.choice(v.groups))
    if r < 0.8:
        return _cond("tags", "includes", rng.choice(v.tags))
    return _cond("custom.product", "is", rng.choice(v.products))


def _regex(rng: random.Random, v: Vocab, on_message: bool,
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A `matches` condition and the plain `contains` that stands in for it without regexes."""
    w1, w2 = rng.choice(v.words), rng.choice(v.words)
    pattern, word = rng.choice((
        (rf"\b{w1}\b", w1),
        (rf"{w1}(s|ed|ing)?\s+{w2}", w1),
        (r"order\s*#?\d{4,}", "order"),
        (rf"^{w1}", w1),
        (rf"({w1}|{w2})\w*", w1),
        (rf"{w1}.{{0,40}}{w2}", w1),
    ))
    assert '"' not in pattern and "'" not in pattern
    f = "message.body" if on_message and rng.random() < 0.6 else "subject"
    return _cond(f, "matches", pattern), _cond(f, "contains", word)


def _extra(rng: random.Random, v: Vocab, on_message: bool) -> dict[str, Any]:
    kind = rng.choices(
        ("status", "priority", "channel", "tag", "subject", "body", "region", "plan", "num"),
        (12, 12, 12, 8, 14, 14 if on_message else 0, 8, 8, 12))[0]
    if kind in ("status", "priority", "channel"):
        values = {"status": STATUSES, "priority": PRIORITIES, "channel": CHANNELS}[kind]
        if rng.random() < 0.5:
            return _cond(kind, "is", rng.choice(values))
        return _cond(kind, "in", rng.sample(values, rng.randint(2, 3)))
    if kind == "tag":
        return _cond("tags", "includes", rng.choice(v.tags))
    if kind == "subject":
        return _cond("subject", "contains", rng.choice(v.words))
    if kind == "body":
        return _cond("message.body", "contains", rng.choice(v.words))
    if kind == "region":
        return _cond("custom.region", "is", rng.choice(v.regions))
    if kind == "plan":
        return _cond("custom.plan", "is", rng.choice(PLANS))
    key = rng.choice(("seats", "mrr"))
    bound = rng.randint(1, 5000) if key == "seats" else rng.randint(0, 20000)
    return _cond(f"custom.{key}", "gt", bound)


def _actions(rng: random.Random, v: Vocab) -> list[dict[str, Any]]:
    pool = [
        lambda: {"type": "set", "field": "priority", "value": rng.choice(PRIORITIES)},
        lambda: {"type": "add_tags", "tags": rng.sample(v.action_tags, rng.randint(1, 2))},
        lambda: {"type": "set", "field": "department", "value": rng.choice(v.departments)},
        lambda: {"type": "set", "field": "custom.queue", "value": f"q{rng.randint(1, 50)}"},
    ]
    return [f() for f in rng.sample(pool, rng.randint(1, 3))]


def make_rules(rng: random.Random, v: Vocab, n: int, regex_share: float = 0.05,
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """n rules, about `regex_share` of them with one `matches` condition; and the same n rules
    with each `matches` replaced by a `contains`, so the two variants differ only there."""
    with_re: list[dict[str, Any]] = []
    without_re: list[dict[str, Any]] = []
    for i in range(n):
        k = 1 if rng.random() < 0.7 else 2
        triggers = sorted(set(rng.choices(EVENT_TYPES, EVENT_WEIGHTS, k=k)))
        on_message = all(t in MESSAGE_TYPES for t in triggers)
        n_conds = rng.randint(2, 5)
        conds = [_anchor(rng, v)]
        plain = list(conds)
        if rng.random() < regex_share:
            regex, fallback = _regex(rng, v, on_message)
            conds.append(regex)
            plain.append(fallback)
        while len(conds) < n_conds:
            extra = _extra(rng, v, on_message)
            conds.append(extra)
            plain.append(extra)
        order = list(range(len(conds)))
        rng.shuffle(order)
        base = {"id": f"r{i:05d}", "name": f"rule {i}", "triggers": triggers,
                "actions": _actions(rng, v)}
        with_re.append({**base, "conditions": {"all": [conds[j] for j in order]}})
        without_re.append({**base, "conditions": {"all": [plain[j] for j in order]}})
    return with_re, without_re


def inert_actions(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same rules with an action no condition reads, for the conditions-only agreement check.

    deskflow evaluates in one ordered pass where a rule sees the ticket as earlier rules left it
    (`set priority` can flip a later `priority is` condition); the peers check conditions against
    the incoming ticket only. With inert actions the three must agree exactly.
    """
    return [{**r, "actions": [{"type": "set", "field": "custom.bench_hit", "value": True}]}
            for r in rules]


# ------------------------------------------------------------------------------ targeted events


def _regex_example(pattern: str) -> str:
    """A text the generator's regex templates match (see _regex), e.g. `order\\s*#?\\d{4,}` ->
    `order #12345`."""
    import re

    text = re.sub(r"\((\w+)\|\w+\)", r"\1", pattern)          # (a|b) -> a
    for old, new in ((r"(s|ed|ing)?", ""), (r"\s+", " "), (r"\s*", " "), ("#?", "#"),
                     (r"\d{4,}", "12345"), (r".{0,40}", " x "), (r"\w*", ""), (r"\b", " "),
                     ("^", "")):
        text = text.replace(old, new)
    return text.strip()


def make_targeted(rng: random.Random, rules: list[dict[str, Any]],
                  events: list[tuple[dict[str, Any], dict[str, Any]]], n: int,
                  ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """n events each edited so that one randomly chosen rule's conditions hold (mostly: two
    conditions on one field can still conflict). Random events rarely match at 10-100 rules;
    these give the agreement check positive matches of every op."""
    import copy

    out = []
    for rule in rng.sample(rules, min(n, len(rules))):
        etype = rng.choice(rule["triggers"])
        event, ticket = copy.deepcopy(rng.choice([p for p in events if p[0]["type"] == etype]))
        prefix: dict[str, str] = {}
        for c in rule["conditions"]["all"]:
            f, op, v = c["field"], c["op"], c.get("value")
            if f.startswith("message."):
                holder, key = event["message"], "body"
            elif f.startswith("custom."):
                holder, key = ticket["custom"], f.split(".", 1)[1]
            else:
                holder, key = ticket, f
            if f == "contact.groups":
                holder, key = ticket["contact"], "groups"
            if op == "is":
                holder[key] = _vary_case(rng, v)
            elif op == "in":
                holder[key] = _vary_case(rng, rng.choice(v))
            elif op == "includes":
                holder[key] = holder[key] + [v.upper()]
            elif op == "contains":
                holder[key] = f"{holder[key]} {_vary_case(rng, v)}"
            elif op == "gt":
                holder[key] = v + rng.randint(1, 100)
            elif op == "matches":
                example = _regex_example(v)
                if v.startswith("^"):
                    prefix[key] = example
                else:
                    holder[key] = f"{holder[key]} {example}"
        for key, text in prefix.items():
            holder = event["message"] if key == "body" else ticket
            holder[key] = f"{text} {holder[key]}"
        out.append((event, ticket))
    return out
