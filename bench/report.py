"""The bench report: its figures from STATS and /proc samples, the rich tables, the JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.procstats import ProcSample, cpu_between, thread_cpu_between, writes_between

REPORT_VERSION = 1
_MB = 1024.0  # kB per MB

#: Error replies the workload itself causes (a correct server answers them so too), and why.
WORKLOAD_ERRORS = {
    "amount_too_small": "an amount that buys or sells no whole share at the price",
    "bad_argument": "a malformed line of the workload (an amount, symbol or id out of bounds)",
    "bad_request": "a line of the workload that is not a request",
    "insufficient_funds": "BUY or SET_BUY_AMOUNT for more cash than the user has",
    "insufficient_shares": "SELL or SET_SELL_* for more shares than the user holds",
    "no_buy_amount": "SET_BUY_TRIGGER or CANCEL_SET_BUY without a SET_BUY_AMOUNT before",
    "no_holding": "SET_SELL_AMOUNT for a stock the user does not hold",
    "no_pending_buy": "COMMIT_BUY or CANCEL_BUY without a BUY pending (none, or over 60 s old)",
    "no_pending_sell": "COMMIT_SELL or CANCEL_SELL without a SELL pending (none, or over 60 s "
                       "old)",
    "no_sell_amount": "SET_SELL_TRIGGER or CANCEL_SET_SELL without a SET_SELL_AMOUNT before",
    "unknown_command": "a line of the workload with a command the protocol does not know",
    "unknown_user": "a command for a user before the user's first ADD",
}
#: Error replies the workload does not cause: what they mean.
OTHER_ERRORS = {
    "stale_txn": "txns the server has already seen (a second run against the same server?)",
    "quote_unavailable": "the quote server did not answer in time",
    "unauthorized": "the connection is not logged in",
    "forbidden": "a command this connection may not run",
    "locked": "the user id is locked out",
    "internal": "the server failed",
    "client_timeout": "no reply within --timeout",
    "connection_lost": "the connection closed before the reply",
    "client_error": "the bench client failed",
}
#: Above this share of the commands, stale_txn replies make the run's figures meaningless.
STALE_WARN_SHARE = 0.01
#: Below this share of its process's CPU, a thread is left out of the printed thread table.
THREAD_MIN_SHARE = 0.01
#: The report's width when the output is not a terminal (a pipe, a file): no wrapping at 80.
PIPED_WIDTH = 160


# --- figures ------------------------------------------------------------------------------------


def _numeric_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int | float]:
    out: dict[str, int | float] = {}
    for key, value in after.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        prior = before.get(key, 0)
        out[key] = value - (prior if isinstance(prior, (int, float)) else 0)
    return out


def _shards(stats: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [s for s in (stats or {}).get("shards", []) if isinstance(s, dict)]


def quote_summary(before: dict[str, Any] | None, after: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """Quote counters summed over the shards, as the change during the run."""
    if after is None:
        return None
    prior = {s.get("shard"): s.get("quotes") or {} for s in _shards(before)}
    totals: dict[str, int | float] = {}
    for shard in _shards(after):
        delta = _numeric_delta(prior.get(shard.get("shard"), {}), shard.get("quotes") or {})
        for key, value in delta.items():
            totals[key] = totals.get(key, 0) + value
    hits = totals.get("hits_local", 0) + totals.get("hits_redis", 0)
    lookups = hits + totals.get("fetches", 0)
    return {**totals, "cache_hit_rate": round(hits / lookups, 4) if lookups else None}


def shard_summary(before: dict[str, Any] | None, after: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """Per shard: commands and batches during the run, and commands per batch."""
    if after is None:
        return None
    prior = {s.get("shard"): s for s in _shards(before)}
    rows = []
    for shard in _shards(after):
        start = prior.get(shard.get("shard"), {})
        commands = shard.get("commands", 0) - start.get("commands", 0)
        batches = shard.get("batches", 0) - start.get("batches", 0)
        rows.append({"shard": shard.get("shard"), "pid": shard.get("pid"),
                     "commands": commands, "batches": batches,
                     "commands_per_batch": round(commands / batches, 2) if batches else None,
                     "restarts": shard.get("restarts", 0), "down": bool(shard.get("down"))})
    gateway = _numeric_delta((before or {}).get("gateway", {}), after.get("gateway", {}))
    return {"per_shard": rows, "gateway": gateway}


def _known_sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _per_command(value: int | float | None, commands: int) -> float | None:
    return round(value / commands, 1) if value is not None and commands else None


def thread_summary(before: ProcSample | None, after: ProcSample, end: ProcSample | None,
                   commands: int) -> list[dict[str, Any]] | None:
    """A process's CPU per thread label during the replay (and during DUMPLOG apart), busiest
    first; None when its threads could not be read."""
    used = thread_cpu_between(before, after)
    if used is None:
        return None
    used_dump = thread_cpu_between(after, end) if end is not None else None
    rows = []
    for label in sorted(set(used) | set(used_dump or ())):
        count, cpu = used.get(label, (0, 0.0))
        dump_count, dump_cpu = (used_dump or {}).get(label, (0, 0.0))
        rows.append({"name": label, "threads": max(count, dump_count), "cpu_s": round(cpu, 2),
                     "cpu_us_per_command": round(cpu / commands * 1e6, 2) if commands else None,
                     "dumplog_cpu_s": round(dump_cpu, 2) if used_dump is not None else None})
    rows.sort(key=lambda r: (-r["cpu_s"], -(r["dumplog_cpu_s"] or 0.0), r["name"]))
    return rows


def process_summary(before: dict[int, ProcSample], after: dict[int, ProcSample],
                    end: dict[int, ProcSample], peak_rss_kb: int, commands: int
                    ) -> dict[str, Any] | None:
    """CPU and disk writes per command during the replay, DUMPLOG's CPU and disk writes apart,
    and memory of every server process.

    Disk writes are /proc/<pid>/io `write_bytes` (None where unreadable: totals sum the readable
    processes and `write_bytes_unreadable` counts the others). Each process's `threads` split its
    CPU by thread name (see thread_summary; None where the threads were not read).
    """
    if not after:
        return None
    used = cpu_between(before, after)
    used_dump = cpu_between(after, end) if end else {}
    written = writes_between(before, after)
    written_dump = writes_between(after, end) if end else {}
    rows = []
    for pid in sorted(set(after) | set(end)):
        last = end.get(pid) or after[pid]
        cpu = used.get(pid, 0.0)
        wrote = written.get(pid, 0)  # a process born during DUMPLOG wrote nothing before
        rows.append({"pid": pid, "role": last.name, "cpu_s": round(cpu, 2),
                     "cpu_us_per_command": round(cpu / commands * 1e6, 2) if commands else None,
                     "dumplog_cpu_s": round(used_dump.get(pid, 0.0), 2),
                     "write_bytes": wrote,
                     "write_bytes_per_command": _per_command(wrote, commands),
                     "dumplog_write_bytes": written_dump.get(pid) if end else None,
                     "peak_rss_mb": round(last.hwm_kb / _MB, 1),
                     "rss_mb": round(last.rss_kb / _MB, 1),
                     "threads": thread_summary(before.get(pid), after[pid], end.get(pid),
                                               commands) if pid in after else None})
    total = sum(used.values())
    total_written = _known_sum([r["write_bytes"] for r in rows])
    return {
        "cpu_s": round(total, 2),
        "cpu_us_per_command": round(total / commands * 1e6, 2) if commands else None,
        "dumplog_cpu_s": round(sum(used_dump.values()), 2),
        "write_bytes": total_written,
        "write_bytes_per_command": _per_command(total_written, commands),
        "dumplog_write_bytes": _known_sum([r["dumplog_write_bytes"] for r in rows]),
        "write_bytes_unreadable": sum(1 for r in rows if r["write_bytes"] is None),
        "peak_rss_mb": round(peak_rss_kb / _MB, 1),
        "peak_rss_sum_of_process_peaks_mb": round(sum(r["peak_rss_mb"] for r in rows), 1),
        "processes": rows,
    }


def disk_writes_line(server: dict[str, Any] | None) -> str:
    """The report's line for bytes written to disk per command (n/a when unreadable)."""
    server = server or {}
    per_command = server.get("write_bytes_per_command")
    text = ("disk writes per command: "
            + (f"{per_command:,.0f} bytes" if per_command is not None else "n/a")
            + " (DUMPLOG apart")
    dump = server.get("dumplog_write_bytes")
    if dump is not None:
        text += f": {dump / 1e6:,.1f} MB"
    text += ")"
    unreadable = server.get("write_bytes_unreadable")
    if unreadable and per_command is not None:
        text += f", {unreadable} process{'es' if unreadable > 1 else ''} unreadable"
    return text


