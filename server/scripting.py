"""Scripts and HTTP requests for the rules engine: the sandbox pool and broker, per workspace.

The engine calls its handlers synchronously, in the middle of a pass (their results are visible to
later rules). The worker therefore runs a pass that needs them in a thread, and the handlers made
here hand each script run or HTTP call to the event loop that owns the pool and the broker, and
wait for it. A pass whose rules call neither runs on the loop as before.

The pool is started on first use: API processes and tests that never run a script pay nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import orjson

from sandbox import (
    MAXIMA, AllowList, AllowListError, Broker, BrokerConfig, Limits, LimitsError, ScriptPool, parse_allowlist,
)
from sandbox.scrub import Scrubber
from server.selfguard import listeners
from server.settings import Settings
from server.store import scripts as S
from server.store.connect import Store

__all__ = ["Scripting", "ScriptFailed", "json_path", "script_limits", "stored_allowlist", "broker_config",
           "new_broker", "secret_use_problems", "webhook_header_problems", "check_rule_outbound", "json_path_problem",
           "SECRET_ROLE"]

# The role that may set secrets, and so the one that may make a rule send one (issue 13 B11).
SECRET_ROLE = "admin"
_SECRET_REF = re.compile(r"\{\{\s*secret:")

# Longest a handler waits for the loop: the script's own wall limit is enforced by the pool; this
# only guards against a loop that never answers.
_HANDLER_WAIT_S = 120.0
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def script_limits(timeout: Any) -> Limits:
    """The run limits of a script version; LimitsError (-> 422) above the operator's maxima."""
    return Limits.for_script(timeout=timeout) if timeout is not None else Limits()


async def stored_allowlist(store: Store, workspace: str) -> AllowList:
    """The workspace's allow-list as the broker checks it: scripts, http_request actions and
    webhooks all go through this one."""
    try:
        return parse_allowlist(await S.get_allowlist(store, workspace))
    except AllowListError:  # stored entries were checked when set; the rules may have grown stricter
        return parse_allowlist([])


async def broker_config(store: Store, workspace: str) -> BrokerConfig:
    """Allow-list, secret values and the hosts each secret is bound to, for one broker call or
    script run. A secret set without hosts (before secrets had them) is unbound: it may go to any
    host of the allow-list. A binding that no longer parses binds to no host."""
    records = await S.get_secret_records(store, workspace)
    bound: dict[str, AllowList] = {}
    for name, (_, hosts) in records.items():
        if hosts is not None:
            try:
                bound[name] = parse_allowlist(hosts)
            except AllowListError:
                bound[name] = parse_allowlist([])
    return BrokerConfig(await stored_allowlist(store, workspace),
                        {name: value for name, (value, _) in records.items()},
                        secret_hosts=bound, workspace=workspace)


def new_broker() -> Broker:
    """The service's broker: refuses this process's own listeners (server/selfguard.py)."""
    return Broker.create(own_endpoints=listeners)


def _outbound_actions(rule: Any) -> list[tuple[int, dict[str, Any]]]:
    actions = rule.get("actions") if isinstance(rule, dict) else None
    return [(i, a) for i, a in enumerate(actions if isinstance(actions, list) else [])
            if isinstance(a, dict) and a.get("type") in ("http_request", "webhook")]


def _sends_secret(action: dict[str, Any]) -> bool:
    headers = _h if isinstance(_h := action.get("headers"), dict) else {}
    return (action.get("type") == "http_request" and bool(action.get("secret"))) or any(
        isinstance(v, str) and _SECRET_REF.search(v) for v in headers.values())


def secret_use_problems(role: str, rule: Any, prefix: str = "",
                        before: Any = None) -> list[dict[str, str]]:
    """Why `role` may not save `rule`: an `http_request` with `secret`, or `{{secret:NAME}}` in an
    `http_request` or `webhook` action's headers, sends a stored secret, and only the role that
    may set secrets (admin) may decide where one goes (issue 13 B11). An action exactly as it was
    in `before` (the rule being replaced) passes: a manager may still rename or reorder a rule an
    admin wrote, not point its secret elsewhere. Nor may it widen WHEN the secret goes: the
    triggers and conditions of a rule that sends one are the admin's too (a manager who made an
    admin's "vip tickets to the CRM" rule fire on every ticket sent the CRM, with the admin's
    credential, what the admin never chose to). A new rule (`before` None: a create, a
    duplicate) keeps nothing. [] when fine."""
    if role in (SECRET_ROLE, "root"):
        return []
    kept = [a for _, a in _outbound_actions(before)] if before is not None else []
    out = [{"path": f"{prefix}actions[{i}]",
            "reason": f"sends a stored secret; only the {SECRET_ROLE} role, which sets secrets, "
                      f"may add or change such an action"}
           for i, a in _outbound_actions(rule) if _sends_secret(a) and a not in kept]
    if out or not isinstance(before, dict) or not isinstance(rule, dict):
        return out
    if any(_sends_secret(a) for _, a in _outbound_actions(rule)):
        out += [{"path": f"{prefix}{key}",
                 "reason": f"decides which events the rule's stored secret is sent on; only the "
                           f"{SECRET_ROLE} role, which sets secrets, may change it"}
                for key in ("triggers", "conditions") if _scope(rule, key) != _scope(before, key)]
    return out


