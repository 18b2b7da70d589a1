"""HTTP endpoints, one module per resource; `ROUTES` is the app's whole route list."""

from __future__ import annotations

from server import audit
from server.api import (
    backtest,
    companies,
    contacts,
    drafts,
    events,
    export,
    groups,
    guards,
    health,
    openapi,
    rule_days,
    rules,
    runs_list,
    scripts,
    sla,
    stats,
    tickets,
    webhook,
    workspace_settings,
    workspaces,
)

__all__ = ["ROUTES"]

ROUTES = [*health.routes, *openapi.routes, *workspaces.routes, *events.routes, *tickets.routes,
          *runs_list.routes, *rule_days.routes, *backtest.routes, *drafts.routes,
          *rules.routes, *groups.routes, *contacts.routes, *companies.routes, *scripts.routes,
          *sla.routes, *stats.routes,
          *webhook.routes, *audit.routes(), *export.routes, *guards.routes,
          *workspace_settings.routes]
