"""Operator commands: `workspace create`, `keys create` (straight to the store, or over HTTP with
--url) and `secrets-key`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from server.cli.base import main
from server.cli.client import call_json, join
from server.settings import Settings

async def _with_store(fn: Any) -> Any:
    from server.store.connect import close_store, open_store

    store = await open_store(Settings.from_env())
    try:
        return await fn(store)
    finally:
        await close_store(store)


@main.group()
def workspace() -> None:
    """Workspaces (operator)."""


@workspace.command("create")
@click.argument("name")
@click.option("--url", default=None, help="Create over HTTP on this server (needs --root-token).")
@click.option("--root-token", envvar="DESKFLOW_ROOT_TOKEN", default=None)
def workspace_create(name: str, url: str | None, root_token: str | None) -> None:
    """Create a workspace and print its id and first admin key."""
    if url:
        if not root_token:
            raise click.UsageError("--url needs --root-token (or DESKFLOW_ROOT_TOKEN).")
        data = call_json("POST", join(url, "/v1/workspaces"), root_token, {"name": name})
    else:
        from server.store import catalog

        async def create(store: Any) -> dict[str, str]:
            ws, secret = await catalog.create_workspace(store, name)
            return {"id": ws["id"], "name": ws["name"], "admin_key": secret}

        data = asyncio.run(_with_store(create))
    click.echo(json.dumps(data, indent=2))


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", required=True,
              type=click.Choice(["ingest", "viewer", "manager", "developer", "admin"]))
@click.option("--name", default="", help="A label for the key.")
@click.option("--workspace", "workspace_id", default=None, help="Workspace id (store mode).")
@click.option("--url", default=None, help="Create over HTTP on this server (needs --key).")
@click.option("--key", envvar="DESKFLOW_KEY", default=None, help="An admin key (HTTP mode).")
def keys_create(role: str, name: str, workspace_id: str | None, url: str | None,
                key: str | None) -> None:
    """Create an API key and print it (shown once)."""
    if url:
        if not key:
            raise click.UsageError("--url needs --key (an admin key).")
        data = call_json("POST", join(url, "/v1/keys"), key, {"role": role, "name": name})
    else:
        if not workspace_id:
            raise click.UsageError("store mode needs --workspace (or use --url and --key).")
        from server.errors import ApiError
        from server.store import catalog

        async def create(store: Any) -> dict[str, Any]:
            if await catalog.get_workspace(store, workspace_id) is None:
                raise click.ClickException(f"no workspace {workspace_id}")
            try:
                record, secret = await catalog.create_key(store, workspace_id, role, name)
            except ApiError as exc:   # the key count limit (DESKFLOW_MAX_KEYS) holds here too
                raise click.ClickException(exc.message) from exc
            return {**record, "key": secret}

        data = asyncio.run(_with_store(create))
    click.echo(json.dumps(data, indent=2))


@main.command("secrets-key")
def secrets_key() -> None:
    """Print a new key for DESKFLOW_SECRETS_KEY (secrets at rest are sealed with it). Give every
    process the same value; to rotate, put the new key first: DESKFLOW_SECRETS_KEY=new,old."""
    from server.store.sealing import new_key

    click.echo(new_key())
