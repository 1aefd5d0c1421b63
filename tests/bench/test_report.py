"""The report's arithmetic (STATS deltas, CPU per command, memory) and its rendering."""

import io
import json
import re

from rich.console import Console

from bench.procstats import MAIN_THREAD, UNNAMED_THREADS, ProcSample, ThreadSample
from bench.report import (
    PIPED_WIDTH,
    client_problems,
    disk_writes_line,
    error_cause,
    load_json,
    machine_summary,
    make_console,
    process_summary,
    quote_summary,
    render,
    render_summary,
    run_warnings,
    shard_summary,
    thread_rows,
    write_json,
)


def _stats(*shards):
    return {"gateway": {"lines": 10, "busy": 0, "open": 4},
            "shards": [dict(shard=i, pid=100 + i, **s) for i, s in enumerate(shards)]}


def _quotes(**kw):
    base = {"hits_local": 0, "hits_redis": 0, "fetches": 0, "requests_sent": 0,
            "redis_up": True}
    return {**base, **kw}


def test_quote_figures_are_the_change_summed_over_shards():
    before = _stats({"quotes": _quotes(hits_local=5, fetches=1, requests_sent=1)},
                    {"quotes": _quotes()})
    after = _stats({"quotes": _quotes(hits_local=65, hits_redis=10, fetches=6, requests_sent=7)},
                   {"quotes": _quotes(hits_local=20, fetches=4, requests_sent=4)})
    q = quote_summary(before, after)
    assert q["fetches"] == 9
    assert q["requests_sent"] == 10
    assert q["hits_local"] == 80
    assert q["hits_redis"] == 10
    assert q["cache_hit_rate"] == round(90 / 99, 4)
    assert "redis_up" not in q


def test_no_quote_lookups_means_no_hit_rate():
    assert quote_summary(None, _stats({"quotes": _quotes()}))["cache_hit_rate"] is None


def test_no_stats_means_no_quote_figures():
    assert quote_summary(None, None) is None


def test_shard_summary_gives_commands_per_batch():
    before = _stats({"commands": 10, "batches": 5})
    after = _stats({"commands": 110, "batches": 9})
    row = shard_summary(before, after)["per_shard"][0]
    assert (row["commands"], row["batches"], row["commands_per_batch"]) == (100, 4, 25.0)


def _sample(pid, name, cpu, rss_mb, hwm_mb):
    return ProcSample(pid, name, cpu, int(rss_mb * 1024), int(hwm_mb * 1024))


def test_cpu_per_command_counts_only_the_replay():
    before = {1: _sample(1, "gateway", 10.0, 50, 50), 2: _sample(2, "shard-0", 3.0, 40, 40)}
    after = {1: _sample(1, "gateway", 12.0, 60, 70), 2: _sample(2, "shard-0", 6.0, 45, 50)}
    end = {1: _sample(1, "gateway", 12.5, 60, 70), 2: _sample(2, "shard-0", 6.0, 45, 50)}
    s = process_summary(before, after, end, peak_rss_kb=110 * 1024, commands=100_000)
    assert s["cpu_s"] == 5.0
    assert s["cpu_us_per_command"] == 50.0
    assert s["dumplog_cpu_s"] == 0.5
    assert s["peak_rss_mb"] == 110.0
    assert s["peak_rss_sum_of_process_peaks_mb"] == 120.0
    assert [(p["role"], p["cpu_us_per_command"]) for p in s["processes"]] == [
        ("gateway", 20.0), ("shard-0", 30.0)]


def _written(pid, name, write_bytes):
    return ProcSample(pid, name, 0.0, 0, 0, write_bytes)


def test_disk_writes_per_command_count_only_the_replay():
    before = {1: _written(1, "gateway", 1000), 2: _written(2, "shard-0", 0)}
    after = {1: _written(1, "gateway", 1000), 2: _written(2, "shard-0", 500_000)}
    end = {1: _written(1, "gateway", 9_000_000), 2: _written(2, "shard-0", 600_000)}
    s = process_summary(before, after, end, peak_rss_kb=0, commands=1000)
    assert (s["write_bytes"], s["write_bytes_per_command"]) == (500_000, 500.0)
    assert s["dumplog_write_bytes"] == 9_099_000
    assert s["write_bytes_unreadable"] == 0
    assert [(p["role"], p["write_bytes"], p["dumplog_write_bytes"]) for p in s["processes"]] == [
        ("gateway", 0, 8_999_000), ("shard-0", 500_000, 100_000)]


def test_an_unreadable_process_is_left_out_of_the_disk_writes_and_counted():
    before = {1: _written(1, "gateway", 0), 2: _written(2, "redis", None)}
    after = {1: _written(1, "gateway", 2000), 2: _written(2, "redis", None)}
    s = process_summary(before, after, after, peak_rss_kb=0, commands=10)
    assert (s["write_bytes"], s["write_bytes_unreadable"]) == (2000, 1)
    assert s["processes"][1]["write_bytes_per_command"] is None


