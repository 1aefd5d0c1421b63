"""Percentiles, latency summaries, error counts and the timeline of a run."""

import pytest

from bench.metrics import Recorder, bucket_width, percentile, summarize


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100


def test_percentile_of_a_small_sample_rounds_up_to_a_real_value():
    assert percentile([10.0, 20.0, 30.0], 50) == 20.0
    assert percentile([10.0, 20.0, 30.0], 99) == 30.0
    assert percentile([10.0, 20.0, 30.0], 1) == 10.0


def test_percentile_of_nothing_is_zero():
    assert percentile([], 99) == 0.0


def test_summary_reports_milliseconds():
    s = summarize([0.003, 0.001, 0.002, 0.010])
    assert s == {"count": 4, "mean_ms": 4.0, "p50_ms": 2.0, "p95_ms": 10.0, "p99_ms": 10.0,
                 "max_ms": 10.0}


def test_recorder_counts_done_and_errors():
    r = Recorder(["ADD", "BUY"])
    r.record(1.0, 0.001, 0, None)
    r.record(1.5, 0.002, 1, "insufficient_funds")
    r.record(2.0, 0.003, 1, "insufficient_funds")
    assert (r.done, r.errors) == (3, 2)


def test_error_summary_by_code_and_by_command():
    r = Recorder(["ADD", "BUY", "SELL"])
    r.record(0.0, 0.0, 1, "insufficient_funds")
    r.record(0.0, 0.0, 2, "insufficient_shares")
    r.record(0.0, 0.0, 1, "insufficient_funds")
    r.record(0.0, 0.0, 0, None)
    assert r.error_summary() == {
        "total": 3,
        "by_code": {"insufficient_funds": 2, "insufficient_shares": 1},
        "by_command": {"BUY": {"insufficient_funds": 2}, "SELL": {"insufficient_shares": 1}},
    }


def test_latency_summary_per_command():
    r = Recorder(["ADD", "BUY"])
    for latency in (0.001, 0.002, 0.003):
        r.record(0.0, latency, 0, None)
    r.record(0.0, 0.010, 1, None)
    summary = r.latency_summary()
    assert summary["all"]["count"] == 4
    assert summary["all"]["max_ms"] == 10.0
    assert summary["by_command"]["ADD"]["p50_ms"] == 2.0
    assert summary["by_command"]["BUY"]["count"] == 1


def test_timeline_gives_commands_per_second_of_each_bucket():
    r = Recorder(["ADD"])
    r.start = 0.0
    for at in (0.12, 0.17, 0.32, 1.52):
        r.record(at, 0.001, 0, None)
    t = r.timeline(2.0)
    assert t["bucket_s"] == 0.05
    assert len(t["commands_per_s"]) == 40
    assert t["commands_per_s"][2] == pytest.approx(20.0)  # one command in 0.10-0.15 s
    assert t["commands_per_s"][4] == 0.0
    assert sum(rate * 0.05 for rate in t["commands_per_s"]) == pytest.approx(4)


def test_timeline_p99_per_bucket():
    r = Recorder(["ADD"])
    r.start = 0.0
    r.record(0.01, 0.004, 0, None)
    r.record(0.02, 0.002, 0, None)
    t = r.timeline(0.05)
    assert t["p99_ms"] == [4.0]


def test_bucket_width_keeps_the_timeline_short():
    assert bucket_width(1.0) == 0.05
    assert bucket_width(60.0) == 0.5
    assert 3600.0 / bucket_width(3600.0) <= 150
