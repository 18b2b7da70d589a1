"""User commands over HTTP to a running deskflow: `events send`, `rules list|enable|disable`, and
rules as code (`export`, `plan`, `apply`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from server.cli.base import KEY, URL, main
from server.cli.client import call, call_json, join

@main.group()
def events() -> None:
    """Events."""


@events.command("send")
@click.argument("file", type=click.File("rb"))
@URL
@KEY
@click.option("--wait", is_flag=True, help="Wait for the worker and print the run summary.")
def events_send(file: Any, url: str, key: str, wait: bool) -> None:
    """Send the event(s) in FILE (JSON: one event, a list, or {"events": [...]}; - for stdin)."""
    try:
        body = json.loads(file.read())
    except ValueError as exc:
        raise click.ClickException(f"{file.name} is not JSON: {exc}") from exc
    if isinstance(body, list):
        body = {"events": body}
    data = call_json("POST", join(url, f"/v1/events{'?wait=true' if wait else ''}"), key, body)
    click.echo(json.dumps(data, indent=2))


@main.group()
def rules() -> None:
    """Rules."""


@rules.command("list")
@URL
@KEY
def rules_list(url: str, key: str) -> None:
    """List rules in order: position, id, enabled, name."""
    cursor = None
    while True:
        q = f"?limit=500&cursor={cursor}" if cursor else "?limit=500"
        data = call_json("GET", join(url, f"/v1/rules{q}"), key)
        for r in data["items"]:
            click.echo(f"{r.get('position', ''):>3}  {r['id']}  "
                       f"{'on ' if r.get('enabled') else 'off'}  {r.get('name', '')}")
        cursor = data.get("next")
        if not cursor:
            break


def _switch(verb: str) -> None:
    """`rules enable RULE_ID` / `rules disable RULE_ID`."""
    def switch(rule_id: str, url: str, key: str) -> None:
        r = call_json("POST", join(url, f"/v1/rules/{rule_id}/{verb}"), key)
        click.echo(f"{r['id']} {verb}d")

    switch.__doc__ = f"{verb.capitalize()} a rule."
    rules.command(verb)(click.argument("rule_id")(URL(KEY(switch))))


for _verb in ("enable", "disable"):
    _switch(_verb)


# -- rules as code: export, plan, apply ----------------------------------------------------------


def _document_type(name: str, content: bytes) -> str:
    if name.endswith(".json") or content.lstrip()[:1] in (b"{", b"["):
        return "application/json"
    return "application/yaml"


def _show_plan(data: dict[str, Any]) -> None:
    for item in data["items"]:
        if item["action"] == "unchanged":
            continue
        label = item.get("id") or item.get("name") or ""
        if item.get("id") and item.get("name"):
            label = f"{item['id']} ({item['name']})"
        click.echo(f"{item['action']:>8}  {item['kind']:<10}  {label}")
        for field, (old, new) in item.get("diff", {}).items():
            if item["action"] != "create":
                click.echo(f"{'':>10}  {field}: {json.dumps(old)} -> {json.dumps(new)}")
    for note in data.get("notes") or []:
        click.echo(f"    note  {note}")
    s = data["summary"]
    click.echo(", ".join(f"{n} {k}" for k, n in s.items()))


_MISSING = click.option("--missing", type=click.Choice(["keep", "disable", "delete"]), default="keep",
                        show_default=True, help="What happens to rules (and, with delete, groups and "
                                                "SLA policies) that the file does not list.")


@main.command("export")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@URL
@KEY
def export_cmd(fmt: str, url: str, key: str) -> None:
    """Print the workspace's rules, groups, SLA policies, script metadata and allow-list
    (`deskflow export > rules.yaml`); no secret values."""
    resp = call("GET", join(url, f"/v1/export?format={fmt}"), key, timeout=60)
    click.echo(resp.text, nl=not resp.text.endswith("\n"))


def _import(file: Any, missing: str, url: str, key: str, *, dry_run: bool) -> dict[str, Any]:
    """POST the document in FILE to /v1/import; the plan it answers (applied or not)."""
    content = file.read()
    query = f"?dry_run=true&missing={missing}" if dry_run else f"?missing={missing}"
    resp = call("POST", join(url, f"/v1/import{query}"), key,
                content=content, ctype=_document_type(file.name, content), timeout=60)
    data: dict[str, Any] = resp.json()
    _show_plan(data)
    return data


def _document_command(name: str, doc: str) -> Callable[[Callable[..., None]], click.Command]:
    """`plan` and `apply`: a FILE argument, --missing, --url and --key."""
    def wrap(fn: Callable[..., None]) -> click.Command:
        fn.__doc__ = doc
        command: click.Command = main.command(name)(
            click.argument("file", type=click.File("rb"))(_MISSING(URL(KEY(fn)))))
        return command
    return wrap


@_document_command("plan", "Show what `apply FILE` would change (create / update / disable / "
                           "delete, with the fields).")
def plan_cmd(file: Any, missing: str, url: str, key: str) -> None:
    _import(file, missing, url, key, dry_run=True)


@_document_command("apply", "Apply FILE all or nothing (JSON or YAML, as `deskflow export` "
                            "writes it).")
def apply_cmd(file: Any, missing: str, url: str, key: str) -> None:
    data = _import(file, missing, url, key, dry_run=False)
    click.echo("applied" if data["applied"] else "nothing to change")
