"""The fields conditions may read, their types, and how each is read from a ticket, event or vars.

Reading never raises: a missing key, or a value of the wrong shape on the way (a `contact` that is
not an object), reads as None.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .actors import actor_of

FieldType = Literal["text", "list", "timestamp", "any"]
# "context": counts the service keeps beside the ticket (server/customers.py): read from the
# ticket the rules see, but with no previous value to compare (`changed*` does not apply).
Source = Literal["ticket", "event", "vars", "context"]

_TICKET_TEXT = ("subject", "description", "status", "priority", "channel", "department", "assignee")
_TIMESTAMPS = ("created_at", "updated_at", "last_customer_message_at", "last_agent_message_at")

# Settable by the `set` action, with the values each may take (None: any non-empty string or null).
SETTABLE: dict[str, frozenset[str] | None] = {
    "status": frozenset({"new", "open", "pending", "on_hold", "solved", "closed"}),
    "priority": frozenset({"low", "normal", "high", "urgent"}),
    "department": None,
    "assignee": None,
}
STATUSES = SETTABLE["status"]
PRIORITIES = SETTABLE["priority"]

# Tags and group names: what an event may carry (server/api/validate.py checks events with these),
# and so what a rule's actions and a script's returned updates may add or remove. They are shown
# on the managers' page, in logs and webhooks, matched by rules, and group names are parts of store
# keys: a rule could add a 5,000-character tag with a newline in it that no event could carry.
MAX_TAGS = 100        # tags in one event's list, one action's `tags`, one script return's list
MAX_TAG_CHARS = 200   # characters of one tag or group name
CONTROL = re.compile(r"[\x00-\x1f\x7f]")   # what no name or id may hold


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be a tag or group name (None: it can)."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > MAX_TAG_CHARS:
        return (f"is {len(name)} characters; a tag or group name is at most {MAX_TAG_CHARS} "
                f"characters (MAX_TAG_CHARS)")
    if CONTROL.search(name):
        return "must not contain control characters"
    return None


def names_problem(names: Any, what: str = "tags") -> tuple[str, str] | None:
    """The first problem of a list of tags or group names an action or script adds or removes, as
    (path suffix, reason): a non-empty list of at most MAX_TAGS valid names."""
    if type(names) is not list or not names:
        return "", "must be a non-empty list of non-empty strings"
    if len(names) > MAX_TAGS:
        return "", f"has {len(names)} {what}; the limit is {MAX_TAGS} {what} (MAX_TAGS)"
    for i, name in enumerate(names):
        if why := name_problem(name):
            return f"[{i}]", why
    return None
# Fields whose values have an order: `gt`/`gte`/`lt`/`lte` with a value from the order compare
# positions in it (`priority gt normal`), an addition beside the ops' numeric meaning.
ORDINAL: dict[str, tuple[str, ...]] = {
    "status": ("new", "open", "pending", "on_hold", "solved", "closed"),
    "priority": ("low", "normal", "high", "urgent"),
}


@dataclass(frozen=True)
class Field:
    """A field named in a condition. `read(ticket, event, vars)` returns its raw value."""

    name: str
    type: FieldType
    source: Source
    read: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]

    @property
    def changeable(self) -> bool:
        """`changed*` compares ticket versions: fields of the event or of vars have no previous."""
        return self.source == "ticket"


def _sub(obj: Any, key: str) -> Any:
    return obj.get(key) if type(obj) is dict else None


def _ticket_field(key: str) -> Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]:
    return lambda t, e, v: t.get(key)


def _nested_field(outer: str, key: str) -> Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]:
    def read(t: dict[str, Any], e: dict[str, Any], v: dict[str, Any]) -> Any:
        inner = t.get(outer)
        return inner.get(key) if type(inner) is dict else None
    return read


def _contact_custom(key: str) -> Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]:
    def read(t: dict[str, Any], e: dict[str, Any], v: dict[str, Any]) -> Any:
        return _sub(_sub(t.get("contact"), "custom"), key)
    return read


def _company_field(key: str) -> Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]:
    def read(t: dict[str, Any], e: dict[str, Any], v: dict[str, Any]) -> Any:
        return _sub(_sub(t.get("contact"), "company"), key)
    return read


def _company_custom(key: str) -> Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]:
    def read(t: dict[str, Any], e: dict[str, Any], v: dict[str, Any]) -> Any:
        return _sub(_sub(_sub(t.get("contact"), "company"), "custom"), key)
    return read


def _message_field(key: str) -> Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]:
    def read(t: dict[str, Any], e: dict[str, Any], v: dict[str, Any]) -> Any:
        m = e.get("message")
        return m.get(key) if type(m) is dict else None
    return read


def _fixed() -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for name in _TICKET_TEXT:
        fields[name] = Field(name, "text", "ticket", _ticket_field(name))
    for name in _TIMESTAMPS:
        fields[name] = Field(name, "timestamp", "ticket", _ticket_field(name))
    fields["tags"] = Field("tags", "list", "ticket", _ticket_field("tags"))
    fields["contact.email"] = Field("contact.email", "text", "ticket", _nested_field("contact", "email"))
    fields["contact.name"] = Field("contact.name", "text", "ticket", _nested_field("contact", "name"))
    fields["contact.groups"] = Field("contact.groups", "list", "ticket", _nested_field("contact", "groups"))
    fields["contact.company.name"] = Field("contact.company.name", "text", "ticket",
                                           _company_field("name"))
    fields["contact.company.groups"] = Field("contact.company.groups", "list", "ticket",
                                             _company_field("groups"))
    for name in ("open_tickets", "tickets_30d"):
        fields[f"contact.{name}"] = Field(f"contact.{name}", "any", "context",
                                          _nested_field("contact", name))
    for name in ("message_count", "customer_messages_since_agent"):
        fields[f"ticket.{name}"] = Field(f"ticket.{name}", "any", "context", _ticket_field(name))
    for key in ("author", "body", "channel"):
        fields[f"message.{key}"] = Field(f"message.{key}", "text", "event", _message_field(key))
    fields["event.type"] = Field("event.type", "text", "event", lambda t, e, v: e.get("type"))
    fields["event.actor"] = Field("event.actor", "text", "event", lambda t, e, v: actor_of(e))
    return fields


FIXED_FIELDS: dict[str, Field] = _fixed()
# Prefixed families: everything after the prefix is the key (flat; it may contain dots).
_PREFIXED: tuple[tuple[str, Source, Callable[[str], Callable[..., Any]]], ...] = (
    ("custom.", "ticket", lambda k: _nested_field("custom", k)),
    ("contact.custom.", "ticket", _contact_custom),
    ("contact.company.custom.", "ticket", _company_custom),
    ("vars.", "vars", lambda k: (lambda t, e, v: v.get(k))),
)


def lookup_field(name: object) -> Field | None:
    """The Field a condition names, or None if there is no such field."""
    if not isinstance(name, str):
        return None
    fixed = FIXED_FIELDS.get(name)
    if fixed is not None:
        return fixed
    for prefix, source, make in _PREFIXED:
        if name.startswith(prefix) and len(name) > len(prefix):
            return Field(name, "any", source, make(name[len(prefix):]))
    return None


FIELD_NAMES_HELP = (
    "subject, description, status, priority, channel, department, assignee, tags, custom.<key>, "
    "contact.email, contact.name, contact.groups, contact.custom.<key>, contact.company.name, "
    "contact.company.groups, contact.company.custom.<key>, contact.open_tickets, "
    "contact.tickets_30d, ticket.message_count, ticket.customer_messages_since_agent, "
    "message.author, "
    "message.body, message.channel, event.type, event.actor, vars.<name>, created_at, updated_at, "
    "last_customer_message_at, last_agent_message_at"
)
