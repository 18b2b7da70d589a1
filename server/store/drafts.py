"""Rule drafts: an edited copy of a live rule, stored beside it and never seen by the run path.

  df:{ws:W}:rule-drafts   hash  rule id -> JSON {rule_id, base_revision, rule, created_at,
                                updated_at, by}

Why a hash of its own and not a flag on the rule: the worker compiles everything in keys.rules, so
a draft kept there would need every reader to skip it; kept apart, the run path cannot see it by
construction. One draft per rule (keyed by the rule id) keeps "the draft of this rule" a single
thing a manager can find, test, discard or publish. `base_revision` is the live rule's revision
the draft was taken from: publishing checks it, so a draft does not silently undo a change made
to the live rule after the draft was taken.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store.replies import json_or_none
from server.store.connect import Store
from server.store.encoding import dumps as _dumps
from server.store.errors import guarded
from server.store.rule_size import MAX_RULE_BYTES

__all__ = ["MAX_DRAFTS", "MAX_DRAFT_BYTES", "get_draft", "list_drafts", "count_drafts",
           "put_draft", "delete_draft", "draft_size"]

MAX_DRAFTS = 100               # drafts per workspace (limit MAX_DRAFTS)
# one draft's rule as compact JSON (limit MAX_DRAFT_BYTES): a rule's bound, since a published
# draft becomes the rule (server/store/rule_size.py)
MAX_DRAFT_BYTES = MAX_RULE_BYTES


def draft_size(rule: Any) -> int:
    return len(orjson.dumps(rule))


@guarded
async def get_draft(store: Store, workspace: str, rule_id: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.hget(K.rule_drafts(workspace), rule_id))


@guarded
async def list_drafts(store: Store, workspace: str) -> list[dict[str, Any]]:
    """Every draft of the workspace (at most MAX_DRAFTS of at most MAX_DRAFT_BYTES), by rule id."""
    raw = await store.redis.hgetall(K.rule_drafts(workspace))
    return sorted((orjson.loads(v) for v in raw.values()), key=lambda d: str(d.get("rule_id")))


@guarded
async def count_drafts(store: Store, workspace: str) -> int:
    return int(await store.redis.hlen(K.rule_drafts(workspace)))


@guarded
async def put_draft(store: Store, workspace: str, draft: dict[str, Any]) -> None:
    await store.redis.hset(K.rule_drafts(workspace), draft["rule_id"], _dumps(draft))


@guarded
async def delete_draft(store: Store, workspace: str, rule_id: str) -> bool:
    return bool(await store.redis.hdel(K.rule_drafts(workspace), rule_id))
