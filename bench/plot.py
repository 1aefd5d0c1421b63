"""`--plot FILE`: a PNG of throughput and p99 latency over the run (matplotlib, extra `plot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


#: What to do without matplotlib: the `plot` extra (setup.cfg) brings it.
INSTALL_HINT = ("--plot needs matplotlib, which is not installed: pip install 'daytrade[plot]' "
                "(from a clone: pip install '.[plot]')")


def check_plot_available() -> None:
    """Raise PlotUnavailable unless matplotlib can be imported (checked before a replay)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(INSTALL_HINT) from None


def write_plot(result: dict[str, Any], path: str | Path) -> None:
    """Draw the report's timeline: commands/s above, p99 latency (ms) below."""
    check_plot_available()
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    timeline = result["timeline"]
    t = timeline["t_s"]
    workload = (result.get("workload") or {}).get("name", "")
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    try:
        top.plot(t, timeline["commands_per_s"], drawstyle="steps-post", color="tab:blue")
        top.set_ylabel("commands/s")
        top.set_title(f"daytrade bench {workload}: {result.get('commands_per_s', 0):,.0f} "
                      f"commands/s overall (bucket {timeline['bucket_s']} s)")
        top.grid(True, alpha=0.3)
        bottom.plot(t, timeline["p99_ms"], drawstyle="steps-post", color="tab:red")
        bottom.set_ylabel("p99 latency (ms)")
        bottom.set_xlabel("seconds since start")
        bottom.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(str(path), dpi=100, format="png")
    finally:
        plt.close(fig)
