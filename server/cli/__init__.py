"""The `deskflow` command.

Service:   serve (API + worker, one process), api, worker                     -- cli/service.py
Operator:  workspace create, keys create, secrets-key -- straight to the store (DESKFLOW_REDIS_URL,
           or the embedded store while no server runs on it), or over HTTP with --url -- cli/operator.py
Users:     events send, rules list|enable|disable, export, plan, apply -- over HTTP to a running
           server (--url, --key; or DESKFLOW_URL, DESKFLOW_KEY)                 -- cli/user.py
Every HTTP call goes through the one client in cli/client.py.
"""

from __future__ import annotations

from server.cli import operator, service, user  # noqa: F401  (they register their commands)
from server.cli.base import main

__all__ = ["main"]
