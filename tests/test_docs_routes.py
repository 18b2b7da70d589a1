"""docs/api.md lists every route the service serves, with the role the code requires (issue 12,
item 9): a new route without its reference entry, or a role that changed, fails here."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from server.app import create_app
from server.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
_ROLE_WORDS = {"root": "root token", "events": "ingest"}


def _table() -> dict[tuple[str, str], str]:
    text = DOC.read_text(encoding="utf-8").split("## Every route", 1)[1]
    rows = re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| ([^|]+) \|$", text, re.M)
    return {(m, p): role.strip() for m, p, role in rows}


def test_every_served_route_is_in_the_reference_with_its_role() -> None:
    table = _table()
    app = create_app(Settings(data_file=None))
    missing, wrong = [], []
    for route in app.routes:
        if not isinstance(route, Route) or route.path == "/admin/":
            continue
        path = route.path.replace(":str}", "}")
        role = getattr(route.endpoint, "deskflow_role", None)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            documented = table.get((method, path))
            if documented is None:
                missing.append(f"{method} {path}")
            elif role and not documented.startswith(_ROLE_WORDS.get(role, role)):
                wrong.append(f"{method} {path}: code says {role}, docs say {documented}")
    assert missing == [] and wrong == []


def test_every_route_has_its_own_entry_in_the_text() -> None:
    """Not only the table: each /v1 path is described somewhere above it."""
    body = DOC.read_text(encoding="utf-8").split("## Every route", 1)[0]
    absent = [p for (_, p) in _table() if p.startswith("/v1/")
              and p.split("{")[0].rstrip("/") not in body]
    assert absent == []
