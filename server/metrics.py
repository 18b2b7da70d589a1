"""A minimal in-process Prometheus registry (counters and summaries), rendered as text 0.0.4."""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["Metrics", "METRICS"]

_HELP = {
    "deskflow_http_requests_total": ("counter", "HTTP requests by method and status."),
    "deskflow_events_ingested_total": ("counter", "Events accepted by POST /v1/events (queued)."),
    "deskflow_events_duplicate_total": ("counter", "Events answered as duplicates."),
    "deskflow_events_processed_total": ("counter", "Events applied by workers in this process."),
    "deskflow_events_failed_total": ("counter", "Stream entries a worker could not apply (bugs)."),
    "deskflow_event_apply_seconds": ("summary", "Time to load, automate and store one event."),
}


class Metrics:
    """Process-wide counters. One per process, like prometheus_client's default registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            s = self._sums[name]
            s[0] += 1
            s[1] += seconds

    def render(self, gauges: dict[str, float] | None = None) -> str:
        lines: list[str] = []
        with self._lock:
            counters = dict(self._counters)
            sums = {k: list(v) for k, v in self._sums.items()}
        names = sorted({n for n, _ in counters} | set(sums) | set(_HELP))
        for name in names:
            kind, text = _HELP.get(name, ("counter", name))
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "summary":
                count, total = sums.get(name, [0.0, 0.0])
                lines += [f"{name}_count {count:g}", f"{name}_sum {total:.6f}"]
                continue
            rows = [(lbl, v) for (n, lbl), v in counters.items() if n == name] or [((), 0.0)]
            for lbl, value in sorted(rows):
                label = ",".join(f'{k}="{v}"' for k, v in lbl)
                lines.append(f"{name}{{{label}}} {value:g}" if label else f"{name} {value:g}")
        for name, value in sorted((gauges or {}).items()):
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


METRICS = Metrics()