def _scope(rule: dict[str, Any], key: str) -> Any:
    """A rule's triggers (as a set) or conditions, with the spellings of "no conditions" alike
    (null, {}, {"all": []}): a client that normalizes them changes nothing."""
    value = rule.get(key)
    if key == "triggers":
        return sorted(map(str, value)) if isinstance(value, list) else value
    return None if value in (None, {}, {"all": []}) else value


def webhook_header_problems(rule: Any, prefix: str = "") -> list[dict[str, str]]:
    """A `webhook` action may not set any `X-Deskflow-*` header: those are the service's own (the
    feed's signature, delivery id and attempt), whatever the case of the name (issue 13 B9)."""
    out = []
    for i, action in _outbound_actions(rule):
        headers = _h if isinstance(_h := action.get("headers"), dict) else {}
        for name in headers:
            if action.get("type") == "webhook" and isinstance(name, str) and name.lower().startswith("x-deskflow-"):
                out.append({"path": f"{prefix}actions[{i}].headers.{name}",
                            "reason": "X-Deskflow-* headers are the service's own; a webhook action may not set them"})
    return out


def check_rule_outbound(role: str, rule: Any, before: Any = None, prefix: str = "") -> None:
    """For the rule routes and the import, after their own checks: 422 for X-Deskflow-* webhook
    headers, 403 when `role` may not make the rule send a secret."""
    from server.errors import Forbidden, Unprocessable

    headers = webhook_header_problems(rule, prefix)
    if headers:
        raise Unprocessable("The rule is not valid: " + headers[0]["reason"], details=headers)
    secrets = secret_use_problems(role, rule, prefix, before)
    if secrets:
        raise Forbidden(f"The rule sends a stored secret ({secrets[0]['path']}); only an "
                        f"{SECRET_ROLE} key may add or change such an action.", details=secrets)


class ScriptFailed(Exception):
    """A run_script or http_request that failed; the engine records the message, applies nothing."""


def json_path(doc: Any, path: str) -> Any:
    """The value at a simple JSONPath (`$`, `.key`, `['key']`, `[n]`), or None where there is none."""
    if not path.startswith("$"):
        return None
    value = doc
    for _, m in _path_steps(path):
        if m is None:
            return None
        key, index, quoted = m.groups()
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            name = key if key is not None else quoted
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def _path_steps(path: str) -> Iterator[tuple[int, re.Match[str] | None]]:
    """The steps of `path` after its `$`, each with where it starts; a None match where the rest
    is no step of the grammar (and no more after it)."""
    pos = 1
    while pos < len(path):
        m = _PATH_PART.match(path, pos)
        yield pos, m
        if m is None:
            return
        pos = m.end()


def json_path_problem(path: str) -> str | None:
    """Why json_path cannot read `path` (a `$` followed by steps of its grammar), or None: checked
    when a rule is saved (server/api/action_bounds.py), since json_path answers None for what it
    cannot read and the var would be silently unset at every run. An index no response can reach
    (a body of at most MAXIMA.response_bytes holds fewer items) is refused too: its digits cost
    int() quadratic time, and past 4,300 of them int() raises."""
    if not path.startswith("$"):
        return "must be a JSONPath string starting with '$'"
    for pos, m in _path_steps(path):
        if m is None:
            return (f"is not a JSONPath the run can read at character {pos + 1}: after '$' only "
                    f".key, [n] and ['key'] steps")
        index = m.group(2)
        if index is not None and (len(index) > len(str(MAXIMA.response_bytes)) or int(index) >= MAXIMA.response_bytes):
            return (f"index [{index[:20]}{'...' if len(index) > 20 else ''}] is past any response: a body "
                    f"is at most {MAXIMA.response_bytes} bytes (MAXIMA.response_bytes)")
    return None


