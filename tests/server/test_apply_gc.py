"""A worker tunes the process's garbage collector once (server/gcpolicy.tune_gc): at CPython's
default the young generation was collected several times per event."""

from __future__ import annotations

import gc

import pytest

from server.gcpolicy import GC_MIDDLE, GC_YOUNG, tune_gc
from server.settings import Settings
from server.store.connect import close_store, open_store
from server.worker import Worker


@pytest.mark.anyio
async def test_a_worker_raises_the_young_generation_threshold_once(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, before[1], before[2])
    try:
        store = await open_store(settings)
        try:
            await Worker(store=store, burst=True).run()
        finally:
            await close_store(store)
        assert gc.get_threshold() == (GC_YOUNG, GC_MIDDLE, before[2])
        assert gc.get_freeze_count() > 0
        # already tuned: nothing is collected or frozen again. (Asked of gc itself: comparing
        # freeze counts raced with other threads of the test process freeing frozen objects,
        # which lowers the count: 234,033 -> 234,031 in full parallel runs.)
        calls: list[str] = []
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
        tune_gc()
        assert calls == []
    finally:
        gc.set_threshold(*before)
