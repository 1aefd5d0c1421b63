"""`--compare`: each headline figure's change against an earlier report, and its direction."""

import io

from rich.console import Console

from bench.compare import change, compare, lookup, render


def _report(rate, p99, cpu=None, by_command=None):
    return {"commands_per_s": rate,
            "latency": {"all": {"p99_ms": p99}, "by_command": by_command or {}},
            "server": {"cpu_us_per_command": cpu} if cpu is not None else None}


def _row(rows, metric):
    return next(r for r in rows if r["metric"] == metric)


def test_change_is_relative_to_the_old_value():
    assert change(100.0, 150.0) == 0.5
    assert change(200.0, 100.0) == -0.5


def test_change_against_nothing_is_none():
    assert change(None, 1.0) is None
    assert change(0.0, 1.0) is None


def test_more_throughput_is_better():
    row = _row(compare(_report(1000, 5), _report(1500, 5)), "commands/s")
    assert (row["old"], row["new"], row["change"], row["verdict"]) == (1000, 1500, 0.5,
                                                                       "better")


def test_more_latency_is_worse():
    row = _row(compare(_report(1000, 5), _report(1000, 10)), "latency p99 ms")
    assert row["verdict"] == "worse"


def test_a_small_change_is_the_same():
    row = _row(compare(_report(1000, 5), _report(1010, 5)), "commands/s")
    assert row["verdict"] == "same"


def test_figures_missing_from_both_are_left_out():
    rows = compare(_report(1, 1), _report(2, 1))
    assert not any(r["metric"] == "server CPU µs/command" for r in rows)


def test_a_figure_missing_from_one_side_has_no_change():
    row = _row(compare(_report(1, 1), _report(2, 1, cpu=40.0)), "server CPU µs/command")
    assert (row["old"], row["new"], row["change"], row["verdict"]) == (None, 40.0, None, "")


def test_commands_in_both_reports_are_compared_by_p99():
    old = _report(1, 1, by_command={"BUY": {"p99_ms": 10.0}, "ADD": {"p99_ms": 1.0}})
    new = _report(1, 1, by_command={"BUY": {"p99_ms": 5.0}})
    rows = compare(old, new)
    assert _row(rows, "BUY p99 ms")["verdict"] == "better"
    assert not any(r["metric"] == "ADD p99 ms" for r in rows)


def test_lookup_ignores_non_numbers():
    assert lookup({"a": {"b": True}}, ("a", "b")) is None
    assert lookup({"a": None}, ("a", "b")) is None
    assert lookup({"a": {"b": 3}}, ("a", "b")) == 3.0


def test_render_shows_the_change():
    out = io.StringIO()
    render(compare(_report(1000, 5), _report(1500, 5)), Console(file=out, width=120),
           "old.json")
    assert "+50.0%" in out.getvalue()
    assert "old.json" in out.getvalue()
