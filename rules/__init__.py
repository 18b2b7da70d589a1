"""deskflow's native rules engine: pure Python, no I/O, no clock of its own.

    ruleset = compile_rules(rules)                       # RuleError names rule, path and reason
    ev = ruleset.evaluate(event, ticket, previous=None, now=None, handlers=None)
    ev.matched, ev.changes, ev.effects, ev.ticket, ev.explain, ev.vars

See docs/rules-engine.md for the surface and the semantics API.md leaves open.
"""
from __future__ import annotations

from .actions import apply_updates
from .actors import ACTORS, actor_of
from .calendar import Calendar
from .compile import TRIGGERS, validate_rule
from .durations import format_timestamp, parse_duration, parse_timestamp
from .errors import RuleError, UpdateError
from .evaluation import Evaluation
from .ruleset import RuleSet, compile_rules, dry_run
from .templates import render
from .updates import diff

__all__ = [
    "ACTORS", "Calendar", "TRIGGERS", "actor_of", "Evaluation", "RuleError", "RuleSet", "UpdateError", "apply_updates", "compile_rules",
    "diff", "dry_run", "format_timestamp", "parse_duration", "parse_timestamp", "render", "validate_rule",
]
