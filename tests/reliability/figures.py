"""The figures the battery reports: printed at the end of the pytest run, optionally kept in a file.

Set DAYTRADE_FIGURES=<path> to have each figure appended to that file as a JSON line as well.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

#: (test id, text) in the order they were recorded during this run.
RECORDED: list[tuple[str, str]] = []


def record(item: str, text: str, **numbers: Any) -> None:
    """Keep one figure: `item` names the battery item, `text` is the human sentence."""
    RECORDED.append((item, text))
    print(f"\n[{item}] {text}")
    path = os.environ.get("DAYTRADE_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"item": item, "text": text, "at": time.time(), **numbers}) + "\n")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank, 0 < q <= 100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, -(-int(q * len(ordered)) // 100) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank); 0.0 for no values."""
    return percentile(values, 99)
