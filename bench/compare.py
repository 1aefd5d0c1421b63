"""`--compare OLD.json`: the change of the headline figures against an earlier report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

#: Changes smaller than this fraction are shown as unchanged.
NOISE = 0.02


@dataclass(frozen=True)
class Metric:
    """One compared figure: where it is in a report, and which direction is better."""

    label: str
    path: tuple[str, ...]
    higher_is_better: bool


METRICS = (
    Metric("commands/s", ("commands_per_s",), True),
    Metric("commands/s incl. DUMPLOG", ("end_to_end", "commands_per_s"), True),
    Metric("latency p50 ms", ("latency", "all", "p50_ms"), False),
    Metric("latency p95 ms", ("latency", "all", "p95_ms"), False),
    Metric("latency p99 ms", ("latency", "all", "p99_ms"), False),
    Metric("latency max ms", ("latency", "all", "max_ms"), False),
    Metric("error replies", ("errors", "total"), False),
    Metric("quote-server fetches", ("quotes", "fetches"), False),
    Metric("quote cache hit rate", ("quotes", "cache_hit_rate"), True),
    Metric("server CPU µs/command", ("server", "cpu_us_per_command"), False),
    Metric("server peak RSS MB", ("server", "peak_rss_mb"), False),
    Metric("DUMPLOG seconds", ("dumplog_wall_s",), False),
    Metric("daytrade / ceiling", ("calibration", "ratio"), True),
    # Not the system's doing, but says how comparable two runs on a shared machine are.
    Metric("cores used by other processes", ("machine", "other_cores"), False),
)


def lookup(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    """The number at `path` in a report, or None when absent."""
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def change(old: float | None, new: float | None) -> float | None:
    """Relative change from old to new (None when either is missing or old is 0)."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old)


def verdict(metric: Metric, delta: float | None) -> str:
    """"better", "worse", "same" or "" (not comparable)."""
    if delta is None:
        return ""
    if abs(delta) < NOISE:
        return "same"
    return "better" if (delta > 0) == metric.higher_is_better else "worse"


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: label, old, new, relative change and verdict."""
    rows = []
    metrics = list(METRICS)
    per_command = sorted(set((new.get("latency") or {}).get("by_command", {}))
                         & set((old.get("latency") or {}).get("by_command", {})))
    metrics += [Metric(f"{name} p99 ms", ("latency", "by_command", name, "p99_ms"), False)
                for name in per_command]
    for metric in metrics:
        a, b = lookup(old, metric.path), lookup(new, metric.path)
        if a is None and b is None:
            continue
        delta = change(a, b)
        rows.append({"metric": metric.label, "old": a, "new": b, "change": delta,
                     "verdict": verdict(metric, delta)})
    return rows


def render(rows: list[dict[str, Any]], console: Console, old_name: str,
           fmt: Callable[[float | None], str] | None = None) -> None:
    """Print the comparison table."""
    def default_fmt(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"

    fmt = fmt or default_fmt
    t = Table(title=f"Change against {old_name}")
    for name in ("metric", "old", "new", "change", ""):
        t.add_column(name, justify="left" if name in ("metric", "") else "right")
    colours = {"better": "green", "worse": "red", "same": "dim", "": ""}
    for row in rows:
        delta = row["change"]
        colour = colours[row["verdict"]]
        t.add_row(row["metric"], fmt(row["old"]), fmt(row["new"]),
                  "-" if delta is None else f"{delta:+.1%}",
                  f"[{colour}]{row['verdict']}[/]" if colour else row["verdict"])
    console.print(t)
