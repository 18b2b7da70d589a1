"""Loop and flood guards: pure decisions over a ticket's own bookkeeping. No Redis, no clock.

Automation loops are what users of help desks fear most: a rule answers an auto-reply, the
auto-reply answers the answer, and a customer gets fifty mails. Three guards, each explained in the
run record (`notes`, and `suppressed`: `[{"effect", "reason"}]`):

1. **Auto-replies.** An event whose message carries an auto-reply marker (`message.auto_reply:
   true`, or in `message.headers`: `Auto-Submitted` other than `no`, `X-Autoreply`,
   `X-Autorespond`, `Precedence: bulk | junk | list`) does not trigger `send_message`, unless the
   action says `"allow_auto_reply": true` (its effect then carries that flag). The message is still
   mirrored and every other action still runs.
2. **Send caps.** Per ticket and per effect type, `send_message` and `notify` effects are capped per
   sliding window (default 10 per 10 minutes and 25 per hour); over a cap the effect is removed.
   Only effects that go out count.
3. **Generated events.** Events the service generates (timers: `time.reached`, `sla.*`,
   `ticket.woke`) and events whose actor is `automation` are counted per ticket; past the cap
   (default 20 a minute) the event's rules pass is skipped.

The counts live with the ticket, under `ticket.automation.guards`, so they are written in the same
transaction as the ticket: `{"sent": {"send_message": [at, ...], "notify": [at, ...]},
"generated": [at, ...]}` (RFC 3339 instants, newest last, pruned to what a cap can still see).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rules import actor_of, format_timestamp, parse_duration, parse_timestamp
from rules.actors import GENERATED_EVENT_TYPES

__all__ = ["GuardLimits", "GuardOutcome", "DEFAULT_LIMITS", "limits_from", "auto_reply_marker", "guard_effects",
           "admit_generated", "is_generated", "CAPPED_EFFECTS"]

CAPPED_EFFECTS = ("send_message", "notify")
_MAX_CAPS = 5
_MAX_COUNT = 10_000
_MAX_WINDOW = timedelta(days=1)
_GENERATED_WINDOW = timedelta(minutes=1)
# Auto-reply headers (RFC 3834 and the de-facto ones), by lower-case name -> values that mean "no".
_NOT_AUTO = frozenset({"no", "false", "0", ""})
_BULK = frozenset({"bulk", "junk", "list"})


@dataclass(frozen=True)
class GuardLimits:
    """The guards' limits for one workspace. `send_caps`: (count, window) pairs, each applied per
    ticket and per effect type; `generated_per_minute`: generated events per ticket per minute."""

    send_caps: tuple[tuple[int, timedelta], ...] = ((10, timedelta(minutes=10)), (25, timedelta(hours=1)))
    generated_per_minute: int = 20

    @classmethod
    def from_spec(cls, spec: Any) -> tuple[GuardLimits | None, list[dict[str, str]]]:
        """Check a settings object `{"send_caps": [{"count": 10, "per": "10m"}, ...],
        "generated_per_minute": 20}` (both keys optional: defaults). Returns (limits, problems)."""
        problems: list[dict[str, str]] = []
        if type(spec) is not dict:
            return None, [{"path": "", "reason": "must be an object with send_caps and/or generated_per_minute"}]
        for key in sorted(set(spec) - {"send_caps", "generated_per_minute"}):
            problems.append({"path": key, "reason": "unknown key; guards have send_caps, generated_per_minute"})
        caps = DEFAULT_LIMITS.send_caps
        if "send_caps" in spec:
            caps = _caps(spec["send_caps"], problems)
        per_minute = spec.get("generated_per_minute", DEFAULT_LIMITS.generated_per_minute)
        if not _count_ok(per_minute):
            problems.append({"path": "generated_per_minute", "reason": f"must be an integer from 1 to {_MAX_COUNT}"})
        if problems:
            return None, problems
        return cls(caps, per_minute), []

    def to_spec(self) -> dict[str, Any]:
        return {"send_caps": [{"count": c, "per": _format_span(w)} for c, w in self.send_caps],
                "generated_per_minute": self.generated_per_minute}


DEFAULT_LIMITS = GuardLimits()


def limits_from(spec: Any) -> GuardLimits:
    """The limits a stored object says; the defaults when none is stored (None) or when it no
    longer passes from_spec (a later, stricter check must not fail every event)."""
    if spec is None:
        return DEFAULT_LIMITS
    limits, _ = GuardLimits.from_spec(spec)
    return limits or DEFAULT_LIMITS


def _count_ok(v: Any) -> bool:
    return type(v) is int and 1 <= v <= _MAX_COUNT


def _caps(raw: Any, problems: list[dict[str, str]]) -> tuple[tuple[int, timedelta], ...]:
    if type(raw) is not list or len(raw) > _MAX_CAPS:
        problems.append({"path": "send_caps", "reason": f"must be a list of at most {_MAX_CAPS} "
                                                        '{"count": n, "per": "10m"} objects'})
        return ()
    out = []
    for i, cap in enumerate(raw):
        path = f"send_caps[{i}]"
        if type(cap) is not dict or set(cap) != {"count", "per"}:
            problems.append({"path": path, "reason": 'must be {"count": n, "per": "<duration>"}'})
            continue
        if not _count_ok(cap["count"]):
            problems.append({"path": f"{path}.count", "reason": f"must be an integer from 1 to {_MAX_COUNT}"})
        span = parse_duration(cap["per"])
        if span is None or span > _MAX_WINDOW:
            problems.append({"path": f"{path}.per", "reason": "must be a duration like '10m' or '1h', at most 1d"})
            continue
        out.append((cap["count"], span))
    return tuple(out)


def _format_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


@dataclass
class GuardOutcome:
    """What the guards let through, what they removed and why, and the ticket's new counts."""

    effects: list[dict[str, Any]]
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- auto-replies

