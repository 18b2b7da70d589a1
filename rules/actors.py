"""Who caused an event: `event.actor`, one of customer, agent, system, automation.

One pure function, so the engine (the `event.actor` field) and the service (loop guards) agree:

1. the event's own `actor`, when it is one of the four (an integration that knows better says so);
2. else a message event's author: `customer`, `agent`, `system` or `automation` (case ignored);
   with no author, `message.received` is the customer's and `message.sent` the agent's (the
   same defaults the service uses for `last_customer_message_at` / `last_agent_message_at`);
3. else the events the service generates from its timers (`time.reached`, `sla.warning`,
   `sla.breached`, `ticket.woke`) are the `system`'s;
4. else unknown: None (`ticket.created` / `ticket.updated` without an `actor`, or a message whose
   author is something else).
"""
from __future__ import annotations

from typing import Any

ACTORS: tuple[str, ...] = ("customer", "agent", "system", "automation")
GENERATED_EVENT_TYPES = frozenset({"time.reached", "sla.warning", "sla.breached", "ticket.woke"})
_DEFAULT_AUTHOR = {"message.received": "customer", "message.sent": "agent"}


def _actor(value: Any) -> str | None:
    if isinstance(value, str):
        folded = value.strip().casefold()
        if folded in ACTORS:
            return folded
    return None


def actor_of(event: Any) -> str | None:
    """The actor of an event (see the module docstring); never raises on odd data."""
    if type(event) is not dict:
        return None
    own = _actor(event.get("actor"))
    if own is not None:
        return own
    etype = event.get("type")
    if etype in _DEFAULT_AUTHOR:
        message = event.get("message")
        author = message.get("author") if type(message) is dict else None
        if author is None:
            return _DEFAULT_AUTHOR[etype]
        return _actor(author)
    if etype in GENERATED_EVENT_TYPES:
        return "system"
    return None


__all__ = ["ACTORS", "GENERATED_EVENT_TYPES", "actor_of"]
