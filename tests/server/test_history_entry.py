"""A history entry (what ctx.history hands a script per event) is bounded: a message body is cut
to 4 KiB, and changes past 1 KiB become the changed field names -- at most 32, each cut to 100
bytes, all within the same 1 KiB. Custom field names may be KiBs long (a `custom` object holds 16
KiB), and 32 of them used to make one entry 16-32 KiB."""

from __future__ import annotations

import orjson

from server.history import MAX_BODY_BYTES, MAX_CHANGES_BYTES, MAX_NAME_BYTES, MAX_NAMES, entry

EVENT = {"id": "e1", "type": "ticket.updated", "occurred_at": "2026-11-23T09:00:00Z", "ticket": {"id": "T-1"}}


def test_long_custom_field_names_are_cut_and_bounded() -> None:
    changes = {f"custom.{i:02d}" + "k" * 900: [None, "v"] for i in range(32)}
    assert len(orjson.dumps(changes)) > 28 * 1024   # what the entry used to keep, as names
    kept = entry(EVENT, changes)["changes"]
    assert len(orjson.dumps(kept)) <= MAX_CHANGES_BYTES
    assert kept and all(v is None and len(k.encode()) <= MAX_NAME_BYTES for k, v in kept.items())
    assert all(k.startswith("custom.") and k.endswith(" …[truncated]") for k in kept)


def test_many_short_names_keep_the_first_32_sorted() -> None:
    changes = {f"custom.f{i:03d}": ["x" * 20, "y" * 20] for i in range(100)}
    kept = entry(EVENT, changes)["changes"]
    assert list(kept) == [f"custom.f{i:03d}" for i in range(MAX_NAMES)]
    assert set(kept.values()) == {None}


def test_small_changes_and_a_whole_entry_stay_as_they_are_within_the_bound() -> None:
    changes = {"priority": ["normal", "urgent"], "tags": {"added": ["vip"], "removed": []}}
    assert entry(EVENT, changes)["changes"] == changes
    message = {**EVENT, "type": "message.received", "message": {"body": "é" * 10_000}}
    big = entry(message, {f"custom.{i}" + "n" * 5000: [None, 1] for i in range(40)})
    assert len(orjson.dumps(big)) < MAX_BODY_BYTES + MAX_CHANGES_BYTES + 512   # the "~5.5 KiB" of the docstring
