"""The outbox's retry jitter leaves the process-wide `random` state alone (issue 12, item 11).

test_schemathesis.py drives the app (its worker and outbox in the ASGI portal's thread) beside
Hypothesis, which notes a deprecation -- an error under `filterwarnings = error` -- when the global
random state changes while it draws a case, then replays the case without that happening: "Failed
on the first call but did not on a subsequent one", on whichever operation was being drawn while a
webhook delivery to the seeded (closed) port was re-scheduled with `random.random()`."""

from __future__ import annotations

import random

from server.outbox import Outbox, next_delay


def test_next_delay_does_not_touch_the_global_random_state() -> None:
    before = random.getstate()
    delays = [next_delay(n, 1.0, 3600.0) for n in range(1, 50)]
    assert random.getstate() == before
    assert all(0.001 <= d <= 3600.0 * 1.2 for d in delays)


def test_the_outboxs_default_jitter_is_its_own() -> None:
    rand = Outbox.__init__.__kwdefaults__["rand"]
    before = random.getstate()
    rand()
    assert random.getstate() == before
