"""Per-day fire (and check) counts of one rule, from the hourly buckets the apply commit already
keeps in the rule's stats hash ("h:<hour>" fires, "c:<hour>" checks, 31 days kept): no new
counter, the day is the sum of its 24 UTC hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server.store import keys as K
from server.store.replies import text_map
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["rule_days"]


@guarded
async def rule_days(store: Store, workspace: str, rule_id: str, now_hour: int,
                    days: int) -> list[dict[str, Any]]:
    """[{"date": "YYYY-MM-DD", "fired", "checked"}] for the last `days` UTC days, oldest first,
    today last; `checked` is null on a day with no check bucket (workers flush those in
    batches)."""
    stats = text_map(await store.redis.hgetall(K.rule_stats(workspace, rule_id)))
    today = now_hour // 24
    fired: dict[int, int] = {}
    checked: dict[int, int] = {}
    for k, v in stats.items():
        kind, _, hour = k.partition(":")
        if kind in ("h", "c") and hour.lstrip("-").isdigit() and str(v).lstrip("-").isdigit():
            into = fired if kind == "h" else checked
            into[int(hour) // 24] = into.get(int(hour) // 24, 0) + int(v)
    out = []
    for day in range(today - days + 1, today + 1):
        date = datetime.fromtimestamp(day * 86400, UTC).date().isoformat()
        out.append({"date": date, "fired": fired.get(day, 0), "checked": checked.get(day)})
    return out
