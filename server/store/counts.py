"""Count limits of what a workspace keeps (scripts, script versions, secrets, API keys, SLA
policies, contact groups; README "Limits"): the one 422 they answer, checked by each writer in
the WATCH/MULTI that writes the object, so concurrent creates cannot pass the limit together.

Why the bounds: each of these was written without one, and each is read whole somewhere (the
worker reads a workspace's secrets for every script run, its SLA policies for every compile,
listings read the whole hash), so an API key could grow one workspace's store without end.
"""

from __future__ import annotations

from server.errors import Unprocessable

__all__ = ["check_count"]


def check_count(after: int, limit: int, *, one: str, many: str, per: str, setting: str,
                code: str, advice: str, path: str = "") -> None:
    """422 `code` when a write would leave `after` of them (`one` / `many`: the noun) where
    `limit` may be (a value at the limit is accepted); the message names the limit, its maximum
    and its setting."""
    if after > limit:
        raise Unprocessable(
            f"This would make {after} {many}; the {one} count limit is {limit} {many} per {per} "
            f"({setting}). {advice}",
            code=code, details=[{"path": path, "reason": f"at most {limit} {many} per {per}"}])
