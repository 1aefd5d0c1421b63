"""`--plot`: a PNG of throughput and p99 latency over time (needs the `plot` extra)."""

import pytest

from bench.plot import write_plot


def _result():
    return {"workload": {"name": "10user.txt"}, "commands_per_s": 1234.0,
            "timeline": {"bucket_s": 0.5, "t_s": [0.5, 1.0, 1.5],
                         "commands_per_s": [1000.0, 1500.0, 1200.0],
                         "p99_ms": [3.0, 4.5, 2.0]}}


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", exc_type=ImportError)
    path = tmp_path / "run.png"
    write_plot(_result(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from bench.plot import PlotUnavailable

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(PlotUnavailable, match=r"daytrade\[plot\]"):
        write_plot(_result(), tmp_path / "run.png")
    assert not (tmp_path / "run.png").exists()
