"""The CLI's one HTTP client: a Bearer-authenticated request to a running deskflow whose error
answers become a one-line ClickException (status, code, message), followed by one line per detail
(`path: reason`) when the error lists them."""

from __future__ import annotations

import json
from typing import Any

import click
import httpx

__all__ = ["call", "call_json", "join"]


def join(base: str, path: str) -> str:
    return f"{base.rstrip('/')}{path}"


def _error_lines(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error", {}) if isinstance(body, dict) else {}
    err = err if isinstance(err, dict) else {}
    lines = [f"{resp.status_code} {err.get('code', '')}: {err.get('message', resp.text)}"]
    for d in err.get("details") or []:
        if isinstance(d, dict) and ("path" in d or "reason" in d):
            lines.append(f"  {d.get('path') or '(document)'}: {d.get('reason')}")
        else:
            lines.append(f"  {json.dumps(d)}")
    return "\n".join(lines)


def call(method: str, url: str, token: str, *, body: Any = None, content: bytes | None = None,
         ctype: str | None = None, timeout: float = 30) -> httpx.Response:
    """Send one request (a JSON `body`, or raw `content` of type `ctype`); raise on 4xx/5xx."""
    headers = {"Authorization": f"Bearer {token}"}
    if ctype:
        headers["Content-Type"] = ctype
    try:
        resp = httpx.request(method, url, headers=headers, json=body, content=content,
                             timeout=timeout)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if resp.status_code >= 400:
        raise click.ClickException(_error_lines(resp))
    return resp


def call_json(method: str, url: str, token: str, body: Any = None) -> Any:
    """`call` with a JSON body; the answer's JSON (None for an empty or non-JSON answer)."""
    resp = call(method, url, token, body=body)
    if resp.content and "json" in resp.headers.get("content-type", ""):
        return resp.json()
    return None