def machine_summary(busy_before: tuple[float, float], busy_after: tuple[float, float],
                    wall_s: float, server_cpu_s: float | None, client_cpu_s: float,
                    cpus: int | None, load: tuple[float | None, float | None]
                    ) -> dict[str, Any]:
    """How busy the machine was during the replay, and with what (cores in use, on average).

    `other_cores` is the CPU used by neither the server nor the bench: on a shared machine it
    says how far the figures can be trusted.
    """
    busy = busy_after[0] - busy_before[0]
    out: dict[str, Any] = {"cpus": cpus, "load_average_start": load[0],
                           "load_average_end": load[1]}
    if wall_s <= 0:
        return out
    out["busy_cores"] = round(busy / wall_s, 2)
    out["client_cores"] = round(client_cpu_s / wall_s, 2)
    if server_cpu_s is not None:
        out["server_cores"] = round(server_cpu_s / wall_s, 2)
        out["other_cores"] = round(max(0.0, busy - server_cpu_s - client_cpu_s) / wall_s, 2)
    return out


def error_cause(code: str) -> tuple[bool, str]:
    """(whether the workload itself causes it, why) for an error code."""
    if code in WORKLOAD_ERRORS:
        return True, WORKLOAD_ERRORS[code]
    return False, OTHER_ERRORS.get(code, "")