def _header_items(headers: Any) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs from an object or a list of [name, value] pairs; a list value
    gives one pair per item."""
    pairs: list[tuple[Any, Any]] = []
    if type(headers) is dict:
        pairs = list(headers.items())
    elif type(headers) is list:
        pairs = [tuple(p) for p in headers if type(p) is list and len(p) == 2]
    out = []
    for name, value in pairs:
        if not isinstance(name, str):
            continue
        for v in (value if type(value) is list else [value]):
            if isinstance(v, (str, bool, int)) or v is None:
                out.append((name.strip().lower(), "" if v is None else str(v)))
    return out


def auto_reply_marker(event: Any) -> str | None:
    """Why this event's message is an auto-reply (the marker, for the run notes), or None."""
    message = event.get("message") if type(event) is dict else None
    if type(message) is not dict:
        return None
    if message.get("auto_reply") is True:
        return "message.auto_reply is true"
    for name, value in _header_items(message.get("headers")):
        token = value.split(";", 1)[0].strip().lower()
        if name == "auto-submitted" and token != "no":
            return f"Auto-Submitted: {value.strip()}"
        if name in ("x-autoreply", "x-autorespond") and token not in _NOT_AUTO:
            return f"{'X-Autoreply' if name == 'x-autoreply' else 'X-Autorespond'}: {value.strip()}"
        if name == "precedence" and token in _BULK:
            return f"Precedence: {value.strip()}"
    return None


# ---------------------------------------------------------------- bookkeeping

def _times(raw: Any) -> list[datetime]:
    out = []
    for item in raw if type(raw) is list else []:
        t = parse_timestamp(item)
        if t is not None:
            out.append(t)
    return sorted(out)


def _keep(times: list[datetime], now: datetime, window: timedelta, most: int) -> list[str]:
    """The instants a cap can still see: within the window, at most the newest `most`."""
    recent = [t for t in times if now - t < window]
    return [format_timestamp(t) for t in recent[-most:]] if most > 0 else []


def _guards_state(ticket: dict[str, Any]) -> dict[str, Any]:
    auto = ticket.get("automation")
    state = auto.get("guards") if type(auto) is dict else None
    return state if type(state) is dict else {}


# ---------------------------------------------------------------- effects

def guard_effects(effects: list[dict[str, Any]], event: dict[str, Any], ticket: dict[str, Any],
                  now: datetime, limits: GuardLimits = DEFAULT_LIMITS) -> GuardOutcome:
    """Remove the send_message/notify effects the guards refuse; count those that go out.

    `ticket` is read for its `automation.guards` counts (not changed); the outcome's `state` is
    the new `automation.guards` to store with the ticket."""
    state = dict(_guards_state(ticket))
    sent_raw = _s if type(_s := state.get("sent")) is dict else {}
    sent = {kind: _times(sent_raw.get(kind)) for kind in CAPPED_EFFECTS}
    marker = auto_reply_marker(event)
    out = GuardOutcome(effects=[])
    for effect in effects:
        kind = effect.get("type") if type(effect) is dict else None
        if kind not in CAPPED_EFFECTS:
            out.effects.append(effect)
            continue
        reason = None
        if kind == "send_message" and marker is not None and effect.get("allow_auto_reply") is not True:
            reason = (f"auto_reply: the event's message is an auto-reply ({marker}); send_message "
                      "needs \"allow_auto_reply\": true to answer it")
        else:
            for count, window in limits.send_caps:
                recent = sum(1 for t in sent[kind] if now - t < window)
                if recent >= count:
                    reason = (f"send_cap: {count} {kind} per {_format_span(window)} reached for this "
                              "ticket")
                    break
        if reason is None:
            out.effects.append(effect)
            sent[kind].append(now)
        else:
            out.suppressed.append({"effect": effect, "reason": reason})
            out.notes.append(f"{kind} suppressed: {reason}")
    widest = max((w for _, w in limits.send_caps), default=timedelta(0))
    most = max((c for c, _ in limits.send_caps), default=0)
    state["sent"] = {kind: _keep(sent[kind], now, widest, most) for kind in CAPPED_EFFECTS}
    out.state = state
    return out


# ---------------------------------------------------------------- generated events

def is_generated(event: Any) -> bool:
    """An event the automation made: one of the service's timer events, or one whose actor is
    `automation` (e.g. a help desk reporting back a message one of our rules sent)."""
    if type(event) is not dict:
        return False
    return event.get("type") in GENERATED_EVENT_TYPES or actor_of(event) == "automation"


def admit_generated(event: dict[str, Any], ticket: dict[str, Any], now: datetime,
                    limits: GuardLimits = DEFAULT_LIMITS) -> tuple[bool, dict[str, Any], str | None]:
    """(run the rules?, the new automation.guards, note). Every generated event is counted, the
    suppressed ones too, so a storm stays capped while it lasts; other events pass untouched."""
    state = dict(_guards_state(ticket))
    if not is_generated(event):
        return True, state, None
    cap = limits.generated_per_minute
    times = [t for t in _times(state.get("generated")) if now - t < _GENERATED_WINDOW]
    admitted = len(times) < cap
    times.append(now)
    state["generated"] = _keep(times, now, _GENERATED_WINDOW, cap)
    if admitted:
        return True, state, None
    return False, state, (f"generated_cap: {cap} automation-generated events per minute reached for this "
                          f"ticket; rules not run for this {event.get('type')} event")
