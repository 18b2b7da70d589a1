"""A workspace with too many entries taken on one partition: its further entries left in the stream.

Why: a partition loop stops reading once its lanes hold MAX_HELD entries (server/lanes.py), to
bound what it keeps in memory. One workspace could fill that alone -- 5,000 events whose rule
calls a server that answers after 10 s, ten batch requests -- and then no other workspace's event
on the partition was read until they were all applied, at 4 lanes a workspace: hours
(tests/server/test_parking.py). So each workspace may hold at most WORKSPACE_HELD entries of a
partition. Past it, the loop still reads the stream, but that workspace's entries from the first
one over on -- all of them, so its tickets keep their order -- stay where they are: pending in
this worker's part of the stream, not acked, not in memory ("parked", by the id to look again
from). Once the workspace holds fewer than half of WORKSPACE_HELD, the loop takes its parked
entries back, in stream order, from the pending entries (XAUTOCLAIM from that id: ours already,
so nothing moves), and stops parking it when none is left. A crash or a hand-over loses nothing:
the parked entries are pending like any other, and the next owner claims them all, in order, and
parks again what is over the bound.
"""

from __future__ import annotations

from typing import Any

from server.lanes import MAX_HELD, Entry, Lanes
from server.store import events
from server.store.connect import Store

__all__ = ["Parking", "WORKSPACE_HELD"]

WORKSPACE_HELD = MAX_HELD // 5   # a workspace's entries taken on one partition; past it, parked


class Parking:
    """One partition's parked workspaces (see the module doc)."""

    def __init__(self, cap: int | None = None) -> None:
        self.cap = max(1, WORKSPACE_HELD if cap is None else cap)
        self.parked: dict[str, str] = {}   # workspace -> the id its parked entries start at (inclusive)
        self.taken_back = 0                # entries taken back from the stream (for the tests)

    def clear(self) -> None:
        """Forget every parked workspace (a claim of every pending entry decides again)."""
        self.parked.clear()

    def admit(self, entries: list[Entry], lanes: Lanes) -> list[Entry]:
        """The entries to give the lanes, in order; the others parked."""
        keep: list[Entry] = []
        added: dict[str, int] = {}
        for entry in entries:
            ws = _workspace(entry[1])
            if ws is not None:
                if ws not in self.parked and lanes.held(ws) + added.get(ws, 0) >= self.cap:
                    self.parked[ws] = entry[0]
                if ws in self.parked:
                    continue
                added[ws] = added.get(ws, 0) + 1
            keep.append(entry)
        return keep

    async def take_back(self, store: Store, consumer: str, n: int, lanes: Lanes, count: int) -> bool:
        """Give the lanes the parked entries of each workspace that holds few enough again;
        whether any was given."""
        gave = False
        for ws, start in list(self.parked.items()):
            if lanes.held(ws) >= self.cap // 2:
                continue
            room = self.cap - lanes.held(ws)
            cursor, pending = await events.pending_from(store, consumer, n, start, count=count)
            back: list[Entry] = []
            resume = None
            for entry in pending:
                if _workspace(entry[1]) != ws:
                    continue   # another workspace's: in flight in a lane, or parked on its own
                if len(back) >= room:
                    resume = entry[0]
                    break
                back.append(entry)
            if back:
                lanes.add(back)
                self.taken_back += len(back)
                gave = True
            if resume is None and cursor == "0-0":
                del self.parked[ws]   # every parked entry is back: its next ones go to the lanes
            else:
                self.parked[ws] = resume or cursor
        return gave


def _workspace(fields: dict[str, Any]) -> str | None:
    ws = fields.get("w")
    return ws if isinstance(ws, str) and ws else None
