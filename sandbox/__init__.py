"""deskflow's script sandbox: compile at upload, run in resource-limited worker processes.

API for the server (the only names it needs; everything else is internal):

    compile_script(source: str) -> CompileResult
        .code (code object | None), .errors ["Line N: reason", ...], .ok
        Upload-time check (API.md: refuse with 422 and these reasons). Never executes the script.

    Limits(wall_s=5, cpu_s=2, memory_bytes=128 MiB, http_calls=10, response_bytes=1 MiB,
           output_bytes=64 KiB, log_lines=200, log_line_bytes=1 KiB, http_timeout_s=10)
        Limits.for_script(timeout="10s", **overrides) -> Limits; MAXIMA are the operator ceilings;
        a value above them raises LimitsError (a ValueError -> 422).

    parse_allowlist(hosts: list[str]) -> AllowList
        Entries "host", "host:port" (HTTPS), "http://host[:port]"; raises AllowListError (a
        ValueError naming the entry and what to write) for anything else, e.g. "127.1".

    BrokerConfig(allowlist: AllowList, secrets: Mapping[str, str] = {})
        One workspace's allow-list and secret values, passed by value per run. Secret values never
        reach the worker: the broker attaches them (auth_secret="NAME" -> Authorization: Bearer,
        or "{{secret:NAME}}" inside a header value) and scrubs them from responses.

    Broker(client: httpx.AsyncClient, *, resolver=system_resolver) / Broker.create()
        The trusted HTTP side. The client must have trust_env=False (checked). Every request goes
        to the checked IP with Host/SNI set to the name and "Connection: close": a pooled TLS
        connection is keyed by IP, not by the name it was verified for. await broker.aclose().
        await broker.call(config, {"method": "GET", "url": ..., "auth_secret": "CRM_TOKEN"})
            -> (reply, http_calls): one checked call outside a script (the http_request action);
            reply {"ok": True, "status_code", "headers", "text"} | {"ok": False, "kind", "message"}.

    ScriptPool(size=2, *, broker: Broker | None = None, max_runs_per_worker=10_000,
               workspace_share=None, queue_timeout_s=10.0, require_jail=False)
        async with ScriptPool(2, broker=broker) as pool:
            result = await pool.run(script_id, version, source, event, ticket,
                                    ctx_info={"workspace": "acme", "vars": {...}},
                                    limits=Limits(), broker_config=BrokerConfig(...))
        -> ScriptResult(updates: dict | None, logs: list[str], http_calls: list[dict],
                        duration_ms: float, error: {"code", "message"} | None); .as_dict()
        `run` does not raise for script behaviour (ValueError only if event/ticket/ctx_info are not
        JSON data, PoolClosed after close()). Error codes: RUN_ERROR_CODES (API.md); a failed run
        has updates None but keeps its logs and http_calls (each {"method", "url", "status", "ms"}
        or {"method", "url", "refused": reason}). Workers: `python -I`, empty environment, cwd /,
        only their two pipes, RLIMIT_AS/CPU per run, NOFILE 16, FSIZE/NPROC/CORE 0, uid 65534
        when the service runs as root; killed on the wall clock and replaced in the background.
        pool.stats() -> {"runs", "errors": {code: n}, "workers", "idle", "replaced", "waiting"}.
        Fair shares: run(..., workspace=None) counts against ctx_info["workspace"] (or `workspace`);
        one workspace holds at most `workspace_share` workers (default half the pool, rounded up),
        its other runs queue and fail `busy` after `queue_timeout_s`; other workspaces go first.
        The jail (jail.py): pool.jail {"netns", "no_new_privs", "seccomp", "landlock", "fs"};
        require_jail=True makes start() raise JailUnavailable naming the missing layers;
        await probe_jail() -> the same description without a pool (one worker start, cached).
        (script_id, version, source) identify compiled code in the workers' caches; give each
        workspace's scripts distinct ids (e.g. "acme/crm-vip") - the source hash guards the rest.
        The updates' keys are checked against UPDATE_KEYS, and against rules.apply_updates when
        the rules package provides it; the caller still applies them with rules.apply_updates.

Where things are: policy.py (what may be written, with reasons), guards.py (run-time guards),
jail.py (the OS jail of the workers), shares.py (per-workspace worker shares),
modules.py (json/re/math/datetime stand-ins), child.py (the worker), context.py (its ctx),
pool.py (parent side),
broker.py + allowlist.py (HTTP, SSRF rules), convert.py (script values -> exact JSON types).
"""
from __future__ import annotations

from .allowlist import AllowList, parse_allowlist
from .broker import Broker, BrokerConfig
from .compile import CompileResult, compile_script
from .errors import (
    RUN_ERROR_CODES, AllowListError, BrokerError, CallLimit, CallRefused, JailUnavailable,
    LimitsError, PoolClosed, SandboxError,
)
from .jail import LAYERS as JAIL_LAYERS
from .jail import missing as missing_jail_layers
from .limits import DEFAULT_LIMITS, MAXIMA, Limits
from .pool import UPDATE_KEYS, ScriptPool, ScriptResult, probe_jail

__all__ = [
    "AllowList", "AllowListError", "Broker", "BrokerConfig", "BrokerError", "CallLimit",
    "CallRefused", "CompileResult", "DEFAULT_LIMITS", "JAIL_LAYERS", "JailUnavailable", "Limits",
    "LimitsError", "MAXIMA", "PoolClosed", "RUN_ERROR_CODES", "SandboxError", "ScriptPool",
    "ScriptResult", "UPDATE_KEYS", "compile_script", "missing_jail_layers", "parse_allowlist",
    "probe_jail",
]