def test_no_readable_process_means_no_disk_write_figures():
    samples = {1: _written(1, "gateway", None)}
    s = process_summary(samples, samples, samples, peak_rss_kb=0, commands=10)
    assert (s["write_bytes"], s["write_bytes_per_command"], s["dumplog_write_bytes"]) == (
        None, None, None)


def test_the_disk_writes_line():
    server = {"write_bytes_per_command": 1234.4, "dumplog_write_bytes": 250_000_000,
              "write_bytes_unreadable": 0}
    assert disk_writes_line(server) == (
        "disk writes per command: 1,234 bytes (DUMPLOG apart: 250.0 MB)")


def test_the_disk_writes_line_says_n_a_when_unreadable():
    assert disk_writes_line({"write_bytes_per_command": None}) == (
        "disk writes per command: n/a (DUMPLOG apart)")
    assert disk_writes_line(None) == "disk writes per command: n/a (DUMPLOG apart)"


def test_the_disk_writes_line_owns_up_to_unreadable_processes():
    line = disk_writes_line({"write_bytes_per_command": 10.0, "dumplog_write_bytes": None,
                             "write_bytes_unreadable": 2})
    assert line == "disk writes per command: 10 bytes (DUMPLOG apart), 2 processes unreadable"


def test_render_prints_disk_writes_per_process():
    rows = [{"pid": 7, "role": "shard-0", "cpu_s": 1.0, "cpu_us_per_command": 10.0,
             "dumplog_cpu_s": 0.5, "write_bytes": 3000, "write_bytes_per_command": 1.0,
             "dumplog_write_bytes": None, "peak_rss_mb": 50.0, "rss_mb": 40.0}]
    server = {"cpu_s": 1.0, "cpu_us_per_command": 10.0, "dumplog_cpu_s": 0.5,
              "write_bytes": 3000, "write_bytes_per_command": 1.0, "dumplog_write_bytes": None,
              "write_bytes_unreadable": 0, "peak_rss_mb": 50.0,
              "peak_rss_sum_of_process_peaks_mb": 50.0, "processes": rows}
    out = io.StringIO()
    render(_result(server=server), Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "disk writes per command: 1 bytes (DUMPLOG apart)" in text
    assert "write B/command" in text
    assert "n/a" in text  # shard-0's DUMPLOG writes


def test_a_process_born_during_the_run_counts_whole():
    after = {3: _sample(3, "shard-1", 2.0, 10, 10)}
    s = process_summary({}, after, after, peak_rss_kb=0, commands=1000)
    assert s["cpu_s"] == 2.0


def test_no_processes_means_no_server_figures():
    assert process_summary({}, {}, {}, 0, 10) is None


def _result(**overrides):
    result = {
        "workload": {"name": "10user.txt"},
        "target": {"mode": "embedded", "shards": 2, "quote_latency": "fixed:5"},
        "settings": {"connections": 4, "in_flight": 0, "rate": None, "event_loop": "asyncio"},
        "planned_commands": 3, "commands": 3, "wall_s": 1.5, "commands_per_s": 2.0,
        "end_to_end": {"commands": 4, "wall_s": 2.0, "commands_per_s": 2.0},
        "latency": {"all": {"count": 3, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0,
                            "max_ms": 3.0},
                    "by_command": {"ADD": {"count": 3, "p50_ms": 1.0, "p95_ms": 2.0,
                                           "p99_ms": 3.0, "max_ms": 3.0}}},
        "errors": {"total": 1, "by_code": {"insufficient_funds": 1}, "by_command": {}},
        "client": {"replies": 3, "busy_retries": 0, "mismatched": 0, "late_replies": 0,
                   "unmatched_replies": 0, "decode_errors": 0, "cpu_s": 0.1},
        "quotes": {"fetches": 7, "requests_sent": 8, "cache_hit_rate": 0.5},
        "server": None, "dumplog": [], "validation": None, "calibration": None,
    }
    result.update(overrides)
    return result


def test_a_clean_run_has_no_client_problems():
    assert client_problems(_result()) == []


def test_a_command_without_its_answer_is_a_problem():
    assert client_problems(_result(commands=2, client={**_result()["client"], "replies": 2}))


def test_timeouts_are_a_problem():
    errors = {"total": 1, "by_code": {"client_timeout": 1}, "by_command": {}}
    problems = client_problems(_result(errors=errors, client={**_result()["client"],
                                                              "replies": 2}))
    assert problems == ["1 client timeout"]


def test_unmatched_replies_are_a_problem():
    assert client_problems(_result(client={**_result()["client"], "unmatched_replies": 2}))


def test_busy_retries_add_replies_without_being_a_problem():
    client = {**_result()["client"], "replies": 5, "busy_retries": 2}
    assert client_problems(_result(client=client)) == []


def test_render_prints_the_headline_figures():
    out = io.StringIO()
    render(_result(calibration={"commands_per_s": 8.0, "ratio": 0.25}),
           Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert "10user.txt" in text
    assert "insufficient_funds" in text
    assert "25.0%" in text
    assert "50.00%" in text  # cache hit rate


def test_json_round_trips(tmp_path):
    path = tmp_path / "r.json"
    write_json(_result(), path)
    assert load_json(path) == json.loads(json.dumps(_result()))


def test_machine_summary_splits_busy_cores_between_server_client_and_others():
    m = machine_summary((100.0, 0.0), (116.0, 4.0), wall_s=10.0, server_cpu_s=10.0,
                        client_cpu_s=2.0, cpus=2, load=(1.0, 3.0))
    assert m == {"cpus": 2, "load_average_start": 1.0, "load_average_end": 3.0,
                 "busy_cores": 1.6, "client_cores": 0.2, "server_cores": 1.0,
                 "other_cores": 0.4}


def test_machine_summary_without_server_figures_has_no_split():
    m = machine_summary((0.0, 0.0), (5.0, 0.0), 10.0, None, 1.0, 2, (None, None))
    assert "other_cores" not in m and m["busy_cores"] == 0.5


# --- CPU per thread ----------------------------------------------------------------------------


def _threaded(pid, cpu, found):
    return ProcSample(pid, "shard-0", cpu, 0, 0, None,
                      {tid: ThreadSample(tid, name, c) for tid, (name, c) in found.items()})


def test_cpu_per_thread_counts_the_replay_and_the_dumplog_apart():
    before = {7: _threaded(7, 1.0, {7: ("shard-0", 0.8), 8: ("shard-0-commit", 0.2)})}
    after = {7: _threaded(7, 4.0, {7: ("shard-0", 2.8), 8: ("shard-0-commit", 1.2)})}
    end = {7: _threaded(7, 5.0, {7: ("shard-0", 2.9), 8: ("shard-0-commit", 1.2),
                                 9: ("shard-0", 0.9)})}
    s = process_summary(before, after, end, peak_rss_kb=0, commands=10_000)
    assert s["processes"][0]["threads"] == [
        {"name": MAIN_THREAD, "threads": 1, "cpu_s": 2.0, "cpu_us_per_command": 200.0,
         "dumplog_cpu_s": 0.1},
        {"name": "shard-0-commit", "threads": 1, "cpu_s": 1.0, "cpu_us_per_command": 100.0,
         "dumplog_cpu_s": 0.0},
        {"name": UNNAMED_THREADS, "threads": 1, "cpu_s": 0.0, "cpu_us_per_command": 0.0,
         "dumplog_cpu_s": 0.9}]


def test_unreadable_threads_give_none_not_a_crash():
    samples = {7: ProcSample(7, "redis", 1.0, 0, 0)}
    s = process_summary(samples, samples, samples, peak_rss_kb=0, commands=10)
    assert s["processes"][0]["threads"] is None


def _proc(role, cpu, dump_cpu, threads):
    return {"role": role, "pid": 1, "cpu_s": cpu, "dumplog_cpu_s": dump_cpu,
            "threads": threads}


def _thread(name, cpu, dump_cpu=0.0, count=1):
    return {"name": name, "threads": count, "cpu_s": cpu, "cpu_us_per_command": cpu * 100,
            "dumplog_cpu_s": dump_cpu}


def test_the_thread_table_leaves_out_threads_under_one_percent_of_their_process():
    shard = _proc("shard-0", 10.0, 1.0, [_thread("main", 6.0), _thread("shard-0-commit", 3.95),
                                         _thread("shard-0-snapshot", 0.05),
                                         _thread("unnamed", 0.0, dump_cpu=0.9, count=3)])
    idle = _proc("resource_tracker", 0.0, 0.0, [_thread("main", 0.0)])
    blind = _proc("redis", 0.5, 0.0, None)
    rows = thread_rows({"processes": [shard, idle, blind]})
    assert [(p["role"], t and t["name"]) for p, t in rows] == [
        ("shard-0", "main"), ("shard-0", "shard-0-commit"), ("shard-0", "unnamed"),
        ("redis", None)]


def test_render_prints_the_threads_of_each_process():
    threads = [_thread("main", 0.6), _thread("shard-0-commit", 0.4),
               _thread("unnamed", 0.0, dump_cpu=0.5, count=2)]
    rows = [{"pid": 7, "role": "shard-0", "cpu_s": 1.0, "cpu_us_per_command": 10.0,
             "dumplog_cpu_s": 0.5, "write_bytes": None, "write_bytes_per_command": None,
             "dumplog_write_bytes": None, "peak_rss_mb": 50.0, "rss_mb": 40.0,
             "threads": threads},
            {"pid": 8, "role": "redis", "cpu_s": 0.1, "cpu_us_per_command": 1.0,
             "dumplog_cpu_s": 0.0, "write_bytes": None, "write_bytes_per_command": None,
             "dumplog_write_bytes": None, "peak_rss_mb": 5.0, "rss_mb": 4.0, "threads": None}]
    server = {"cpu_s": 1.1, "cpu_us_per_command": 11.0, "dumplog_cpu_s": 0.5,
              "write_bytes": None, "write_bytes_per_command": None, "dumplog_write_bytes": None,
              "write_bytes_unreadable": 2, "peak_rss_mb": 55.0,
              "peak_rss_sum_of_process_peaks_mb": 55.0, "processes": rows}
    out = io.StringIO()
    render(_result(server=server), Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "Server threads" in text
    assert "shard-0-commit" in text and "40%" in text
    assert "unnamed ×2" in text
    threads_table = text[text.index("Server threads"):]
    redis_line = next(line for line in threads_table.splitlines() if "redis" in line)
    assert redis_line.count("n/a") == 5


# --- warnings, error causes, summary ------------------------------------------------------------


def _stale(count, commands=1000):
    return _result(commands=commands, errors={"total": count, "by_code": {"stale_txn": count},
                                              "by_command": {}})


def test_mostly_stale_txn_replies_are_a_warning_saying_why():
    warnings = run_warnings(_stale(900))
    assert [w["code"] for w in warnings] == ["stale_txn"]
    assert warnings[0]["count"] == 900 and warnings[0]["share"] == 0.9
    assert "already seen" in warnings[0]["message"]
    assert "--embedded" in warnings[0]["message"]


def test_a_few_stale_txn_replies_are_no_warning():
    assert run_warnings(_stale(10)) == []
    assert run_warnings(_result()) == []


def test_the_workloads_own_errors_are_told_apart_from_the_others():
    assert error_cause("no_pending_buy") == (True, error_cause("no_pending_buy")[1])
    assert "COMMIT_BUY" in error_cause("no_pending_buy")[1]
    assert error_cause("stale_txn")[0] is False
    assert error_cause("something_new") == (False, "")


def test_the_error_table_says_what_causes_each_code():
    errors = {"total": 5, "by_code": {"no_pending_buy": 3, "stale_txn": 2}, "by_command": {}}
    out = io.StringIO()
    render(_result(errors=errors), Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "3 caused by the workload itself" in text
    assert "COMMIT_BUY or CANCEL_BUY without a BUY pending" in text
    assert "not the workload" in text


def _summary_text(result, width=100):
    out = io.StringIO()
    render_summary(result, Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_the_summary_gives_the_run_on_one_screen():
    server = {"cpu_us_per_command": 80.5, "dumplog_cpu_s": 1.25, "write_bytes_per_command": 900.0,
              "dumplog_write_bytes": 2_000_000, "write_bytes_unreadable": 0,
              "peak_rss_mb": 300.0}
    result = _result(server=server, validation={"ok": True},
                     dumplog=[{"txn": 4, "ok": True}], dumplog_wall_s=0.5,
                     errors={"total": 1, "by_code": {"no_pending_buy": 1}, "by_command": {}},
                     warnings=[])
    lines = [line for line in _summary_text(result).splitlines() if line.strip()]
    text = "\n".join(lines)
    assert len(lines) <= 15
    assert "summary: 10user.txt" in lines[0]
    assert "commands/s" in text and "2 (3 commands in 1.50 s" in text
    assert "held back to the end, took 0.50 s" in text
    assert "p50 1.00 ms, p99 3.00 ms" in text
    assert "all caused by the workload itself" in text
    assert "80.5 µs" in text
    assert "900 bytes" in text
    assert "passed" in text
    assert re.search(r"client problems +none", text)


def test_the_summary_names_errors_the_workload_does_not_cause_and_repeats_warnings():
    result = _stale(900)
    result["warnings"] = run_warnings(result)
    text = _summary_text(result, width=300)
    assert "900 not: 900 stale_txn" in text
    assert "WARNING" in text and "already seen" in text
    assert "validation" in text and "not run" in text
    assert "n/a" in text  # no local server processes


def test_piped_output_is_not_wrapped_at_80_columns(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    if console.is_terminal:
        return  # run from a terminal with pytest -s: nothing to check
    assert console.width >= PIPED_WIDTH
    out = io.StringIO()
    console.file = out
    console.print("x" * 300)
    assert "x" * 300 in out.getvalue()