def _used(context: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """The pass's loaded ctx.history / ctx.customer that this script version names (its `uses`,
    or its source read now for a version stored before `uses` existed)."""
    if not context:
        return {}
    from server.history import uses_of

    uses = record.get("uses")
    if not isinstance(uses, list):
        uses = uses_of(str(record.get("source") or ""))
    return {k: context[k] for k in uses if k in context}


class Scripting:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._pool: ScriptPool | None = None
        self._broker: Broker | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> ScriptPool:
        async with self._lock:
            if self._pool is None:
                self._broker = new_broker()
                pool = ScriptPool(self.settings.script_workers, broker=self._broker,
                                  workspace_share=self.settings.script_workspace_share or None,
                                  queue_timeout_s=self.settings.script_queue_timeout_s,
                                  require_jail=self.settings.sandbox_require_jail)
                await pool.start()
                self._pool = pool
            return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._broker is not None:
            await self._broker.aclose()

    async def broker_config(self, workspace: str) -> BrokerConfig:
        return await broker_config(self.store, workspace)

    async def run_script(self, workspace: str, action: dict[str, Any], event: dict[str, Any],
                         ticket: dict[str, Any], vars: dict[str, Any],
                         context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the script an action names; returns its run-record entry (with `updates`)."""
        name, version = action["script"], action.get("version")
        meta = await S.get_script(self.store, workspace, name)
        entry: dict[str, Any] = {"name": name, "version": version, "updates": None, "logs": [],
                                 "http_calls": [], "duration_ms": 0.0, "error": None}
        if meta is None:
            entry["error"] = {"code": "script_not_found", "message": f"no script named {name!r} in this workspace"}
            return entry
        version = version or int(meta["latest"])
        entry["version"] = version
        record = await S.get_version(self.store, workspace, name, version)
        if record is None:
            entry["error"] = {"code": "script_not_found",
                              "message": f"script {name!r} has versions 1 to {meta['latest']}, not {version}"}
            return entry
        try:
            limits = script_limits(record.get("timeout"))
        except (LimitsError, ValueError):
            limits = Limits()
        pool = await self.pool()
        result = await pool.run(f"{workspace}/{name}", version, record["source"], event, ticket,
                                ctx_info={"workspace": workspace, "vars": vars,
                                          **_used(context, record)}, limits=limits,
                                broker_config=await self.broker_config(workspace))
        return {**entry, **result.as_dict(), "name": name, "version": version}

    async def http_request(self, workspace: str, action: dict[str, Any], vars: dict[str, Any],
                           calls: list[dict[str, Any]]) -> dict[str, Any]:
        """Carry out an http_request action through the broker; returns the vars it maps."""
        await self.pool()  # also creates the broker
        assert self._broker is not None
        request = {"method": action.get("method", "GET"), "url": action["url"],
                   "headers": action.get("headers") or {}}
        if action.get("secret"):
            request["auth_secret"] = action["secret"]
        if "body" in action:
            request["json"] = action["body"]
        config = await self.broker_config(workspace)
        reply, made = await self._broker.call(config, request)
        calls.extend(made)
        if not reply.get("ok"):
            raise ScriptFailed(f"{reply.get('kind', 'refused')}: {reply.get('message', '')}")
        mapping = action.get("map") or {}
        if not mapping:
            return {}
        try:
            doc = orjson.loads(reply.get("text") or "null")
        except orjson.JSONDecodeError:
            raise ScriptFailed(f"the response of {action['url']} is not JSON; cannot map {sorted(mapping)}") from None
        # the broker scrubbed the text; the decoded values are scrubbed once more (sandbox/scrub.py)
        scrub = Scrubber(config.secrets.values())
        return {var: scrub.value(json_path(doc, path)) for var, path in mapping.items()}

    def handlers(self, loop: asyncio.AbstractEventLoop, workspace: str,
                 scripts: list[dict[str, Any]], calls: list[dict[str, Any]],
                 context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Synchronous handlers for one pass run in a worker thread; results are collected in
        `scripts` (run-record entries) and `calls` (http_request calls)."""

        # The pass's vars change only through http_request, so what that handler maps is exactly
        # what ctx.vars must show a script run later in the same pass.
        pass_vars: dict[str, Any] = {}

        def wait(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(_HANDLER_WAIT_S)

        def run_script(action: dict[str, Any], event: dict[str, Any], ticket: dict[str, Any]) -> Any:
            entry = wait(self.run_script(workspace, action, event, ticket, dict(pass_vars),
                                         context))
            scripts.append(entry)
            if entry["error"] is not None:
                raise ScriptFailed(f"{entry['error']['code']}: {entry['error']['message']}")
            return entry["updates"]

        def http_request(action: dict[str, Any], ticket: dict[str, Any], event: dict[str, Any],
                         vars: dict[str, Any]) -> dict[str, Any]:
            mapped: dict[str, Any] = wait(self.http_request(workspace, action, vars, calls))
            pass_vars.update(mapped)
            return mapped

        return {"run_script": run_script, "http_request": http_request}

