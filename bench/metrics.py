"""What the replay measures: each answer's completion time, latency, kind and error code.

The recorder appends to flat arrays on the hot path (~24 bytes a command); percentiles, error
counts and the throughput/latency timeline are computed once, at the end.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

#: Bucket widths (seconds) the timeline may use; the smallest giving at most MAX_BUCKETS wins.
BUCKET_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
MAX_BUCKETS = 150


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of an ascending sequence; 0.0 if empty."""
    n = len(ordered)
    if n == 0:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * n))
    return ordered[min(rank, n) - 1]


def summarize(latencies_s: Sequence[float]) -> dict[str, float | int]:
    """count, mean, p50, p95, p99 and max of latencies given in seconds, reported in ms."""
    ordered = sorted(latencies_s)
    n = len(ordered)
    return {
        "count": n,
        "mean_ms": round(sum(ordered) / n * 1000, 3) if n else 0.0,
        "p50_ms": round(percentile(ordered, 50) * 1000, 3),
        "p95_ms": round(percentile(ordered, 95) * 1000, 3),
        "p99_ms": round(percentile(ordered, 99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3) if n else 0.0,
    }


def bucket_width(duration_s: float) -> float:
    """The timeline's bucket width for a run of `duration_s` seconds."""
    for width in BUCKET_WIDTHS:
        if duration_s / width <= MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS[-1]


class Recorder:
    """Collects one entry per answered command; `done`/`errors` feed the progress bar."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self.finished_at = array("d")  # seconds since `start`
        self.latency = array("d")  # seconds
        self.kind = array("I")
        #: (kind index, error code) -> answers
        self.error_counts: Counter[tuple[int, str]] = Counter()
        self.done = 0
        self.errors = 0
        self.start = 0.0

    def record(self, now: float, latency: float, kind: int, code: str | None) -> None:
        """One answered (or failed) command; `code` is None for success."""
        self.finished_at.append(now - self.start)
        self.latency.append(latency)
        self.kind.append(kind)
        self.done += 1
        if code is not None:
            self.errors += 1
            self.error_counts[(kind, code)] += 1

    # --- the summary, computed once ------------------------------------------------------------

    def latency_summary(self) -> dict[str, Any]:
        """Latency overall and per command name."""
        per_kind: dict[int, array] = {}
        for kind, latency in zip(self.kind, self.latency):
            bucket = per_kind.get(kind)
            if bucket is None:
                bucket = per_kind[kind] = array("d")
            bucket.append(latency)
        by_command = {self.kinds[k]: summarize(values)
                      for k, values in sorted(per_kind.items(), key=lambda kv: self.kinds[kv[0]])}
        return {"all": summarize(self.latency), "by_command": by_command}

    def error_summary(self) -> dict[str, Any]:
        """Error answers counted by code, and by command then code."""
        by_code: Counter[str] = Counter()
        by_command: dict[str, dict[str, int]] = {}
        for (kind, code), count in sorted(self.error_counts.items(),
                                          key=lambda kv: (self.kinds[kv[0][0]], kv[0][1])):
            by_code[code] += count
            by_command.setdefault(self.kinds[kind], {})[code] = count
        return {"total": sum(by_code.values()), "by_code": dict(sorted(by_code.items())),
                "by_command": by_command}

    def timeline(self, duration_s: float | None = None) -> dict[str, Any]:
        """Throughput (commands/s) and p99 latency (ms) per time bucket."""
        if duration_s is None:
            duration_s = max(self.finished_at, default=0.0)
        width = bucket_width(duration_s)
        count = max(1, math.ceil(duration_s / width)) if duration_s > 0 else 1
        buckets: list[list[float]] = [[] for _ in range(count)]
        for at, latency in zip(self.finished_at, self.latency):
            buckets[min(int(at / width), count - 1)].append(latency)
        times, rates, p99s = [], [], []
        for i, values in enumerate(buckets):
            # The last bucket may be cut short by the end of the run.
            span = min(width, duration_s - i * width) if duration_s > i * width else width
            times.append(round((i + 1) * width if i < count - 1 else duration_s, 3))
            rates.append(round(len(values) / span, 1) if span > 0 else 0.0)
            values.sort()
            p99s.append(round(percentile(values, 99) * 1000, 3))
        return {"bucket_s": width, "t_s": times, "commands_per_s": rates, "p99_ms": p99s}