def split_errors(result: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """(error replies the workload causes, the other error replies by code)."""
    expected, other = 0, {}
    for code, count in ((result.get("errors") or {}).get("by_code") or {}).items():
        if error_cause(code)[0]:
            expected += count
        else:
            other[code] = count
    return expected, other


def run_warnings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """What makes the run's figures doubtful, each {"code", "message"} (the JSON's `warnings`)."""
    out = []
    commands = result.get("commands") or 0
    stale = ((result.get("errors") or {}).get("by_code") or {}).get("stale_txn", 0)
    if commands and stale > STALE_WARN_SHARE * commands:
        out.append({"code": "stale_txn", "count": stale, "share": round(stale / commands, 4),
                    "message": f"{stale:,} of {commands:,} commands ({stale / commands:.0%}) "
                               f"were answered stale_txn: the server has already seen these "
                               f"txns (an earlier run of this workload against it?), so it "
                               f"refused them without doing their work, and commands/s "
                               f"measures refusals. Use a fresh server (a new --data-dir for "
                               f"`daytrade up`) or --embedded."})
    return out


def make_console() -> Console:
    """The console of `daytrade bench`: when its output is not a terminal (a pipe, a file) and
    COLUMNS is not set, wide enough not to wrap the tables, and free text never wrapped."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=max(console.width, PIPED_WIDTH), soft_wrap=True)
    return console


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")


def load_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# --- tables -------------------------------------------------------------------------------------


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _na(value: Any, digits: int = 0) -> str:
    """A figure that may be unreadable: "n/a" rather than "-"."""
    return "n/a" if value is None else _n(value, digits)


def render(result: dict[str, Any], console: Console) -> None:
    """Print the report as rich tables."""
    target = result.get("target", {})
    workload = result.get("workload", {})
    where = (f"embedded, {target.get('shards')} shards, quotes {target.get('quote_latency')}"
             if target.get("mode") == "embedded" else f"{target.get('host')}:{target.get('port')}")
    settings = result.get("settings", {})
    console.print()
    console.rule(f"[bold]daytrade bench: {escape(str(workload.get('name')))} ({where})")
    mode = (f"open loop at {settings['rate']:,.0f} commands/s" if settings.get("rate")
            else f"closed loop, {settings.get('in_flight') or 'all'} users in flight per "
                 f"connection")
    console.print(f"{settings.get('connections')} connections, {mode}, "
                  f"client on {settings.get('event_loop')}")
    render_warnings(result, console)

    t = Table(title="Throughput", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("commands (DUMPLOG aside)", _n(result.get("commands")))
    t.add_row("wall time", f"{result.get('wall_s', 0):.2f} s")
    t.add_row("[bold]commands/s", f"[bold]{_n(result.get('commands_per_s'))}")
    e2e = result.get("end_to_end") or {}
    t.add_row("with DUMPLOG: commands / wall / per s",
              f"{_n(e2e.get('commands'))} / {e2e.get('wall_s', 0):.2f} s / "
              f"{_n(e2e.get('commands_per_s'))}")
    calibration = result.get("calibration")
    if calibration:
        t.add_row("calibration ceiling (bare line server)",
                  f"{_n(calibration.get('commands_per_s'))} /s")
        ratio = calibration.get("ratio")
        t.add_row("[bold]daytrade / ceiling", f"[bold]{ratio:.1%}" if ratio is not None else "-")
    console.print(t)

    latency = result.get("latency") or {}
    t = Table(title="Latency (ms)")
    for name in ("command", "count", "p50", "p95", "p99", "max"):
        t.add_column(name, justify="left" if name == "command" else "right")
    rows = [("[bold]all", latency.get("all") or {})]
    rows += sorted((latency.get("by_command") or {}).items())
    for name, s in rows:
        t.add_row(name, _n(s.get("count")), _n(s.get("p50_ms"), 2), _n(s.get("p95_ms"), 2),
                  _n(s.get("p99_ms"), 2), _n(s.get("max_ms"), 2))
    console.print(t)

    errors = result.get("errors") or {}
    if errors.get("by_code"):
        expected, _ = split_errors(result)
        t = Table(title=f"Error replies ({_n(errors.get('total'))}; {_n(expected)} caused by "
                        f"the workload itself)")
        t.add_column("code")
        t.add_column("count", justify="right")
        t.add_column("cause")
        for code, count in errors["by_code"].items():
            by_workload, why = error_cause(code)
            t.add_row(code, _n(count), f"workload: {why}" if by_workload
                      else f"[yellow]not the workload[/]{': ' + why if why else ''}")
        console.print(t)

    t = Table(title="Server", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    quotes = result.get("quotes")
    if quotes:
        t.add_row("quote-server fetches", _n(quotes.get("fetches")))
        t.add_row("quote-server requests sent", _n(quotes.get("requests_sent")))
        rate = quotes.get("cache_hit_rate")
        t.add_row("quote cache hit rate", f"{rate:.2%}" if rate is not None else "-")
    shards = result.get("shards")
    if shards:
        for row in shards.get("per_shard", []):
            t.add_row(f"shard {row['shard']}: commands / per batch",
                      f"{_n(row['commands'])} / {_n(row['commands_per_batch'], 1)}")
    server = result.get("server")
    if server:
        t.add_row("server CPU", f"{server['cpu_s']:.2f} s")
        t.add_row("[bold]server CPU per command",
                  f"[bold]{_n(server.get('cpu_us_per_command'), 1)} µs")
        t.add_row("[bold]peak RSS, all server processes", f"[bold]{server['peak_rss_mb']:.0f} MB")
        t.add_row("sum of each process's peak RSS",
                  f"{server['peak_rss_sum_of_process_peaks_mb']:.0f} MB")
        if server.get("dumplog_cpu_s"):
            t.add_row("server CPU during DUMPLOG", f"{server['dumplog_cpu_s']:.2f} s")
        written = server.get("write_bytes")
        t.add_row("disk writes, all server processes",
                  f"{written / 1e6:,.1f} MB" if written is not None else "n/a")
    client = result.get("client") or {}
    commands = result.get("commands") or 0
    machine = result.get("machine") or {}
    if "busy_cores" in machine:
        t.add_row("cores busy: server / bench client / others",
                  f"{_n(machine.get('server_cores'), 2)} / {_n(machine.get('client_cores'), 2)}"
                  f" / {_n(machine.get('other_cores'), 2)} of {machine.get('cpus')}")
    if commands:
        t.add_row("client CPU per command",
                  f"{client.get('cpu_s', 0) / commands * 1e6:,.1f} µs")
    if client.get("busy_retries"):
        t.add_row("busy replies retried", _n(client["busy_retries"]))
    console.print(t)
    if server:
        console.print(disk_writes_line(server))

    if server:
        t = Table(title="Server processes")
        for name in ("role", "pid", "CPU s", "µs/command", "DUMPLOG CPU s", "write B/command",
                     "DUMPLOG write MB", "peak RSS MB"):
            t.add_column(name, justify="left" if name == "role" else "right")
        for row in server["processes"]:
            dump_written = row.get("dumplog_write_bytes")
            t.add_row(row["role"], str(row["pid"]), _n(row["cpu_s"], 2),
                      _n(row["cpu_us_per_command"], 1), _n(row["dumplog_cpu_s"], 2),
                      _na(row.get("write_bytes_per_command"), 1),
                      _na(dump_written / 1e6 if dump_written is not None else None, 1),
                      _n(row["peak_rss_mb"], 1))
        console.print(t)
        render_threads(server, console)

    for dump in result.get("dumplog") or []:
        if dump.get("ok"):
            where = dump.get("saved_to") or dump.get("server_path")
            console.print(f"DUMPLOG [{dump['txn']}]: {_n(dump.get('events'))} events in "
                          f"{dump['seconds']:.2f} s -> {escape(str(where))}"
                          + (" [yellow](replaced the file there)" if dump.get("replaced")
                             else ""))
        else:
            console.print(f"[red]DUMPLOG [{dump['txn']}] failed: {escape(str(dump.get('error')))}")

    problems = client_problems(result)
    if problems:
        console.print("[red]client-side problems: " + ", ".join(problems))
    validation = result.get("validation")
    if validation is not None:
        render_validation(validation, console)


def thread_rows(server: dict[str, Any] | None, min_share: float = THREAD_MIN_SHARE
                ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(process row, thread row) of each thread with at least `min_share` of its process's CPU
    during the replay or during DUMPLOG; (process row, None) for a busy process whose threads
    were unreadable."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for proc in (server or {}).get("processes") or []:
        threads = proc.get("threads")
        cpu, dump_cpu = proc.get("cpu_s") or 0.0, proc.get("dumplog_cpu_s") or 0.0
        if threads is None:
            if cpu > 0:
                out.append((proc, None))
            continue
        for thread in threads:
            if ((cpu > 0 and thread["cpu_s"] >= min_share * cpu and thread["cpu_s"] > 0)
                    or (dump_cpu > 0 and (thread.get("dumplog_cpu_s") or 0.0)
                        >= max(min_share * dump_cpu, 0.01))):
                out.append((proc, thread))
    return out


def render_threads(server: dict[str, Any], console: Console) -> None:
    """The CPU of each thread of each process (those above THREAD_MIN_SHARE of it)."""
    rows = thread_rows(server)
    if not rows:
        return
    t = Table(title=f"Server threads (each with {THREAD_MIN_SHARE:.0%} or more of its process's "
                    f"CPU)")
    for name in ("role", "thread", "CPU s", "share", "µs/command", "DUMPLOG CPU s"):
        t.add_column(name, justify="left" if name in ("role", "thread") else "right")
    previous = None
    for proc, thread in rows:
        role = proc["role"] if proc is not previous else ""
        previous = proc
        if thread is None:
            t.add_row(role, "n/a", "n/a", "n/a", "n/a", "n/a")
            continue
        name = thread["name"] + (f" ×{thread['threads']}" if thread["threads"] > 1 else "")
        share = thread["cpu_s"] / proc["cpu_s"] if proc.get("cpu_s") else None
        t.add_row(role, name, _n(thread["cpu_s"], 2),
                  f"{share:.0%}" if share is not None else "-",
                  _n(thread["cpu_us_per_command"], 1), _na(thread.get("dumplog_cpu_s"), 2))
    console.print(t)


def render_warnings(result: dict[str, Any], console: Console) -> None:
    for warning in result.get("warnings") or []:
        console.print(f"[bold red]WARNING: {escape(warning['message'])}")


def render_summary(result: dict[str, Any], console: Console) -> None:
    """The run on one screen, printed last: throughput, latency, errors, CPU and disk writes per
    command, validation, warnings."""
    workload = (result.get("workload") or {}).get("name")
    console.print()
    console.rule(f"[bold]summary: {escape(str(workload))}")
    rows: list[tuple[str, str]] = []
    commands = result.get("commands") or 0
    deferred = len(result.get("dumplog") or [])
    held = (f"; {'the DUMPLOG' if deferred == 1 else f'{deferred} DUMPLOGs'}, held back to the "
            f"end, took {result.get('dumplog_wall_s') or 0:.2f} s" if deferred else "")
    rows.append(("commands/s", f"[bold]{_n(result.get('commands_per_s'))}[/] ({_n(commands)} "
                               f"commands in {result.get('wall_s', 0):.2f} s{held})"))
    latency = (result.get("latency") or {}).get("all") or {}
    rows.append(("latency", f"p50 {_n(latency.get('p50_ms'), 2)} ms, p99 "
                            f"{_n(latency.get('p99_ms'), 2)} ms"))
    rows.append(("error replies", _errors_line(result)))
    problems = client_problems(result)
    rows.append(("client problems", "[red]" + ", ".join(problems) if problems else "none"))
    server = result.get("server")
    if server:
        rows.append(("server CPU per command",
                     f"{_n(server.get('cpu_us_per_command'), 1)} µs (DUMPLOG apart: "
                     f"{server['dumplog_cpu_s']:.2f} s)"))
        rows.append(("disk writes per command",
                     disk_writes_line(server).removeprefix("disk writes per command: ")))
        rows.append(("peak RSS", f"{server['peak_rss_mb']:.0f} MB, all server processes"))
    else:
        rows.append(("server CPU per command", "n/a (the server's processes are not local)"))
    validation = result.get("validation")
    rows.append(("validation", "not run (--validate checks the DUMPLOG and every user's cash)"
                 if validation is None else "[green]passed" if validation.get("ok")
                 else "[red]FAILED"))
    calibration = result.get("calibration")
    if calibration and calibration.get("ratio") is not None:
        rows.append(("of the ceiling", f"{calibration['ratio']:.1%} of a bare Twisted line "
                                       f"server's {_n(calibration.get('commands_per_s'))} "
                                       f"commands/s"))
    width = max(len(what) for what, _ in rows)
    for what, value in rows:
        console.print(f"[bold]{what:<{width}}[/]  {value}")
    render_warnings(result, console)


def _errors_line(result: dict[str, Any]) -> str:
    total = (result.get("errors") or {}).get("total") or 0
    if not total:
        return "none"
    commands = result.get("commands") or 0
    expected, other = split_errors(result)
    share = f" ({total / commands:.0%} of the commands)" if commands else ""
    if not other:
        return (f"{_n(total)}{share}, all caused by the workload itself (e.g. COMMIT_BUY with "
                f"no BUY pending; see Error replies)")
    others = ", ".join(f"{_n(count)} {code}" for code, count in other.items())
    return (f"{_n(total)}{share}: {_n(expected)} caused by the workload itself, "
            f"[yellow]{_n(sum(other.values()))} not: {others}")


def render_validation(validation: dict[str, Any], console: Console) -> None:
    if validation.get("schema_ok"):
        console.print(f"[green]schema: valid[/] ({_n(validation.get('events'))} events)")
    else:
        console.print(f"[red]schema: INVALID: {escape(str(validation.get('schema_error')))}")
    for bad in validation.get("bad_transactions") or []:
        console.print(f"[red]unreadable accountTransaction: {escape(str(bad))}")
    cash = validation.get("cash")
    if cash is not None:
        if cash["ok"]:
            console.print(f"[green]cash: the log's account transactions give every user's "
                          f"DISPLAY_SUMMARY cash[/] ({_n(cash['users'])} users"
                          + (f", {cash['moved']} moved during the check" if cash["moved"] else "")
                          + ")")
            if cash.get("unverified"):
                console.print(f"[yellow]cash: {cash['unverified']} users changed too much "
                              f"around the DUMPLOG to be checked")
        else:
            console.print(f"[red]cash: {cash['mismatches']} of {cash['users']} users differ "
                          f"from DISPLAY_SUMMARY")
            for example in cash["examples"]:
                console.print(f"  {escape(str(example))}")
    console.print("[bold green]validation passed" if validation.get("ok")
                  else "[bold red]validation FAILED")


def client_problems(result: dict[str, Any]) -> list[str]:
    """What went wrong on the wire (not the workload's own error replies)."""
    client = result.get("client") or {}
    problems = [f"{client[k]} {k.replace('_', ' ')}" for k in
                ("mismatched", "late_replies", "unmatched_replies", "decode_errors")
                if client.get(k)]
    by_code = (result.get("errors") or {}).get("by_code", {})
    problems += [f"{by_code[k]} {k.replace('_', ' ')}" for k in
                 ("client_timeout", "connection_lost", "client_error", "internal")
                 if by_code.get(k)]
    failures = sum(by_code.get(k, 0) for k in ("client_timeout", "connection_lost",
                                                "client_error"))
    # Every send gets one reply: `busy` ones are sent again, so they add a reply each.
    answered = (client.get("replies") or 0) - (client.get("busy_retries") or 0)
    planned = result.get("planned_commands", result.get("commands"))
    if answered + failures != planned or result.get("commands") != planned:
        problems.append(f"{answered:,} replies + {failures:,} failures for "
                        f"{planned:,} commands")
    return problems
